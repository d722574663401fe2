"""Workflows: a YAML list of named steps, validated whole before any work, rerun incrementally.

A workflow file (``geoseg run FILE``) names its steps in order. Each step has a ``kind``
(``synthetic``, ``predict``, ``vectorize``, ``change``, ``track``, ``train``, ``report``)
and the keys of that kind; inputs are *references*:

- ``STEP`` or ``STEP.OUTPUT``: an earlier step's output (``STEP@KEY`` picks one date or
  tile of a multi-map output, e.g. ``landcover@2020``);
- a catalog entry name (``nc-landsat7``, ``pucallpa-landsat``, ``pucallpa-landsat@1985``,
  ``demo-synthetic``), resolved through ``data_catalog.yaml`` and the data root;
- a path (relative to the current directory).

Loading (:func:`load_workflow`) checks everything that can be checked without doing the
work: unknown or missing keys (with a "did you mean"), value types, references to steps
that do not exist (or come later), catalog names, catalog files that are absent (with
`geoseg data fetch NAME`), models and input files, band counts against the model, output
names that collide. Nothing is written until all of that passes.

Running a loaded workflow (what reruns, staging, the state file) is :mod:`geoseg.runner`."""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from geoseg.errors import CatalogError, ConfigError, MissingFileError
from geoseg.workflow._spec import (
    CHANGE_LAYERS,
    COMMON,
    KINDS,
    OUTPUT_KINDS,
    OUTPUTS,
    SPECS,
    TOP_KEYS,
    TRACK_LAYERS,
    WORK_DIR,
    Item,
    Param,
    PathLike,
    Ref,
    Step,
    Workflow,
)


class _Loader(yaml.SafeLoader):
    """Safe YAML that refuses duplicate keys (a silently dropped key is a typo's hiding place)."""


def _mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen[key] = loader.construct_object(value_node, deep=True)
    return seen


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def _suggest(word: str, options: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _check_keys(data: Mapping[str, Any], spec: Mapping[str, Param], where: str, path: Path) -> None:
    for key in data:
        if key not in spec:
            raise ConfigError(
                f"{where}: unknown key {key!r}{_suggest(str(key), list(spec))}; known keys: {', '.join(spec)}",
                path,
            )
    for key, p in spec.items():
        if p.required and data.get(key) is None:
            raise ConfigError(f"{where}: missing key {key!r}{' (' + p.help + ')' if p.help else ''}", path)


def _value(value: Any, p: Param, where: str, key: str, path: Path) -> Any:
    """Check and normalise one value (references stay text here)."""
    if value is None:
        return p.default if not isinstance(p.default, list) else list(p.default)

    def bad(expected: str) -> ConfigError:
        return ConfigError(f"{where}: {key} must be {expected}, got {value!r}", path)

    t = p.type
    if t == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("a whole number")
    elif t == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad("a number")
        value = float(value)
    elif t == "bool":
        if not isinstance(value, bool):
            raise bad("true or false")
    elif t == "str":
        if not isinstance(value, str):
            raise bad("a string")
    elif t in ("ref", "model"):
        if not isinstance(value, str) or not value.strip():
            raise bad("a non-empty string")
    elif t in ("strs", "refs", "classes", "dates"):
        items = value if isinstance(value, list) else [value]
        if t in ("classes", "dates"):
            if not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in items):
                raise bad("a name/number or a list of them")
            items = [str(v) for v in items]
        elif not all(isinstance(v, str) and v.strip() for v in items):
            raise bad("a string or a list of strings")
        if t == "dates":
            for v in items:
                _date(v, where, key, path)
        value = items
    elif t == "date":
        value = str(value)
        _date(value, where, key, path)
    elif t == "mapping":
        if not isinstance(value, dict):
            raise bad("a mapping of keys")
        assert p.keys is not None
        _check_keys(value, p.keys, f"{where}: {key}", path)
        value = {k: _value(value.get(k), sp, where, f"{key}.{k}", path) for k, sp in p.keys.items()}
    elif t == "list":
        if not isinstance(value, list):
            raise bad("a list")
        if p.keys is not None:
            out = []
            for i, entry in enumerate(value):
                if not isinstance(entry, dict):
                    raise ConfigError(f"{where}: {key}[{i}] must be a mapping, got {entry!r}", path)
                _check_keys(entry, p.keys, f"{where}: {key}[{i}]", path)
                out.append(
                    {k: _value(entry.get(k), sp, where, f"{key}[{i}].{k}", path) for k, sp in p.keys.items()}
                )
            value = out
    if p.choices and value not in p.choices:
        raise ConfigError(
            f"{where}: {key} must be one of {', '.join(map(str, p.choices))}, got {value!r}", path
        )
    if p.minimum is not None and isinstance(value, (int, float)) and value < p.minimum:
        raise ConfigError(f"{where}: {key} must be at least {p.minimum:g}, got {value!r}", path)
    if p.maximum is not None and isinstance(value, (int, float)) and value > p.maximum:
        raise ConfigError(f"{where}: {key} must be at most {p.maximum:g}, got {value!r}", path)
    return value


