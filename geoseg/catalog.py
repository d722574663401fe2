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

The catalog is validated strictly when loaded: an unknown key, a missing key, a wrong type, an
unknown kind, a duplicate name or a path that leaves the data root raises ``CatalogError``
naming the catalog file, the entry and the key. The library never prints; downloads report
through a ``Progress`` callback.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import http.client
import os
import re
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath
from typing import IO, Any, TypeVar, overload

import yaml

from geoseg import __version__
from geoseg.errors import (
    CatalogError,
    ChecksumError,
    DataUnavailableError,
    MissingFileError,
    OutputError,
)
from geoseg.progress import Progress, report

CATALOG_ENV = "GEOSEG_CATALOG"
DATA_ENV = "GEOSEG_DATA"
CATALOG_FILENAME = "data_catalog.yaml"
CATALOG_VERSION = 1
KINDS = ("scene", "timeseries", "labelset", "model")
ARCHIVE_FORMATS = ("zip", "tar")
PAIR_RULES = ("stem",)

#: Network timeout of each connect and read, in seconds. Short, so that an offline machine
#: fails at once with a clear message instead of hanging.
TIMEOUT_S = 10.0

_PACKAGE_DIR = Path(__file__).resolve().parent
_REPO_ROOT = _PACKAGE_DIR.parent
#: Checkpoints shipped with the package; model entries look here before the data root.
MODELS_DIR = _PACKAGE_DIR / "models"

_CHUNK = 1 << 20
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_DATE = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?$")

PathLike = str | os.PathLike[str]


# --------------------------------------------------------------------------- locations


def data_root() -> Path:
    """The directory that catalog paths are relative to.

    In order: ``$GEOSEG_DATA``; ``../shared/data`` beside the repository checkout this module
    runs from, or beside the current working directory; else a per-user data directory,
    ``$XDG_DATA_HOME/geoseg`` or ``~/.local/share/geoseg`` (which may not exist yet: ``fetch``
    creates it).
    """
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser().absolute()
    for base in (_REPO_ROOT, Path.cwd()):
        candidate = base.parent / "shared" / "data"
        if candidate.is_dir():
            return candidate.resolve()
    xdg = os.environ.get("XDG_DATA_HOME")
    # The XDG spec says a relative XDG_DATA_HOME is invalid and must be ignored.
    base_dir = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "share"
    return base_dir / "geoseg"


def default_catalog_path() -> Path:
    """``$GEOSEG_CATALOG``, else ``data_catalog.yaml`` at the root of the repository checkout,
    else the copy inside an installed package (``geoseg/data_catalog.yaml``, a symlink to the
    root's in the checkout, so a wheel carries the catalog its shipped models are named in).
    """
    env = os.environ.get(CATALOG_ENV)
    if env:
        return Path(env).expanduser()
    checkout = _REPO_ROOT / CATALOG_FILENAME
    return checkout if checkout.is_file() else _PACKAGE_DIR / CATALOG_FILENAME


def _root(root: PathLike | None) -> Path:
    return Path(root) if root is not None else data_root()


# --------------------------------------------------------------------------- value types


@dataclass(frozen=True)
class FileRecord:
    """One catalogued file: its path relative to the entry's directory and its sha256."""

    path: str
    sha256: str
    #: Where to download this file, overriding the source's ``download`` template.
    url: str | None = None


@dataclass(frozen=True)
class Archive:
    """An archive (zip, wheel, tar, tar.gz...) holding the entry's files.

    Files are taken out of it by base name and sha256, so its internal layout does not matter.
    """

    url: str
    format: str
    sha256: str | None = None


@dataclass(frozen=True)
class Source:
    """Where the original data lives, under what terms, and how to download it."""

    url: str
    licence: str
    citation: str = ""
    #: Per-file download URL template; ``{path}`` is the file's path in the entry, ``{name}``
    #: its base name.
    download: str | None = None
    archive: Archive | None = None

    def file_url(self, record: FileRecord) -> str | None:
        """The URL to download ``record`` from, or None when it only comes in the archive."""
        if record.url:
            return record.url
        if self.download:
            return self.download.replace("{path}", record.path).replace(
                "{name}", PurePosixPath(record.path).name
            )
        return None


