"""Planning a workflow: references resolved against earlier steps, the catalog and files;
output names claimed once.

The :class:`Planner` walks the steps in order. Each step's references (the fields its
model marks as :data:`~geoseg.workflow._kind.StepRef`, ``StepRefs`` or ``ModelRef``) are
resolved to the files they name; its kind then plans its outputs. Errors name the file,
the step (``steps[2]``) and the key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel

from geoseg.errors import CatalogError, ConfigError, MissingFileError
from geoseg.options import suggest as _suggest
from geoseg.workflow._kind import StepModel, kind_of, role_of
from geoseg.workflow._spec import WORK_DIR, Item, Ref, Step, slug


class Planner:
    """Validates steps in order, resolving references against the steps before them."""

    def __init__(self, path: Path, out: Path, gpkg: Path) -> None:
        self.path = path
        self.out = out
        self.gpkg = gpkg
        self.steps: dict[str, Step] = {}
        self.all_names: list[str] = []
        self._catalog: Any = None
        #: the split a label set's images come from (the step being planned sets it)
        self.split = "validation"
        self.files: dict[Path, str] = {}  # planned output path -> step
        self.layer_names: dict[str, str] = {}  # layer -> step

    @property
    def catalog(self) -> Any:
        if self._catalog is None:
            from geoseg.data import load_catalog

            self._catalog = load_catalog()
        return self._catalog

    # ---------------------------------------------------------------- references

    def resolve(self, text: str, where: str, key: str) -> Ref:
        """A reference to an earlier step's output, a catalog entry or an existing file."""
        base, _, sel = text.partition("@")
        head, dot, output = base.partition(".")
        if head in self.steps and (not dot or output in kind_of(self.steps[head].kind).outputs):
            step = self.steps[head]
            out_name = output or (kind_of(step.kind).outputs[0] if kind_of(step.kind).outputs else "")
            if not out_name:
                raise ConfigError(
                    f"{where}.{key}: step {head!r} ({step.kind}) writes only GeoPackage layers; "
                    "refer to the class map it was made from",
                    self.path,
                )
            items = step.outputs.get(out_name, ())
            if not items:
                raise ConfigError(f"{where}.{key}: step {head!r} has no {out_name} output here", self.path)
            return Ref(
                text,
                step=head,
                output=out_name,
                key=sel or None,
                items=self._select(items, sel, text, where, key),
            )
        if head in self.steps and dot:
            raise ConfigError(
                f"{where}.{key}: step {head!r} has no output {output!r} (outputs: "
                f"{', '.join(kind_of(self.steps[head].kind).outputs) or 'none'}); for a file, write ./{text}",
                self.path,
            )
        from geoseg.data import Catalog

        catalog: Catalog = self.catalog
        if base in catalog:
            entry = catalog.get(base)
            return Ref(
                text,
                entry=base,
                key=sel or None,
                items=self._select(self._entry_items(entry, where, key), sel, text, where, key),
            )
        if "/" in text or Path(text).suffix or Path(text).exists():
            p = Path(text)
            if not p.exists():
                raise MissingFileError(f"no such file ({where}: {key}); check the path", p)
            return Ref(text, items=(Item(p.absolute()),))
        known = list(self.steps) + catalog.names()
        raise ConfigError(
            f"{where}.{key}: {text!r} is not an earlier step, a catalog entry or a file{_suggest(base, known)}; "
            f"earlier steps: {', '.join(self.steps) or 'none'}; catalog entries: {', '.join(catalog.names())}",
            self.path,
        )

    def _select(self, items: tuple[Item, ...], sel: str, text: str, where: str, key: str) -> tuple[Item, ...]:
        if not sel:
            return items
        picked = tuple(i for i in items if sel in (i.key, i.date))
        if not picked:
            keys = ", ".join(str(i.key or i.date) for i in items)
            raise ConfigError(
                f"{where}.{key}: {text!r}: no {sel!r} in it (has: {keys or 'one unnamed file'})", self.path
            )
        return picked

    def entry(self, name: str, where: str, key: str) -> Any:
        if name not in self.catalog:
            raise CatalogError(
                f"{where}.{key}: no entry {name!r} in the catalog {self.catalog.path.name}"
                f"{_suggest(name, self.catalog.names())}; known entries: {', '.join(self.catalog.names())}",
                self.path,
            )
        return self.catalog.get(name)

    def _entry_items(self, entry: Any, where: str, key: str) -> tuple[Item, ...]:
        from geoseg.data import LabelSetEntry, ModelEntry, SceneEntry, TimeSeriesEntry, resolve

        if isinstance(entry, ModelEntry):
            raise ConfigError(f"{where}.{key}: {entry.name!r} is a model; give it as model:", self.path)
        entry.require()  # every file on disk, else: run `geoseg data fetch NAME`
        bands = tuple(entry.bands) if getattr(entry, "bands", None) else None
        if isinstance(entry, (SceneEntry, TimeSeriesEntry)):
            # the catalog decides what a name's files are, as for every command
            found = resolve(entry.name, catalog=self.catalog)
            found.check_readable()
            if isinstance(entry, TimeSeriesEntry):
                return tuple(
                    Item(p, key=d, date=d, band_names=found.bands, nodata=found.nodata)
                    for d, p in zip(found.dates, found.paths, strict=True)
                )
            path = self.out / WORK_DIR / "inputs" / f"{entry.name}.vrt" if found.stacked else found.paths[0]
            sources = found.paths if found.stacked else ()
            return (Item(path, sources=sources, band_names=found.bands, nodata=found.nodata),)
        if isinstance(entry, LabelSetEntry):
            classes = tuple((c.value, c.name) for c in entry.classes)
            if key == "images" or key.endswith(".images"):
                split = self.split
                if not entry.splits:
                    scene = self.catalog.get(entry.image)
                    return self._entry_items(scene, where, key)
                if split not in entry.split_names:
                    raise ConfigError(
                        f"{where}: split: label set {entry.name!r} has no split {split!r} "
                        f"(splits: {', '.join(entry.split_names)})",
                        self.path,
                    )
                return tuple(Item(p, key=_tile_key(p), band_names=bands) for p in entry.images(split))
            if entry.label_raster is None:
                raise ConfigError(
                    f"{where}.{key}: label set {entry.name!r} has no label raster to compare with "
                    "(tile label sets are scored with report: evaluate:)",
                    self.path,
                )
            return (Item(entry.label_raster_path(), classes=classes),)
        raise ConfigError(
            f"{where}.{key}: cannot use catalog entry {entry.name!r} ({entry.kind}) here", self.path
        )

    def resolve_model(self, text: str, where: str, key: str) -> Ref:
        """A model: a train step's output, a catalog model name or a checkpoint path."""
        if text in self.steps:
            step = self.steps[text]
            if step.kind != "train":
                raise ConfigError(
                    f"{where}.{key}: step {text!r} is a {step.kind} step, not a train step", self.path
                )
            return Ref(text, step=text, output="model", items=step.outputs["model"])
        from geoseg.data import ModelEntry

        if text in self.catalog:
            entry = self.catalog.get(text)
            if not isinstance(entry, ModelEntry):
                raise ConfigError(
                    f"{where}.{key}: catalog entry {text!r} is a {entry.kind}, not a model", self.path
                )
            path = entry.checkpoint_path()
            if not path.is_file():
                raise MissingFileError(
                    f"model file of catalog entry {text!r} is missing ({where}); it is not shipped yet or "
                    f"not fetched: run `geoseg data fetch {text}`, or train it",
                    path,
                )
            return Ref(text, entry=text, items=(Item(path),))
        p = Path(text)
        if p.suffix or "/" in text:
            if not p.is_file():
                raise MissingFileError(f"no such model file ({where}: {key})", p)
            return Ref(text, items=(Item(p.absolute()),))
        models = [e.name for e in self.catalog if isinstance(e, ModelEntry)]
        raise CatalogError(
            f"{where}.{key}: no model {text!r} in the catalog {self.catalog.path.name}{_suggest(text, models)}; "
            f"catalog models: {', '.join(models) or 'none'}; or give a checkpoint path",
            self.path,
        )

    # ---------------------------------------------------------------- plans

    def one_raster(self, step: Step, key: str, where: str) -> tuple[Item, ...]:
        items = tuple(i for r in step.refs[key] for i in r.items)
        if len(items) != 1:
            raise ConfigError(
                f"{where}.{key} must be one raster but {step.params[key]!r} is {len(items)}; pick one with @KEY",
                self.path,
            )
        return items

    def output_kind(self, r: Ref) -> str | None:
        """What an earlier step's output is (its kind's ``output_kinds``); None for catalog
        entries and files."""
        if r.step is None:
            return None
        return kind_of(self.steps[r.step].kind).output_kinds.get(r.output or "")

    def no_imagery(self, step: Step, key: str, where: str) -> None:
        """Refuse an earlier step's imagery where a class map is wanted (before any work)."""
        for r in step.refs[key]:
            if self.output_kind(r) == "image":
                raise ConfigError(
                    f"{where}.{key}: {r.text!r} is imagery, not a class map; predict it first, or refer "
                    f"to its truth ({r.step}.truth)",
                    self.path,
                )

    # ---------------------------------------------------------------- collisions

    def claim(self, step: Step, where: str) -> None:
        for items in step.outputs.values():
            for i in items:
                # a step's folder under the output directory; a file elsewhere (a train
                # step's model, beside other models) only claims itself
                inside = i.path.parent != self.out and i.path.is_relative_to(self.out)
                top = i.path.parent if inside else i.path
                owner = self.files.get(top)
                if owner is not None and owner != step.name:
                    raise ConfigError(
                        f"{where}: writes {top.name}, which step {owner!r} writes too; rename a step",
                        self.path,
                    )
                self.files[top] = step.name
        for layer in step.layers.values():
            if layer in self.layer_names:
                raise ConfigError(
                    f"{where}: layer {layer!r} is written by step {self.layer_names[layer]!r} too; "
                    "give one a layer or layer_prefix",
                    self.path,
                )
            self.layer_names[layer] = step.name

    def check_collisions(self) -> None:
        for path, owner in self.files.items():
            if path == self.gpkg:
                raise ConfigError(f"step {owner!r} writes {path.name}, the workflow's GeoPackage", self.path)

    # ---------------------------------------------------------------- a step's references

    def references(self, spec: StepModel, where: str) -> dict[str, tuple[Ref, ...]]:
        """Every reference in ``spec`` resolved: ``{"images": ..., "accuracy[0].map": ...}``."""
        refs: dict[str, tuple[Ref, ...]] = {}

        def walk(model: BaseModel, prefix: str) -> None:
            for name, info in type(model).model_fields.items():
                value = getattr(model, name)
                key = f"{prefix}{info.alias or name}"
                role = role_of(info)
                if value is None:
                    continue
                if role == "model":
                    refs[key] = (self.resolve_model(value, where, key),)
                elif role == "ref":
                    refs[key] = (self.resolve(value, where, key),)
                elif role == "refs":
                    refs[key] = tuple(self.resolve(t, where, key) for t in value)
                elif isinstance(value, BaseModel):
                    walk(value, f"{key}.")
                elif isinstance(value, (list, tuple)):
                    for i, v in enumerate(value):
                        if isinstance(v, BaseModel):
                            walk(v, f"{key}[{i}].")

        walk(spec, "")
        return refs

    def add(self, step: Step) -> Step:
        """Claim a planned step's outputs and remember it for later references."""
        self.claim(step, f"steps[{len(self.steps)}]")
        self.steps[step.name] = step
        return step


def _tile_key(path: Path) -> str:
    name = path.name
    for suffix in (".tiff", ".tif"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    return slug(name)
