"""The catalog file parsed and checked, key by key."""

from __future__ import annotations

import datetime as _dt
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from geoseg.data._entries import (
    Archive,
    DatedRaster,
    Entry,
    FileRecord,
    LabelClass,
    LabelSetEntry,
    ModelEntry,
    SceneEntry,
    Source,
    Split,
    TimeSeriesEntry,
)
from geoseg.data._paths import (
    _DATE,
    _NAME,
    _SHA256,
    ARCHIVE_FORMATS,
    CATALOG_VERSION,
    KINDS,
    PAIR_RULES,
    _pair_key,
)
from geoseg.errors import (
    CatalogError,
)


class _StrictLoader(yaml.SafeLoader):
    """A SafeLoader that refuses duplicate mapping keys (plain PyYAML keeps the last one)."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            duplicate = key in seen
        except TypeError:  # an unhashable key: let construct_mapping report it
            continue
        if duplicate:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=True)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """One line out of a (multi-line) PyYAML error."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        return f"{exc.problem} (line {mark.line + 1}, column {mark.column + 1})"
    return " ".join(str(exc).split())


def _typename(value: object) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list"}
    if value is None:
        return "nothing"
    if isinstance(value, dict):
        return "a mapping"
    return names.get(type(value), type(value).__name__)


class _Fields:
    """Reads the keys of one YAML mapping, remembering which were read so leftovers are errors."""

    def __init__(self, data: object, catalog: Path, entry: str | None, prefix: str = "") -> None:
        self.catalog = catalog
        self.entry = entry
        self.prefix = prefix
        if not isinstance(data, dict):
            raise self.error(None, f"expected a mapping, got {_typename(data)}")
        self.data: dict[Any, Any] = data
        self.used: set[str] = set()

    def key(self, key: str | None) -> str:
        if key is None:
            return self.prefix.rstrip(".")
        return f"{self.prefix}{key}"

    def error(self, key: str | None, message: str) -> CatalogError:
        where = f"entry {self.entry!r}: " if self.entry is not None else ""
        k = self.key(key)
        return CatalogError(f"{where}{f'key {k!r}: ' if k else ''}{message}", path=self.catalog)

    def sub(self, key: str, data: object) -> _Fields:
        return _Fields(data, self.catalog, self.entry, f"{self.key(key)}.")

    def raw(self, key: str, required: bool) -> Any:
        self.used.add(key)
        if key not in self.data or self.data[key] is None:
            if required:
                raise self.error(key, "missing (required)")
            return None
        return self.data[key]

    def req_str(self, key: str) -> str:
        value = self.opt_str(key, required=True)
        assert value is not None  # required=True never returns None
        return value

    def opt_str(self, key: str, required: bool = False) -> str | None:
        value = self.raw(key, required)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            raise self.error(key, f"expected a non-empty string, got {_typename(value)}")
        return value

    def rel_path(self, key: str, required: bool = False) -> str | None:
        value = self.opt_str(key, required)
        return None if value is None else self.check_rel(key, value)

    def check_rel(self, key: str, value: str) -> str:
        """A POSIX path (or glob) that stays inside the directory it is relative to."""
        p = PurePosixPath(value)
        if "\\" in value or p.is_absolute() or ".." in p.parts or not p.parts or p.parts[0] == ".":
            raise self.error(key, f"{value!r} is not a relative POSIX path inside the data root")
        return p.as_posix()

    def str_list(self, key: str, required: bool = False) -> tuple[str, ...] | None:
        value = self.raw(key, required)
        if value is None:
            return None
        if not isinstance(value, list) or not value:
            raise self.error(key, f"expected a non-empty list of strings, got {_typename(value)}")
        for item in value:
            if not isinstance(item, str) or not item.strip():
                raise self.error(key, f"expected strings, got {_typename(item)} ({item!r})")
        if len(set(value)) != len(value):
            raise self.error(key, f"has duplicates: {value}")
        return tuple(value)

    def number(self, key: str) -> float | None:
        value = self.raw(key, False)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(key, f"expected a number, got {_typename(value)}")
        return float(value)

    def url(self, key: str, required: bool = False, *, template: bool = False) -> str | None:
        value = self.opt_str(key, required)
        if value is None:
            return None
        parsed = urllib.parse.urlparse(value)
        ok = (parsed.scheme in ("http", "https") and bool(parsed.netloc)) or parsed.scheme == "file"
        if not ok:
            raise self.error(key, f"{value!r} is not an http(s) or file URL")
        if template and "{path}" not in value and "{name}" not in value:
            raise self.error(key, f"{value!r} has neither {{path}} nor {{name}} in it")
        return value

    def sha256(self, key: str, value: object) -> str:
        if not isinstance(value, str) or not _SHA256.match(value.lower()):
            raise self.error(key, f"expected a sha256 (64 hex digits), got {value!r}")
        return value.lower()

    def finish(self) -> None:
        unknown = [k for k in self.data if k not in self.used]
        if unknown:
            raise self.error(
                str(unknown[0]), f"unknown key (known keys here: {', '.join(sorted(self.used))})"
            )


