"""The data catalog: ``data_catalog.yaml`` -> validated, typed entries, resolved against a data root.

An entry names one dataset (or model) and says, for users, where its original lives: a
``source`` (landing page, licence, citation, optionally how to download it) and every file with
its sha256. The files themselves never live in the repository: they sit under a *data root*
(``$GEOSEG_DATA``, ``../shared/data`` beside a checkout, or a per-user data directory) and
``fetch`` downloads the missing ones, checking each sha256 before it is moved into place.

Four kinds of entries:

- ``scene``: one image, from one multi-band file or several single-band files stacked in order.
- ``timeseries``: dated rasters with the same band layout.
- ``labelset``: either image tiles paired with class masks per split (training/validation/test),
  or one scene with a dense label raster and/or label polygons/points.
- ``model``: a checkpoint file, found in the package's ``models`` directory or the data root.

The catalog is validated strictly when loaded (the models of ``_entries``): an unknown key, a
missing key, a wrong type, an unknown kind, a duplicate name or a path that leaves the data
root raises ``CatalogError``, one line naming the catalog file, the entry and the key as the
file writes it (``entry 'tiny': key 'files.b1.tif': expected a sha256 ...``). The library never
prints; downloads report through a ``Progress`` callback."""

from __future__ import annotations

import types
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin, overload

from pydantic import BaseModel, BeforeValidator, Field, ValidationError, model_validator

from geoseg.data._entries import (
    E,
    Entry,
    LabelSetEntry,
    ModelEntry,
    SceneEntry,
    TimeSeriesEntry,
    _Model,
)
from geoseg.data._fields import At, FromMapping, as_tuple, typename
from geoseg.data._paths import CATALOG_ENV, CATALOG_VERSION, KINDS, PathLike, default_catalog_path
from geoseg.errors import CatalogError
from geoseg.options import option, problem, suggest
from geoseg.yamlfile import read_yaml

AnyEntry = Annotated[SceneEntry | TimeSeriesEntry | LabelSetEntry | ModelEntry, Field(discriminator="kind")]


def _version(value: Any) -> int:
    if isinstance(value, bool) or value != CATALOG_VERSION:
        raise ValueError(f"unsupported catalog version {value!r}; expected {CATALOG_VERSION}")
    return int(value)


class CatalogFile(_Model):
    """The catalog file: its format version and its entries."""

    version: Annotated[int, BeforeValidator(_version)] = option(..., f"the catalog format: {CATALOG_VERSION}")
    entries: Annotated[tuple[AnyEntry, ...], as_tuple("a list of entries")] = option(
        ..., "the datasets and models"
    )

    @model_validator(mode="after")
    def _check(self) -> CatalogFile:
        seen: dict[str, int] = {}
        for i, e in enumerate(self.entries):
            if e.name in seen:
                raise At(f"duplicate name (entries #{seen[e.name] + 1} and #{i + 1})", "entries", i, "name")
            seen[e.name] = i
        by_name = {e.name: e for e in self.entries}
        for i, e in enumerate(self.entries):
            if isinstance(e, LabelSetEntry) and e.image is not None:
                target = by_name.get(e.image)
                if not isinstance(target, SceneEntry):
                    what = f"a {target.kind}" if target is not None else "not in the catalog"
                    raise At(f"{e.image!r} must name a scene entry; it is {what}", "entries", i, "image")
        return self


@dataclass(frozen=True)
class Catalog:
    """The validated entries of one catalog file."""

    path: Path
    entries: tuple[Entry, ...]

    def names(self) -> list[str]:
        """The entry names, in catalog order."""
        return [e.name for e in self.entries]

    def __iter__(self) -> Iterator[Entry]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, name: object) -> bool:
        return any(e.name == name for e in self.entries)

    @overload
    def get(self, name: str) -> Entry: ...
    @overload
    def get(self, name: str, kind: type[E]) -> E: ...

    def get(self, name: str, kind: type[Entry] | None = None) -> Entry:
        """The entry called ``name``; with ``kind`` (e.g. ``SceneEntry``) it must be of that kind."""
        for e in self.entries:
            if e.name == name:
                if kind is not None and not isinstance(e, kind):
                    field = kind.model_fields["kind"]
                    want = field.default if isinstance(field.default, str) else kind.__name__
                    raise CatalogError(f"entry {name!r} is a {e.kind}, not a {want}", path=self.path)
                return e
        raise CatalogError(
            f"no entry {name!r}{suggest(name, self.names())}; known entries: {', '.join(self.names()) or 'none'}",
            path=self.path,
        )


def load_catalog(path: PathLike | None = None) -> Catalog:
    """Read and validate a catalog file.

    Parameters
    ----------
    path
        The catalog file; default: ``default_catalog_path()``.

    Returns
    -------
    Catalog
        Its entries, checked.

    Raises
    ------
    CatalogError
        One line naming the file, the entry and the key, for an unreadable file, YAML that
        does not parse (or repeats a key) and any entry that breaks the catalog's rules.
    """
    catalog_path = Path(path) if path is not None else default_catalog_path()
    if not catalog_path.is_file():
        why = "no such file" if not catalog_path.exists() else "not a file"
        raise CatalogError(
            f"cannot read the catalog: {why}; pass --catalog PATH or set {CATALOG_ENV}", path=catalog_path
        )
    data = read_yaml(catalog_path, error=CatalogError)
    if data is None:
        raise CatalogError("empty catalog; expected 'version' and 'entries'", path=catalog_path)
    try:
        parsed = CatalogFile.model_validate(data)
    except ValidationError as exc:
        raise CatalogError(_one_line(exc, data), path=catalog_path) from None
    return Catalog(path=catalog_path, entries=parsed.entries)