@dataclass(frozen=True)
class LabelClass:
    """A class value in a label raster or mask, its name, and its display colour if given."""

    value: int
    name: str
    colour: tuple[int, int, int] | None = None


@dataclass(frozen=True)
class Split:
    """A named split of a tiled label set: a glob for its images, and one for its masks."""

    name: str
    images: str
    masks: str | None = None


@dataclass(frozen=True)
class DatedRaster:
    """One raster of a time series. ``date`` is ``YYYY``, ``YYYY-MM`` or ``YYYY-MM-DD``."""

    date: str
    path: str


# --------------------------------------------------------------------------- entries


@dataclass(frozen=True, kw_only=True)
class Entry:
    """Fields and file handling common to every kind of entry."""

    name: str
    kind: str = field(init=False, default="")
    description: str
    source: Source
    files: tuple[FileRecord, ...]
    #: The entry's directory, relative to the data root ("" is the root itself).
    dir: str = ""

    def directory(self, root: PathLike | None = None) -> Path:
        """The entry's directory under ``root`` (default: ``data_root()``)."""
        base = _root(root)
        return base / self.dir if self.dir else base

    def resolve(self, path: str, root: PathLike | None = None) -> Path:
        """The absolute path of ``path``, a path relative to the entry's directory."""
        return self.directory(root) / path

    def record(self, path: str) -> FileRecord:
        """The catalogued record of ``path``."""
        for rec in self.files:
            if rec.path == path:
                return rec
        raise CatalogError(f"entry {self.name!r} catalogues no file {path!r}")

    def file_paths(self, root: PathLike | None = None) -> list[Path]:
        """Every catalogued file of the entry, resolved."""
        return [self.resolve(rec.path, root) for rec in self.files]

    def missing_files(self, root: PathLike | None = None) -> list[Path]:
        """The catalogued files that are not on disk."""
        return [p for p in self.file_paths(root) if not p.is_file()]

    def present(self, root: PathLike | None = None) -> bool:
        """Whether every catalogued file is on disk (sha256 not checked: see ``verify``)."""
        return not self.missing_files(root)

    def require(self, root: PathLike | None = None) -> None:
        """Raise ``MissingFileError`` unless every catalogued file is on disk."""
        missing = self.missing_files(root)
        if missing:
            raise MissingFileError(
                f"missing file of catalog entry {self.name!r} ({len(missing)} of {len(self.files)} "
                f"missing); run `geoseg data fetch {self.name}` or set {DATA_ENV} to a directory "
                "that has the data",
                path=missing[0],
            )

    def verify(self, root: PathLike | None = None, progress: Progress | None = None) -> None:
        """Check that every file is on disk and has its catalogued sha256.

        Raises ``MissingFileError`` for a missing file and ``ChecksumError`` (naming the file,
        the expected and the actual hash) for a file with other content.
        """
        self.require(root)
        total = len(self.files)
        report(progress, 0, total)
        for done, rec in enumerate(self.files, start=1):
            path = self.resolve(rec.path, root)
            actual = sha256_file(path)
            if actual != rec.sha256:
                raise ChecksumError(
                    f"sha256 is {actual} but catalog entry {self.name!r} expects {rec.sha256}; "
                    f"the file is damaged or another version: remove it and run "
                    f"`geoseg data fetch {self.name}`",
                    path=path,
                )
            report(progress, done, total, rec.path)


@dataclass(frozen=True, kw_only=True)
class SceneEntry(Entry):
    """One image: one multi-band file, or single-band files stacked in ``paths`` order."""

    kind: str = field(init=False, default="scene")
    paths: tuple[str, ...]
    bands: tuple[str, ...] | None = None
    #: Overrides the files' own nodata value when set.
    nodata: float | None = None

    def raster_paths(self, root: PathLike | None = None) -> list[Path]:
        """The image's files, resolved, in band order."""
        return [self.resolve(p, root) for p in self.paths]