def _parse_catalog(data: object, catalog_path: Path) -> tuple[Entry, ...]:
    if data is None:
        raise CatalogError("empty catalog; expected 'version' and 'entries'", path=catalog_path)
    top = _Fields(data, catalog_path, None)
    version = top.raw("version", True)
    if version != CATALOG_VERSION or isinstance(version, bool):
        raise top.error("version", f"unsupported catalog version {version!r}; expected {CATALOG_VERSION}")
    raw_entries = top.raw("entries", True)
    top.finish()
    if not isinstance(raw_entries, list):
        raise top.error("entries", f"expected a list of entries, got {_typename(raw_entries)}")

    entries: list[Entry] = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(raw_entries, start=1):
        label = raw.get("name") if isinstance(raw, dict) and isinstance(raw.get("name"), str) else None
        entry = _parse_entry(_Fields(raw, catalog_path, label or f"#{index}"))
        if entry.name in seen:
            raise CatalogError(
                f"entry {entry.name!r}: key 'name': duplicate name (entries #{seen[entry.name]} "
                f"and #{index})",
                path=catalog_path,
            )
        seen[entry.name] = index
        entries.append(entry)

    # Cross-entry references.
    by_name = {e.name: e for e in entries}
    for e in entries:
        if isinstance(e, LabelSetEntry) and e.image is not None:
            target = by_name.get(e.image)
            if not isinstance(target, SceneEntry):
                what = f"a {target.kind}" if target is not None else "not in the catalog"
                raise CatalogError(
                    f"entry {e.name!r}: key 'image': {e.image!r} must name a scene entry; it is {what}",
                    path=catalog_path,
                )
    return tuple(entries)


def _parse_entry(f: _Fields) -> Entry:
    name = f.req_str("name")
    if not _NAME.match(name):
        raise f.error("name", f"{name!r} must be lowercase letters, digits, '.', '_' or '-'")
    f.entry = name
    kind = f.req_str("kind")
    if kind not in KINDS:
        raise f.error("kind", f"unknown kind {kind!r} (kinds: {', '.join(KINDS)})")
    common: dict[str, Any] = {
        "name": name,
        "description": f.req_str("description"),
        "source": _parse_source(f.sub("source", f.raw("source", True))),
        "files": _parse_files(f),
        "dir": f.rel_path("dir") or "",
    }
    catalogued = {rec.path for rec in common["files"]}

    def listed(key: str, path: str | None) -> str | None:
        if path is not None and path not in catalogued:
            raise f.error(key, f"{path!r} is not one of the entry's files")
        return path

    entry: Entry
    if kind == "scene":
        paths = f.str_list("paths", True)
        assert paths is not None
        paths = tuple(f.check_rel("paths", p) for p in paths)
        for p in paths:
            listed("paths", p)
        bands = f.str_list("bands")
        if bands is not None and len(paths) > 1 and len(bands) != len(paths):
            raise f.error(
                "bands",
                f"{len(bands)} band names for {len(paths)} single-band files; give one name per file",
            )
        entry = SceneEntry(**common, paths=paths, bands=bands, nodata=f.number("nodata"))
    elif kind == "timeseries":
        entry = TimeSeriesEntry(
            **common, rasters=_parse_rasters(f, listed), bands=f.str_list("bands"), nodata=f.number("nodata")
        )
    elif kind == "labelset":
        entry = _parse_labelset(f, common, listed)
    else:
        model_path = listed("path", f.rel_path("path", True))
        assert model_path is not None
        entry = ModelEntry(
            **common,
            path=model_path,
            arch=f.req_str("arch"),
            encoder=f.req_str("encoder"),
            bands=f.str_list("bands"),
            classes=_parse_classes(f, required=False),
        )
    f.finish()
    return entry