def _date(text: str, where: str, key: str, path: Path) -> None:
    """A date parameter parses (said with the file, the step and the key when it does not)."""
    from geoseg.temporal import parse_date

    try:
        parse_date(text)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {key}: {exc}", path) from None


def read_workflow_file(path: PathLike) -> dict[str, Any]:
    """The workflow file as a mapping (strict YAML); a bare ``train:`` file becomes one step."""
    p = Path(path)
    if not p.is_file():
        raise MissingFileError("no such workflow file", p)
    try:
        doc = yaml.load(p.read_text(encoding="utf-8"), Loader=_Loader)
    except UnicodeDecodeError:
        raise ConfigError("not a UTF-8 text file", p) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"not valid YAML{where}: {problem}", p) from None
    if not isinstance(doc, dict):
        raise ConfigError("a workflow file is a mapping with a `steps:` list (or a `train:` section)", p)
    if "steps" not in doc and "train" in doc:
        extra = sorted(set(doc) - {"train", "workflow", "description", "out_dir"})
        if extra:
            raise ConfigError(f"unknown top-level key {extra[0]!r} beside `train:`", p)
        return {
            "workflow": doc.get("workflow") or p.stem,
            "description": doc.get("description", ""),
            "out_dir": doc.get("out_dir"),
            "steps": [{"name": "train", "kind": "train", **(doc["train"] or {})}],
        }
    if "steps" not in doc and "track" in doc:
        raise ConfigError(
            "is a `geoseg track` parameter file, not a workflow; run workflows/track_deforestation.yaml "
            "(the same job as workflow steps) or the `geoseg track` command line in its comments",
            p,
        )
    return doc


def load_workflow(path: PathLike, out_dir: PathLike | None = None) -> Workflow:
    """Read, validate and plan a workflow file; raises ``GeosegError`` (nothing is written).

    ``out_dir`` overrides the file's ``out_dir`` (default ``out/<workflow name>``).
    """
    p = Path(path)
    doc = read_workflow_file(p)
    _check_keys(doc, TOP_KEYS, "workflow", p)
    top = {k: _value(doc.get(k), sp, "workflow", k, p) for k, sp in TOP_KEYS.items() if k != "steps"}
    name = top["workflow"] or p.stem
    if not isinstance(doc["steps"], list) or not doc["steps"]:
        raise ConfigError("steps must be a non-empty list of steps", p)
    out = Path(out_dir) if out_dir is not None else Path(top["out_dir"] or Path("out") / name)
    out = out.absolute()
    gpkg = out / (top["gpkg"] or f"{slug(name)}.gpkg")
    if gpkg.suffix.lower() != ".gpkg" or gpkg.parent != out:
        raise ConfigError(f"gpkg must be a file name ending in .gpkg, got {top['gpkg']!r}", p)
    planner = _Planner(p, out, gpkg)
    steps = tuple(planner.add(raw, i) for i, raw in enumerate(doc["steps"]))
    planner.check_collisions()
    dask = top["dask"] or {}
    return Workflow(
        p.absolute(), name, top["description"] or "", out, gpkg, steps,
        dask.get("workers"), dask.get("scheduler"), hashlib.sha256(p.read_bytes()).hexdigest(),
    )  # fmt: skip


def slug(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in text).strip("_") or "workflow"