@dataclass(frozen=True, kw_only=True)
class TimeSeriesEntry(Entry):
    """Dated rasters of one place with the same band layout, in increasing date order."""

    kind: str = field(init=False, default="timeseries")
    rasters: tuple[DatedRaster, ...]
    bands: tuple[str, ...] | None = None
    nodata: float | None = None

    @property
    def dates(self) -> tuple[str, ...]:
        """The dates, in increasing order."""
        return tuple(r.date for r in self.rasters)

    def dated_paths(self, root: PathLike | None = None) -> list[tuple[str, Path]]:
        """``(date, path)`` for every raster, in increasing date order."""
        return [(r.date, self.resolve(r.path, root)) for r in self.rasters]

    def scene(self, date: str | int) -> SceneEntry:
        """The raster of one date as a ``SceneEntry`` named ``NAME@DATE``."""
        for r in self.rasters:
            if r.date == str(date):
                return SceneEntry(
                    name=f"{self.name}@{r.date}",
                    description=f"{self.description} ({r.date})",
                    source=self.source,
                    files=(self.record(r.path),),
                    dir=self.dir,
                    paths=(r.path,),
                    bands=self.bands,
                    nodata=self.nodata,
                )
        raise CatalogError(f"entry {self.name!r} has no date {date!r}; dates: {', '.join(self.dates)}")


@dataclass(frozen=True, kw_only=True)
class LabelSetEntry(Entry):
    """Labels to train and evaluate on, in one of two forms.

    - Tiles: ``splits`` give, per split, a glob of image files and a glob of mask files; a
      mask belongs to the image with the same ``pair_by`` key (``stem``: the file name without
      its last extension, ``a.tiff_25.tiff`` <-> ``a.tiff_25.png``). A split without masks
      (e.g. ``test``) has images only.
    - One scene: ``image`` names a scene entry; ``label_raster`` is a dense label raster on its
      grid, ``polygons``/``points`` vector labels whose ``class_field`` holds the class value.

    Globs are matched against the catalogued files (``*`` does not cross ``/``), so the pairs
    are the same whether or not the data is on disk.
    """

    kind: str = field(init=False, default="labelset")
    classes: tuple[LabelClass, ...]
    bands: tuple[str, ...] | None = None
    splits: tuple[Split, ...] = ()
    pair_by: str = "stem"
    image: str | None = None
    label_raster: str | None = None
    polygons: str | None = None
    points: str | None = None
    class_field: str | None = None

    def class_names(self) -> dict[int, str]:
        """``{class value: class name}``."""
        return {c.value: c.name for c in self.classes}

    @property
    def split_names(self) -> tuple[str, ...]:
        """The names of the splits, in catalog order."""
        return tuple(s.name for s in self.splits)

    def split(self, name: str) -> Split:
        """The split called ``name``."""
        for s in self.splits:
            if s.name == name:
                return s
        known = ", ".join(self.split_names) or "none: it is a single-scene label set"
        raise CatalogError(f"entry {self.name!r} has no split {name!r}; splits: {known}")

    def _matching(self, pattern: str) -> list[str]:
        return sorted(rec.path for rec in self.files if _glob_match(rec.path, pattern))

    def _checked(self, paths: list[Path], check: bool) -> None:
        if check:
            missing = [p for p in paths if not p.is_file()]
            if missing:
                raise MissingFileError(
                    f"missing file of catalog entry {self.name!r} ({len(missing)} of {len(paths)} "
                    f"missing); run `geoseg data fetch {self.name}` or set {DATA_ENV}",
                    path=missing[0],
                )

    def images(self, split: str, root: PathLike | None = None, *, check: bool = True) -> list[Path]:
        """The image files of a split, sorted by path; with ``check``, all must exist."""
        out = [self.resolve(p, root) for p in self._matching(self.split(split).images)]
        self._checked(out, check)
        return out

    def pairs(
        self, split: str, root: PathLike | None = None, *, check: bool = True
    ) -> list[tuple[Path, Path]]:
        """``(image, mask)`` for every image of a split, sorted by image path.

        With ``check`` (the default) every file must exist (``MissingFileError`` otherwise).
        """
        s = self.split(split)
        if s.masks is None:
            raise CatalogError(f"split {split!r} of entry {self.name!r} has no masks; use images({split!r})")
        masks = {_pair_key(m, self.pair_by): m for m in self._matching(s.masks)}
        out = [
            (self.resolve(img, root), self.resolve(masks[_pair_key(img, self.pair_by)], root))
            for img in self._matching(s.images)
        ]
        self._checked([p for pair in out for p in pair], check)
        return out

    def _role(self, key: str, value: str | None, root: PathLike | None) -> Path:
        if value is None:
            raise CatalogError(f"entry {self.name!r} has no {key}")
        return self.resolve(value, root)

    def label_raster_path(self, root: PathLike | None = None) -> Path:
        """The dense label raster of a single-scene label set."""
        return self._role("label_raster", self.label_raster, root)

    def polygons_path(self, root: PathLike | None = None) -> Path:
        """The label polygons of a single-scene label set."""
        return self._role("polygons", self.polygons, root)

    def points_path(self, root: PathLike | None = None) -> Path:
        """The label points of a single-scene label set."""
        return self._role("points", self.points, root)


