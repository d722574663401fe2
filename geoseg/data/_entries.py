"""Catalog entries: scenes, time series, label sets and models, with their files and sources."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TypeVar

from geoseg.data import _paths
from geoseg.data._paths import DATA_ENV, PathLike, _glob_match, _pair_key, _root
from geoseg.errors import (
    CatalogError,
    ChecksumError,
    MissingFileError,
)
from geoseg.files import sha256_file
from geoseg.progress import Progress, report


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
            shipped = (_paths.MODELS_DIR / self.dir / path) if self.dir else _paths.MODELS_DIR / path
            if shipped.is_file():
                return shipped
        return super().resolve(path, root)

    def checkpoint_path(self, root: PathLike | None = None) -> Path:
        """The checkpoint file."""
        return self.resolve(self.path, root)


E = TypeVar("E", bound=Entry)