class _Planner:
    """Validates steps in order, resolving references against the steps before them."""

    def __init__(self, path: Path, out: Path, gpkg: Path) -> None:
        self.path = path
        self.out = out
        self.gpkg = gpkg
        self.steps: dict[str, Step] = {}
        self.all_names: list[str] = []
        self._catalog: Any = None
        self._params: dict[str, Any] = {}
        self.files: dict[Path, str] = {}  # planned output path -> step
        self.layer_names: dict[str, str] = {}  # layer -> step

    @property
    def catalog(self) -> Any:
        if self._catalog is None:
            from geoseg.data import load_catalog

            self._catalog = load_catalog()
        return self._catalog

    # ---------------------------------------------------------------- steps

    def add(self, raw: Any, index: int) -> Step:
        if not isinstance(raw, dict):
            raise ConfigError(f"steps[{index}] must be a mapping with name and kind, got {raw!r}", self.path)
        kind = raw.get("kind")
        name = raw.get("name")
        where = f"step {name!r}" if isinstance(name, str) else f"steps[{index}]"
        if kind not in SPECS:
            raise ConfigError(
                f"{where}: kind must be one of {', '.join(KINDS)}, got {kind!r}{_suggest(str(kind), KINDS)}",
                self.path,
            )
        where = f"{where} ({kind})"
        if kind == "train":
            return self._train(raw, where)
        spec = {**COMMON, **SPECS[kind]}
        _check_keys(raw, spec, where, self.path)
        params = {k: _value(raw.get(k), sp, where, k, self.path) for k, sp in spec.items()}
        name = params.pop("name")
        params.pop("kind")
        self._check_name(name, where)
        self._params = params
        refs = self._refs(kind, params, where)
        step = Step(name, kind, params, refs, {}, {})
        step = getattr(self, f"_plan_{kind}")(step, where)
        self._claim(step, where)
        self.steps[name] = step
        return step

    def _check_name(self, name: str, where: str) -> None:
        if not name.replace("-", "_").isidentifier():
            raise ConfigError(
                f"{where}: name must be letters, digits, - and _ (it names files and layers), got {name!r}",
                self.path,
            )
        if name in self.steps:
            raise ConfigError(
                f"{where}: a step called {name!r} already exists; names must be unique", self.path
            )

    def _train(self, raw: dict[str, Any], where: str) -> Step:
        from geoseg.training import TrainConfig, load_config

        name = raw.get("name")
        if not isinstance(name, str):
            raise ConfigError(f"{where}: missing key 'name'", self.path)
        self._check_name(name, where)
        body = {k: v for k, v in raw.items() if k not in ("name", "kind", "description")}
        if "config" in body:
            extra = sorted(set(body) - {"config"})
            if extra:
                raise ConfigError(
                    f"{where}: give either config or inline train keys, not both ({extra[0]})", self.path
                )
            cfg = load_config(body["config"])
        else:
            cfg = TrainConfig.from_dict(body, f"{self.path}: {where}")
        if cfg.dataset is not None:
            from geoseg.data import LabelSetEntry

            entry = self._entry(cfg.dataset, where, "dataset")
            if not isinstance(entry, LabelSetEntry):
                raise ConfigError(
                    f"{where}: dataset {cfg.dataset!r} is a {entry.kind}, not a labelset", self.path
                )
            entry.require()
        from geoseg.files import check_writable

        check_writable(cfg.out)  # its folder exists and is writable: checked now, not after the data loads
        model = Path(cfg.out).absolute()
        params = {"config": _jsonable(cfg.__dict__)}
        refs: dict[str, tuple[Ref, ...]] = {}
        if cfg.pseudo_labels is not None:
            # The teacher is an input like any model: an earlier train step (which then runs
            # first), a catalog model or a checkpoint, fingerprinted by its sha256, so a
            # retrained teacher retrains the student
            teacher = self.resolve_model(str(cfg.pseudo_labels["teacher"]), where, "pseudo_labels.teacher")
            refs["teacher"] = (teacher,)
            cfg = dataclasses.replace(
                cfg, pseudo_labels={**cfg.pseudo_labels, "teacher": str(teacher.items[0].path)}
            )
        step = Step(name, "train", params, refs, {"model": (Item(model),)}, {}, train_config=cfg)
        self._claim(step, where)
        self.steps[name] = step
        return step

    # ---------------------------------------------------------------- references

    def _refs(self, kind: str, params: dict[str, Any], where: str) -> dict[str, tuple[Ref, ...]]:
        spec = SPECS[kind]
        refs: dict[str, tuple[Ref, ...]] = {}
        for key, p in spec.items():
            v = params.get(key)
            if v is None:
                continue
            if p.type in ("ref", "refs"):
                texts = v if isinstance(v, list) else [v]
                refs[key] = tuple(self.resolve(t, where, key) for t in texts)
            elif p.type == "model":
                refs[key] = (self.resolve_model(v, where, key),)
            elif p.keys is not None and p.type in ("list", "mapping"):
                entries = v if isinstance(v, list) else [v]
                for i, entry in enumerate(entries):
                    for k, sp in p.keys.items():
                        label = f"{key}[{i}].{k}" if p.type == "list" else f"{key}.{k}"
                        if sp.type == "ref":
                            refs[label] = (self.resolve(entry[k], where, label),)
                        elif sp.type == "model":
                            refs[label] = (self.resolve_model(entry[k], where, label),)
        return refs

    def resolve(self, text: str, where: str, key: str) -> Ref:
        """A reference to an earlier step's output, a catalog entry or an existing file."""
        base, _, sel = text.partition("@")
        head, dot, output = base.partition(".")
        if head in self.steps and (not dot or output in OUTPUTS[self.steps[head].kind]):
            step = self.steps[head]
            out_name = output or (OUTPUTS[step.kind][0] if OUTPUTS[step.kind] else "")
            if not out_name:
                raise ConfigError(
                    f"{where}: {key}: step {head!r} ({step.kind}) writes only GeoPackage layers; "
                    "refer to the class map it was made from",
                    self.path,
                )
            items = step.outputs.get(out_name, ())
            if not items:
                raise ConfigError(f"{where}: {key}: step {head!r} has no {out_name} output here", self.path)
            return Ref(
                text,
                step=head,
                output=out_name,
                key=sel or None,
                items=self._select(items, sel, text, where, key),
            )
        if head in self.steps and dot:
            raise ConfigError(
                f"{where}: {key}: step {head!r} has no output {output!r} (outputs: "
                f"{', '.join(OUTPUTS[self.steps[head].kind]) or 'none'}); for a file, write ./{text}",
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
            f"{where}: {key}: {text!r} is not an earlier step, a catalog entry or a file{_suggest(base, known)}; "
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
                f"{where}: {key}: {text!r}: no {sel!r} in it (has: {keys or 'one unnamed file'})", self.path
            )
        return picked

    def _entry(self, name: str, where: str, key: str) -> Any:
        if name not in self.catalog:
            raise CatalogError(
                f"{where}: {key}: no entry {name!r} in the catalog {self.catalog.path.name}"
                f"{_suggest(name, self.catalog.names())}; known entries: {', '.join(self.catalog.names())}",
                self.path,
            )
        return self.catalog.get(name)

    def _entry_items(self, entry: Any, where: str, key: str) -> tuple[Item, ...]:
        from geoseg.data import LabelSetEntry, ModelEntry, SceneEntry, TimeSeriesEntry

        if isinstance(entry, ModelEntry):
            raise ConfigError(f"{where}: {key}: {entry.name!r} is a model; give it as model:", self.path)
        entry.require()  # every file on disk, else: run `geoseg data fetch NAME`
        bands = tuple(entry.bands) if getattr(entry, "bands", None) else None
        if isinstance(entry, SceneEntry):
            paths = tuple(entry.raster_paths())
            stacked = len(paths) > 1 or entry.nodata is not None
            path = self.out / WORK_DIR / "inputs" / f"{entry.name}.vrt" if stacked else paths[0]
            return (Item(path, sources=paths if stacked else (), band_names=bands, nodata=entry.nodata),)
        if isinstance(entry, TimeSeriesEntry):
            return tuple(
                Item(p, key=d, date=d, band_names=bands, nodata=entry.nodata) for d, p in entry.dated_paths()
            )
        if isinstance(entry, LabelSetEntry):
            classes = tuple((c.value, c.name) for c in entry.classes)
            if key == "images" or key.endswith(".images"):
                split = str(self._params.get("split") or "validation")
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
                    f"{where}: {key}: label set {entry.name!r} has no label raster to compare with "
                    "(tile label sets are scored with report: evaluate:)",
                    self.path,
                )
            return (Item(entry.label_raster_path(), classes=classes),)
        raise ConfigError(
            f"{where}: {key}: cannot use catalog entry {entry.name!r} ({entry.kind}) here", self.path
        )

    def resolve_model(self, text: str, where: str, key: str) -> Ref:
        """A model: a train step's output, a catalog model name or a checkpoint path."""
        if text in self.steps:
            step = self.steps[text]
            if step.kind != "train":
                raise ConfigError(
                    f"{where}: {key}: step {text!r} is a {step.kind} step, not a train step", self.path
                )
            return Ref(text, step=text, output="model", items=step.outputs["model"])
        from geoseg.data import ModelEntry

        if text in self.catalog:
            entry = self.catalog.get(text)
            if not isinstance(entry, ModelEntry):
                raise ConfigError(
                    f"{where}: {key}: catalog entry {text!r} is a {entry.kind}, not a model", self.path
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
            f"{where}: {key}: no model {text!r} in the catalog {self.catalog.path.name}{_suggest(text, models)}; "
            f"catalog models: {', '.join(models) or 'none'}; or give a checkpoint path",
            self.path,
        )

    # ---------------------------------------------------------------- plans

    def _one_raster(self, step: Step, key: str, where: str) -> tuple[Item, ...]:
        items = tuple(i for r in step.refs[key] for i in r.items)
        if len(items) != 1:
            raise ConfigError(
                f"{where}: {key} must be one raster but {step.params[key]!r} is {len(items)}; pick one with @KEY",
                self.path,
            )
        return items

    def _output_kind(self, r: Ref) -> str | None:
        """What an earlier step's output is (``OUTPUT_KINDS``); None for catalog entries and files."""
        return OUTPUT_KINDS.get((self.steps[r.step].kind, r.output or "")) if r.step is not None else None

    def _no_imagery(self, step: Step, key: str, where: str) -> None:
        """Refuse an earlier step's imagery where a class map is wanted (before any work)."""
        for r in step.refs[key]:
            if self._output_kind(r) == "image":
                raise ConfigError(
                    f"{where}: {key}: {r.text!r} is imagery, not a class map; predict it first, or refer "
                    f"to its truth ({r.step}.truth)",
                    self.path,
                )

    def _plan_synthetic(self, step: Step, where: str) -> Step:
        d = step.params.get("date")
        return _with(step, outputs={
            "image": (Item(self.out / f"{step.name}.tif", date=d),),
            "truth": (Item(self.out / f"{step.name}_truth.tif", date=d),),
        })  # fmt: skip

    def _plan_predict(self, step: Step, where: str) -> Step:
        refs = step.refs["images"]
        for r in refs:
            if self._output_kind(r) not in ("image", None):
                raise ConfigError(f"{where}: images: {r.text!r} is not imagery", self.path)
        groups = [r.items for r in refs]
        if len(groups) == 1 and len(groups[0]) > 1:
            items = groups[0]
            if step.params["dates"]:
                wanted = set(step.params["dates"])
                items = tuple(i for i in items if i.key in wanted)
                missing = wanted - {i.key for i in items}
                if missing:
                    raise ConfigError(
                        f"{where}: dates: {sorted(missing)[0]} is not in {refs[0].text}", self.path
                    )
            outs = tuple(Item(self.out / step.name / f"{i.key}.tif", key=i.key, date=i.date) for i in items)
            inputs: list[tuple[Item, ...]] = [(i,) for i in items]
            step = _with(step, refs={**step.refs, "images": (_with(refs[0], items=items),)})
        else:
            if any(len(g) != 1 for g in groups):
                raise ConfigError(
                    f"{where}: images: give one time series or label set, or scenes to mosaic, not both",
                    self.path,
                )
            first = groups[0][0]
            outs = (Item(self.out / f"{step.name}.tif", date=first.date),)
            inputs = [tuple(g[0] for g in groups)]
        model = step.refs["model"][0].items[0].path
        if step.refs["model"][0].step is None and all(r.step is None for r in refs):
            self._check_bands(model, inputs[0], step, where)  # both known now
        return _with(step, outputs={"map": outs})

    def _check_bands(self, model: Path, images: tuple[Item, ...], step: Step, where: str) -> None:
        """The model's band count against the first input's, before any work."""
        from geoseg.inference import read_spec
        from geoseg.raster import open_raster

        spec = read_spec(model)
        first = images[0]
        if step.params["bands"]:
            count = len(step.params["bands"])
        elif first.sources:
            count = len(first.sources)
        else:
            count = open_raster(first.path, require_crs=False).count
            if count != len(spec.bands):
                names = {n.lower() for n in open_raster(first.path, require_crs=False).band_names}
                if all(b.lower() in names for b in spec.bands):
                    count = len(spec.bands)
        if count != len(spec.bands):
            raise ConfigError(
                f"{where}: model {model.name} expects {len(spec.bands)} bands ({', '.join(spec.bands)}) but "
                f"{first.path.name} has {count}; choose bands with bands: [...]",
                self.path,
            )

    def _plan_vectorize(self, step: Step, where: str) -> Step:
        self._one_raster(step, "map", where)
        self._no_imagery(step, "map", where)
        layer = step.params["layer"] or step.name
        return _with(step, layers={layer: layer})

    def _plan_change(self, step: Step, where: str) -> Step:
        for key in ("before", "after"):
            self._one_raster(step, key, where)
            self._no_imagery(step, key, where)
        prefix = step.params["layer_prefix"]
        names = list(CHANGE_LAYERS) + (
            ["landcover_before", "landcover_after"] if step.params["landcover"] else []
        )
        outs: dict[str, tuple[Item, ...]] = {"raster": (Item(self.out / f"{step.name}.tif"),)}
        if step.params["report"]:
            outs["report"] = (Item(self.out / f"{step.name}_report"),)
        return _with(step, outputs=outs, layers={n: prefix + n for n in names})

    def _plan_track(self, step: Step, where: str) -> Step:
        if step.params["classify"] is None:  # with classify, the maps are imagery
            self._no_imagery(step, "maps", where)
        items = tuple(i for r in step.refs["maps"] for i in r.items)
        dates = step.params["dates"] or [i.date for i in items]
        if any(d is None for d in dates):
            raise ConfigError(
                f"{where}: the maps carry no dates; give dates: [one per map, oldest first]", self.path
            )
        from geoseg.temporal import check_dates, check_persist

        try:
            check_dates([str(d) for d in dates], len(items))
            check_persist(step.params["persist"], len(items))
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}", self.path) from None
        params = dict(step.params)
        params["_dates"] = [str(d) for d in dates]
        prefix = step.params["layer_prefix"]
        outs: dict[str, tuple[Item, ...]] = {"loss_year": (Item(self.out / f"{step.name}_loss_year.tif"),)}
        if step.params["classify"] is not None:
            outs["classified"] = tuple(
                Item(self.out / f"{step.name}_classified" / f"{d}.tif", key=str(d), date=str(d))
                for d in dates
            )
            from geoseg.temporal import NEEDED

            names = step.params["bands"] or (list(items[0].band_names) if items[0].band_names else None)
            if names is None or not all(n in names for n in NEEDED):
                raise ConfigError(
                    f"{where}: classify needs the bands {', '.join(NEEDED)} by name; give bands: [...] "
                    "(the imagery's band names in file order)",
                    self.path,
                )
            params["_bands"] = list(names)
        if step.params["report"]:
            outs["report"] = (Item(self.out / f"{step.name}_report"),)
        return _with(step, outputs=outs, params=params, layers={n: prefix + n for n in TRACK_LAYERS})

    def _plan_report(self, step: Step, where: str) -> Step:
        include = step.params["include"]
        if include is None:
            include = [s for s, st in self.steps.items() if st.kind not in ("train", "report")]
        for s in include:
            if s not in self.steps:
                raise ConfigError(
                    f"{where}: include: no earlier step {s!r}{_suggest(s, list(self.steps))}", self.path
                )
        ev = step.params["evaluate"]
        if ev is not None:
            from geoseg.data import LabelSetEntry

            entry = self._entry(ev["dataset"], where, "evaluate.dataset")
            if not isinstance(entry, LabelSetEntry):
                raise ConfigError(
                    f"{where}: evaluate.dataset {ev['dataset']!r} is not a label set", self.path
                )
            entry.require()
        for k, r in step.refs.items():
            if k.startswith(("accuracy", "loss_accuracy")) and len(r[0].items) != 1:
                raise ConfigError(
                    f"{where}: {k}: {r[0].text!r} must be one raster; pick one with @KEY", self.path
                )
        params = dict(step.params)
        params["include"] = list(include)
        return _with(step, outputs={"html": (Item(self.out / step.name),)}, params=params)

    # ---------------------------------------------------------------- collisions

    def _claim(self, step: Step, where: str) -> None:
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


_T = TypeVar("_T", Step, Ref)


def _with(obj: _T, **changes: Any) -> _T:
    import dataclasses

    return dataclasses.replace(obj, **changes)


def _tile_key(path: Path) -> str:
    name = path.name
    for suffix in (".tiff", ".tif"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    return slug(name)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))