@dataclass(frozen=True, kw_only=True)
class ModelEntry(Entry):
    """A checkpoint file: relative to the package's ``models`` directory or the data root."""

    kind: str = field(init=False, default="model")
    path: str
    arch: str
    encoder: str
    bands: tuple[str, ...] | None = None
    classes: tuple[LabelClass, ...] = ()

    def resolve(self, path: str, root: PathLike | None = None) -> Path:
        """Like ``Entry.resolve``, but a file shipped in the package's models dir comes first.

        An explicit ``root`` is always used as given.
        """
        if root is None:
            shipped = (MODELS_DIR / self.dir / path) if self.dir else MODELS_DIR / path
            if shipped.is_file():
                return shipped
        return super().resolve(path, root)

    def checkpoint_path(self, root: PathLike | None = None) -> Path:
        """The checkpoint file."""
        return self.resolve(self.path, root)


E = TypeVar("E", bound=Entry)


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
                    want = kind.kind or kind.__name__
                    raise CatalogError(f"entry {name!r} is a {e.kind}, not a {want}", path=self.path)
                return e
        raise CatalogError(
            f"no entry {name!r}; known entries: {', '.join(self.names()) or 'none'}", path=self.path
        )


# --------------------------------------------------------------------------- loading


def load_catalog(path: PathLike | None = None) -> Catalog:
    """Read and validate a catalog file (default: ``default_catalog_path()``)."""
    catalog_path = Path(path) if path is not None else default_catalog_path()
    try:
        text = catalog_path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise CatalogError("cannot read the catalog: not UTF-8 text", path=catalog_path) from None
    except OSError as exc:
        raise CatalogError(
            f"cannot read the catalog: {exc.strerror or exc}; pass --catalog PATH or set {CATALOG_ENV}",
            path=catalog_path,
        ) from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass: no arbitrary objects
    except yaml.YAMLError as exc:
        raise CatalogError(f"not a valid YAML catalog: {_yaml_problem(exc)}", path=catalog_path) from None
    return _parse_catalog(data, catalog_path)


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


def _parse_catalog(data: object, catalog_path: Path) -> Catalog:
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
    return Catalog(path=catalog_path, entries=tuple(entries))


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


def _glob_match(path: str, pattern: str) -> bool:
    """Segment-wise glob match: ``*`` and ``?`` never cross ``/``."""
    parts, pats = path.split("/"), pattern.split("/")
    return len(parts) == len(pats) and all(fnmatchcase(a, p) for a, p in zip(parts, pats, strict=True))


def _pair_key(path: str, rule: str) -> str:
    # Only "stem" so far: the file name without its last extension.
    return PurePosixPath(path).stem


# --------------------------------------------------------------------------- checksums, fetch