def _parse_source(f: _Fields) -> Source:
    archive = None
    raw_archive = f.raw("archive", False)
    if raw_archive is not None:
        a = f.sub("archive", raw_archive)
        fmt = a.req_str("format")
        if fmt not in ARCHIVE_FORMATS:
            raise a.error("format", f"unknown archive format {fmt!r} (formats: {', '.join(ARCHIVE_FORMATS)})")
        sha = a.raw("sha256", False)
        archive = Archive(
            url=a.url("url", True) or "", format=fmt, sha256=None if sha is None else a.sha256("sha256", sha)
        )
        a.finish()
    source = Source(
        url=f.url("url", True) or "",
        licence=f.req_str("licence"),
        citation=f.opt_str("citation") or "",
        download=f.url("download", template=True),
        archive=archive,
    )
    if source.download and source.archive:
        raise f.error("archive", "give either 'download' or 'archive', not both")
    f.finish()
    return source


def _parse_files(f: _Fields) -> tuple[FileRecord, ...]:
    raw = f.raw("files", True)
    if not isinstance(raw, dict) or not raw:
        raise f.error("files", f"expected a mapping of path -> sha256, got {_typename(raw)}")
    records = []
    for path, spec in raw.items():
        key = f"files.{path}"
        if not isinstance(path, str):
            raise f.error("files", f"file path {path!r} is not a string")
        rel = f.check_rel(key, path)
        if isinstance(spec, dict):
            s = _Fields(spec, f.catalog, f.entry, f"{f.key(key)}.")
            rec = FileRecord(rel, s.sha256("sha256", s.raw("sha256", True)), s.url("url"))
            s.finish()
        else:
            rec = FileRecord(rel, f.sha256(key, spec))
        records.append(rec)
    return tuple(records)


def _parse_classes(f: _Fields, required: bool) -> tuple[LabelClass, ...]:
    raw = f.raw("classes", required)
    if raw is None:
        return ()
    if not isinstance(raw, dict) or not raw:
        raise f.error("classes", f"expected a mapping of class value -> name, got {_typename(raw)}")
    out = []
    for value, spec in raw.items():
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 254:
            raise f.error(
                "classes", f"class value {value!r} must be an integer 0..254 (255 is the class maps' nodata)"
            )
        # `1: forest`, or `1: {name: forest, colour: "#228b22"}` where the default palette
        # would mislead (a blue non-forest class reads as water in every quick-look)
        name, colour = spec, None
        if isinstance(spec, dict):
            extra = sorted(set(spec) - {"name", "colour"})
            if extra:
                raise f.error(f"classes.{value}", f"unknown keys {extra}; a class has a name and a colour")
            name = spec.get("name")
            colour = _parse_colour(f, f"classes.{value}.colour", spec.get("colour"))
        if not isinstance(name, str) or not name.strip():
            raise f.error(f"classes.{value}", f"expected a class name, got {_typename(name)}")
        out.append(LabelClass(value, name, colour))
    if len({c.name for c in out}) != len(out):
        raise f.error("classes", "class names must be unique")
    return tuple(sorted(out, key=lambda c: c.value))


def _parse_colour(f: _Fields, key: str, raw: object) -> tuple[int, int, int] | None:
    """``"#rrggbb"`` or ``[r, g, b]`` (0..255 each); absent is None."""
    if raw is None:
        return None
    if isinstance(raw, str) and re.fullmatch(r"#[0-9a-fA-F]{6}", raw):
        return (int(raw[1:3], 16), int(raw[3:5], 16), int(raw[5:7], 16))
    if (
        isinstance(raw, list)
        and len(raw) == 3
        and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in raw)
    ):
        return (raw[0], raw[1], raw[2])
    raise f.error(key, f'expected "#rrggbb" or [r, g, b] with values 0..255, got {raw!r}')