# ------------------------------------------------------------------------- messages


def _one_line(exc: ValidationError, raw: Any) -> str:
    """The first error of ``exc`` as ``entry 'NAME': key 'KEY': PROBLEM``, keys as the file writes them."""
    e = exc.errors()[0]
    loc: list[Any] = list(e["loc"])
    ctx = e.get("ctx") or {}
    cause = ctx.get("error")
    kind = e["type"]
    if isinstance(cause, At):
        if cause.parent:  # name the mapping, not the bad key in it (the message says the key)
            loc = loc[:-2] if loc and loc[-1] == "[key]" else loc[:-1]
        loc += cause.at
        text = cause.message
    elif kind == "union_tag_invalid":
        loc.append("kind")
        text = f"unknown kind {ctx.get('tag')!r} (kinds: {', '.join(KINDS)})"
    elif kind == "union_tag_not_found":
        loc.append("kind")
        text = _missing(Entry, "kind")
    elif kind == "missing":
        parent = _model_at(loc[:-1])
        text = _missing(parent, str(loc[-1])) if parent is not None else "missing (required)"
    elif kind == "extra_forbidden":
        parent = _model_at(loc[:-1])
        known = list(parent.model_fields) if parent is not None else []
        text = f"unknown key{suggest(str(loc[-1]), known)}"
        text += f"; known keys here: {', '.join(known)}" if known else ""
    elif kind in ("model_type", "model_attributes_type", "dict_type"):
        text = f"expected a mapping, got {typename(e.get('input'))}"
    elif kind in ("value_error", "assertion_error"):
        text = str(cause) if cause is not None else str(e["msg"])
    else:
        text = problem(CatalogFile, e)
    label, key = _where(loc, raw)
    where = f"entry {label!r}: " if label is not None else ""
    return f"{where}{f'key {key!r}: ' if key else ''}{text}"


def _missing(model: type[BaseModel], name: str) -> str:
    info = model.model_fields.get(name)
    described = info.description if info is not None else None
    return f"missing (required): {described}" if described else "missing (required)"


def _where(loc: Sequence[Any], raw: Any) -> tuple[str | None, str]:
    """The entry (its name, else ``#N``) and the key (``files.b1.tif``, ``rasters[2].date``)."""
    label = None
    node = raw
    parts = list(loc)
    if len(parts) >= 2 and parts[0] == "entries" and isinstance(parts[1], int):
        entries = raw.get("entries") if isinstance(raw, dict) else None
        node = entries[parts[1]] if isinstance(entries, list) and parts[1] < len(entries) else None
        name = node.get("name") if isinstance(node, dict) else None
        label = name if isinstance(name, str) else f"#{parts[1] + 1}"
        parts = parts[2:]
        # a discriminated union puts the kind in the location: it is not a key of the file
        if parts and isinstance(node, dict) and parts[0] == node.get("kind") and parts[0] in KINDS:
            parts = parts[1:]
    key = ""
    for part in parts:
        if part == "[key]":
            break
        if isinstance(node, list) and isinstance(part, int):
            key += f"[{part}]"
            node = node[part] if part < len(node) else None
        elif isinstance(node, dict) or node is None:
            key += f".{part}" if key else str(part)
            node = node.get(part) if isinstance(node, dict) else None
        else:  # a short form (`b1.tif: <sha256>`, `1: forest`) stands for the whole record
            break
    return label, key


def _unwrap(t: Any) -> Any:
    """``t`` without ``Annotated`` and ``None``; a union of several models as a list of them."""
    while True:
        origin = get_origin(t)
        if origin is Annotated:
            t = get_args(t)[0]
        elif origin in (Union, types.UnionType):
            members = [a for a in get_args(t) if a is not type(None)]
            if len(members) != 1:
                return members
            t = members[0]
        else:
            return t


def _model_at(loc: Sequence[Any]) -> type[BaseModel] | None:
    """The model an error location points into, for its field names and help."""
    current: Any = CatalogFile
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, list):  # the kinds of entries: the location names the kind
            current = next((m for m in current if m.model_fields["kind"].default == part), None)
        elif isinstance(current, type) and issubclass(current, BaseModel):
            info = current.model_fields.get(str(part))
            if info is None:
                return None
            mapping = next((m for m in info.metadata if isinstance(m, FromMapping)), None)
            current = dict[Any, mapping.item] if mapping is not None else info.annotation  # type: ignore[name-defined]
        elif get_origin(current) in (tuple, list):
            current = get_args(current)[0]
        elif get_origin(current) is dict:
            current = get_args(current)[1]
        else:
            return None
        if current is None:
            return None
    current = _unwrap(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None