def sha256_file(path: PathLike) -> str:
    """The sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(
    entry: Entry,
    root: PathLike | None = None,
    progress: Progress | None = None,
    *,
    timeout: float = TIMEOUT_S,
) -> list[Path]:
    """Download the entry's missing files into the data root; return the paths written.

    Each file is streamed into a temporary file beside its destination, its sha256 checked,
    and only then renamed into place, so a failed or interrupted download leaves no partial
    file. Files already present are left alone (check them with ``Entry.verify``).

    Raises ``DataUnavailableError`` when a download fails (offline, unreachable, HTTP error) or
    no download is catalogued, ``ChecksumError`` when downloaded content has another sha256,
    and ``OutputError`` when the data root cannot be written.
    """
    # Presence is checked the way the entry resolves paths (a model shipped in the package
    # counts); downloads always go under the data root.
    missing = [rec for rec in entry.files if not entry.resolve(rec.path, root).is_file()]
    base = _root(root)
    total = len(missing)
    if not total:
        return []
    direct = [rec for rec in missing if entry.source.file_url(rec)]
    from_archive = [rec for rec in missing if not entry.source.file_url(rec)]
    if from_archive and entry.source.archive is None:
        raise DataUnavailableError(
            f"catalog entry {entry.name!r}: no download is catalogued for {from_archive[0].path}; get the "
            f"data from {entry.source.url} and copy the files by hand into {entry.directory(base)}"
        )
    report(progress, 0, total)
    written: list[Path] = []

    def done(path: Path, rec: FileRecord) -> None:
        written.append(path)
        report(progress, len(written), total, rec.path)

    for rec in direct:
        url = entry.source.file_url(rec)
        assert url is not None
        target = entry.resolve(rec.path, base)
        with _urlopen(url, timeout, entry.name, target) as response:
            _write_verified(_read_chunks(response, url, entry.name, target), target, rec, entry.name, url)
        done(target, rec)
    if from_archive:
        assert entry.source.archive is not None
        report(progress, len(written), total, PurePosixPath(entry.source.archive.url).name)
        _fetch_from_archive(entry, entry.source.archive, from_archive, base, timeout, done)
    return written


def _unavailable(entry_name: str, url: str, reason: object, target: Path) -> DataUnavailableError:
    return DataUnavailableError(
        f"catalog entry {entry_name!r}: cannot download {url} ({reason}); if this machine is offline, "
        f"copy the data by hand to {target}"
    )


@contextmanager
def _urlopen(url: str, timeout: float, entry_name: str, target: Path) -> Iterator[IO[bytes]]:
    request = urllib.request.Request(url, headers={"User-Agent": f"geoseg/{__version__}"})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        raise _unavailable(entry_name, url, f"HTTP {exc.code} {exc.reason}", target) from None
    except urllib.error.URLError as exc:
        raise _unavailable(entry_name, url, exc.reason, target) from None
    except (OSError, http.client.HTTPException) as exc:
        raise _unavailable(entry_name, url, exc, target) from None
    with response:
        yield response


def _read_chunks(stream: IO[bytes], url: str, entry_name: str, target: Path) -> Iterator[bytes]:
    """The stream's bytes; network errors while reading become ``DataUnavailableError``."""
    while True:
        try:
            chunk = stream.read(_CHUNK)
        except (OSError, http.client.HTTPException) as exc:
            raise _unavailable(entry_name, url, exc, target) from None
        if not chunk:
            return
        yield chunk


def _unwritable(directory: Path, exc: OSError) -> OutputError:
    return OutputError(
        f"cannot write into the data directory ({exc.strerror or exc}); set {DATA_ENV} to a "
        "writable directory",
        path=directory,
    )