def _parse_date(f: _Fields, key: str, value: object) -> str:
    if isinstance(value, _dt.date) and not isinstance(value, _dt.datetime):
        return value.isoformat()
    if isinstance(value, int) and not isinstance(value, bool) and 1000 <= value <= 9999:
        return str(value)
    if isinstance(value, str) and _DATE.match(value):
        return value
    raise f.error(key, f"expected a date YYYY, YYYY-MM or YYYY-MM-DD, got {value!r}")


def _parse_rasters(f: _Fields, listed: Callable[[str, str | None], str | None]) -> tuple[DatedRaster, ...]:
    raw = f.raw("rasters", True)
    if not isinstance(raw, list) or not raw:
        raise f.error("rasters", f"expected a list of {{date, path}}, got {_typename(raw)}")
    out: list[DatedRaster] = []
    for i, item in enumerate(raw):
        r = f.sub(f"rasters[{i}]", item)
        date = _parse_date(r, "date", r.raw("date", True))
        path = listed(f"rasters[{i}].path", r.rel_path("path", True))
        assert path is not None
        r.finish()
        if out and date <= out[-1].date:
            raise f.error(f"rasters[{i}].date", f"{date} does not come after {out[-1].date}")
        out.append(DatedRaster(date, path))
    return tuple(out)


def _parse_labelset(
    f: _Fields, common: dict[str, Any], listed: Callable[[str, str | None], str | None]
) -> LabelSetEntry:
    classes = _parse_classes(f, required=True)
    bands = f.str_list("bands")
    raw_splits = f.raw("splits", False)
    image = f.opt_str("image")
    pair_by = f.opt_str("pair_by") or "stem"
    if pair_by not in PAIR_RULES:
        raise f.error("pair_by", f"unknown rule {pair_by!r} (rules: {', '.join(PAIR_RULES)})")
    label_raster = listed("label_raster", f.rel_path("label_raster"))
    polygons = listed("polygons", f.rel_path("polygons"))
    points = listed("points", f.rel_path("points"))
    class_field = f.opt_str("class_field")

    if (raw_splits is None) == (image is None):
        raise f.error("splits", "a label set has either 'splits' (tiles with masks) or 'image' (one scene)")
    if image is not None and label_raster is None and polygons is None and points is None:
        raise f.error("image", "a single-scene label set needs 'label_raster', 'polygons' or 'points'")
    if (polygons or points) and not class_field:
        raise f.error("class_field", "missing (required with 'polygons' or 'points')")

    entry = LabelSetEntry(
        **common,
        classes=classes,
        bands=bands,
        splits=_parse_splits(f, raw_splits) if raw_splits is not None else (),
        pair_by=pair_by,
        image=image,
        label_raster=label_raster,
        polygons=polygons,
        points=points,
        class_field=class_field,
    )
    # Check the globs against the catalogued files now, so a typo fails at load time.
    for s in entry.splits:
        key = f"splits.{s.name}"
        images = entry._matching(s.images)
        if not images:
            raise f.error(f"{key}.images", f"{s.images!r} matches none of the entry's files")
        if s.masks is None:
            continue
        masks = entry._matching(s.masks)
        if not masks:
            raise f.error(f"{key}.masks", f"{s.masks!r} matches none of the entry's files")
        for group, other, label in ((images, masks, "image"), (masks, images, "mask")):
            keys = [_pair_key(p, pair_by) for p in group]
            if len(set(keys)) != len(keys):
                raise f.error(key, f"two {label}s share a {pair_by!r} key")
            other_keys = {_pair_key(p, pair_by) for p in other}
            for p in group:
                if _pair_key(p, pair_by) not in other_keys:
                    raise f.error(key, f"{label} {p!r} has no partner by {pair_by!r}")
    return entry


def _parse_splits(f: _Fields, raw: object) -> tuple[Split, ...]:
    if not isinstance(raw, dict) or not raw:
        raise f.error(
            "splits", f"expected a mapping of split name -> {{images, masks}}, got {_typename(raw)}"
        )
    out = []
    for name, spec in raw.items():
        if not isinstance(name, str):
            raise f.error("splits", f"split name {name!r} is not a string")
        s = f.sub(f"splits.{name}", spec)
        images = s.rel_path("images", True)
        assert images is not None
        out.append(Split(name, images, s.rel_path("masks")))
        s.finish()
    return tuple(out)