@contextmanager
def _temporary_beside(target: Path) -> Iterator[tuple[IO[bytes], Path]]:
    """A temporary file in ``target``'s directory (so the final rename is atomic on POSIX),
    always removed unless the caller renamed it to ``target``."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fh = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed below, name kept on purpose
            dir=target.parent, prefix=f".{target.name}.", suffix=".partial", delete=False
        )
    except OSError as exc:
        raise _unwritable(target.parent, exc) from None
    tmp = Path(fh.name)
    try:
        with fh:
            yield fh, tmp
    finally:
        tmp.unlink(missing_ok=True)


def _copy_hashing(chunks: Iterable[bytes], fh: IO[bytes], directory: Path) -> str:
    """Write ``chunks`` to ``fh`` and to disk; return their sha256."""
    digest = hashlib.sha256()
    try:
        for chunk in chunks:
            digest.update(chunk)
            fh.write(chunk)
        fh.flush()
        os.fsync(fh.fileno())
    except OSError as exc:  # disk full, quota...: network errors arrive as DataUnavailableError
        raise _unwritable(directory, exc) from None
    return digest.hexdigest()


def _write_verified(
    chunks: Iterable[bytes], target: Path, rec: FileRecord, entry_name: str, origin: str
) -> None:
    """Write ``chunks`` to ``target`` atomically if their sha256 is the catalogued one."""
    with _temporary_beside(target) as (fh, tmp):
        actual = _copy_hashing(chunks, fh, target.parent)
        fh.close()
        if actual != rec.sha256:
            raise ChecksumError(
                f"content from {origin} has sha256 {actual} but catalog entry {entry_name!r} expects "
                f"{rec.sha256}; nothing was written. The source may have changed: check "
                "the catalog or copy a verified file by hand",
                path=target,
            )
        try:
            os.replace(tmp, target)
        except OSError as exc:
            raise _unwritable(target.parent, exc) from None


def _fetch_from_archive(
    entry: Entry,
    archive: Archive,
    records: Sequence[FileRecord],
    base: Path,
    timeout: float,
    done: Callable[[Path, FileRecord], None],
) -> None:
    """Download the archive once, next to the entry's files, and take ``records`` out of it."""
    directory = entry.directory(base)
    with _temporary_beside(directory / ".archive") as (fh, tmp):
        with _urlopen(archive.url, timeout, entry.name, directory) as response:
            actual = _copy_hashing(_read_chunks(response, archive.url, entry.name, directory), fh, directory)
        fh.close()
        if archive.sha256 and actual != archive.sha256:
            raise ChecksumError(
                f"archive sha256 is {actual} but catalog entry {entry.name!r} expects "
                f"{archive.sha256}; nothing was extracted",
                path=archive.url,
            )
        with _open_archive(tmp, archive, entry.name) as members:
            for rec in records:
                target = entry.resolve(rec.path, base)
                _extract_member(members, rec, target, entry.name, archive.url)
                done(target, rec)


class _Members:
    """Regular-file members of an opened zip or tar archive, looked up by base name."""

    def __init__(self, names: dict[str, list[str]], opener: Callable[[str], IO[bytes]]) -> None:
        self.names = names
        self.open = opener


@contextmanager
def _open_archive(path: Path, archive: Archive, entry_name: str) -> Iterator[_Members]:
    names: dict[str, list[str]] = {}
    try:
        if archive.format == "zip":
            with zipfile.ZipFile(path) as zf:
                for info in zf.infolist():
                    if not info.is_dir():
                        names.setdefault(PurePosixPath(info.filename).name, []).append(info.filename)
                yield _Members(names, zf.open)
        else:
            with tarfile.open(path, "r:*") as tf:
                for member in tf.getmembers():
                    if member.isfile():
                        names.setdefault(PurePosixPath(member.name).name, []).append(member.name)

                def open_member(name: str) -> IO[bytes]:
                    stream = tf.extractfile(name)
                    assert stream is not None  # regular files always have a stream
                    return stream

                yield _Members(names, open_member)
    except (zipfile.BadZipFile, tarfile.TarError) as exc:
        raise DataUnavailableError(
            f"catalog entry {entry_name!r}: {archive.url} is not a readable {archive.format} archive ({exc})"
        ) from None


def _stream_chunks(stream: IO[bytes]) -> Iterator[bytes]:
    while chunk := stream.read(_CHUNK):
        yield chunk


def _extract_member(members: _Members, rec: FileRecord, target: Path, entry_name: str, url: str) -> None:
    """Copy the member with ``rec``'s base name and sha256 to ``target``, atomically."""
    candidates = members.names.get(PurePosixPath(rec.path).name, [])
    if not candidates:
        raise DataUnavailableError(
            f"catalog entry {entry_name!r}: {url} has no file named {PurePosixPath(rec.path).name}; "
            f"copy it by hand to {target}"
        )
    for i, member in enumerate(candidates):
        try:
            with members.open(member) as stream:
                _write_verified(_stream_chunks(stream), target, rec, entry_name, f"{url}!{member}")
            return
        except ChecksumError:
            if i == len(candidates) - 1:
                raise
