"""Catalog entries: scenes, time series, label sets and models, with their files and sources.

Each entry is a frozen pydantic model; each key of the catalog file is declared once here,
with its type (``_fields``), default and help. Checks that see several keys (a scene's
paths must be catalogued files, a label set's globs must match them) are the models'
``_check`` validators; they raise ``At`` naming the key, so the message says where.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, BeforeValidator, model_validator

from geoseg.data import _paths
from geoseg.data._fields import (
    CONFIG,
    At,
    ClassValue,
    Date,
    EntryName,
    FromMapping,
    OptionalColour,
    OptionalNames,
    OptionalNumber,
    OptionalRelPath,
    OptionalSha256,
    OptionalSizes,
    OptionalText,
    OptionalUrl,
    OptionalUrlTemplate,
    RelDir,
    RelPath,
    RelPaths,
    Sha256,
    Text,
    Url,
    as_tuple,
    one_of,
    typename,
)
from geoseg.data._paths import ARCHIVE_FORMATS, DATA_ENV, PAIR_RULES, PathLike, _glob_match, _pair_key, _root
from geoseg.errors import CatalogError, ChecksumError, MissingFileError
from geoseg.files import sha256_file
from geoseg.options import option
from geoseg.progress import Progress, report


class _Model(BaseModel):
    model_config = CONFIG


# ------------------------------------------------------------------------- files and sources


class FileSpec(_Model):
    """A file's value in ``files``: its sha256, or ``{sha256, url}``."""

    sha256: Sha256 = option(..., "the file's sha256 (64 hex digits): fetch and verify check it")
    url: OptionalUrl = option(None, "where to download this file, overriding the source's 'download'")

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, value: Any) -> Any:
        return {"sha256": value} if isinstance(value, str) else value


class FileRecord(FileSpec):
    """One catalogued file: its path relative to the entry's directory, its sha256, its URL."""

    path: str = option(..., "the path relative to the entry's directory")


def _files(mapping: dict[str, FileSpec]) -> tuple[FileRecord, ...]:
    return tuple(FileRecord.model_construct(path=p, sha256=s.sha256, url=s.url) for p, s in mapping.items())


class Archive(_Model):
    """An archive (zip, wheel, tar, tar.gz...) holding the entry's files.

    Files are taken out of it by base name and sha256, so its internal layout does not matter.
    """

    url: Url = option(..., "where to download the archive")
    format: Annotated[str, BeforeValidator(one_of(ARCHIVE_FORMATS, "archive format", "formats"))] = option(
        ..., "zip (also wheels) or tar (also .tar.gz, .tar.bz2, .tar.xz)"
    )
    sha256: OptionalSha256 = option(None, "the archive's sha256, checked before anything is taken out")


class Source(_Model):
    """Where the original data lives, under what terms, and how to download it."""

    url: Url = option(..., "the landing page of the original data")
    licence: Text = option(..., "the terms the data are shared under")
    citation: Text = option("", "how to cite the data")
    download: OptionalUrlTemplate = option(
        None, "per-file download URL: {path} is the file's path in the entry, {name} its base name"
    )
    archive: Archive | None = option(None, "an archive that holds the files (instead of 'download')")

    @model_validator(mode="after")
    def _check(self) -> Source:
        if self.download and self.archive:
            raise At("give either 'download' or 'archive', not both", "archive")
        return self

    def file_url(self, record: FileRecord) -> str | None:
        """The URL to download ``record`` from, or None when it only comes in the archive."""
        if record.url:
            return record.url
        if self.download:
            return self.download.replace("{path}", record.path).replace(
                "{name}", PurePosixPath(record.path).name
            )
        return None


# ------------------------------------------------------------------------- classes, splits, dates


class ClassSpec(_Model):
    """A class's value in ``classes``: its name, or ``{name, colour}``."""

    name: Text = option(..., "the class name")
    # where the default palette would mislead (a blue non-forest class reads as water in
    # every quick-look)
    colour: OptionalColour = option(None, 'its display colour, "#rrggbb" or [r, g, b]')

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"name": value}
        name = value.get("name") if isinstance(value, dict) else value
        if not isinstance(name, str):
            raise ValueError(f"expected a class name, got {typename(name)}")
        return value


class LabelClass(ClassSpec):
    """A class value in a label raster or mask, its name, and its display colour if given."""

    value: int = option(..., "the class value, 0..254")


def _classes(mapping: dict[int, ClassSpec]) -> tuple[LabelClass, ...]:
    out = [LabelClass.model_construct(value=v, name=c.name, colour=c.colour) for v, c in mapping.items()]
    if len({c.name for c in out}) != len(out):
        raise At("class names must be unique")
    return tuple(sorted(out, key=lambda c: c.value))


Classes = Annotated[
    tuple[LabelClass, ...],
    FromMapping(ClassValue, ClassSpec, _classes, "a mapping of class value -> name"),
]


class SplitSpec(_Model):
    """A split's value in ``splits``: globs of its images and masks."""

    images: RelPath = option(..., "a glob of the split's image files ('*' does not cross '/')")
    masks: OptionalRelPath = option(None, "a glob of their masks; none for an image-only split (test)")


class Split(SplitSpec):
    """A named split of a tiled label set: a glob for its images, and one for its masks."""

    name: str = option(..., "the split's name")


def _splits(mapping: dict[str, SplitSpec]) -> tuple[Split, ...]:
    return tuple(Split.model_construct(name=n, images=s.images, masks=s.masks) for n, s in mapping.items())


class DatedRaster(_Model):
    """One raster of a time series. ``date`` is ``YYYY``, ``YYYY-MM`` or ``YYYY-MM-DD``."""

    date: Date = option(..., "YYYY, YYYY-MM or YYYY-MM-DD")
    path: RelPath = option(..., "the raster, one of the entry's files")


# ------------------------------------------------------------------------- entries


class Entry(_Model):
    """Fields and file handling common to every kind of entry."""

    name: EntryName = option(..., "the entry's name: lowercase letters, digits, '.', '_' or '-'")
    kind: str = option(..., "scene, timeseries, labelset or model")
    description: Text = option(..., "one line saying what the data are")
    source: Source = option(..., "where the original lives: {url, licence, citation, download | archive}")
    files: Annotated[
        tuple[FileRecord, ...], FromMapping(RelPath, FileSpec, _files, "a mapping of path -> sha256")
    ] = option(..., "every file of the entry: {path: sha256 | {sha256, url}}")
    dir: RelDir = option("", "the entry's directory, relative to the data root ('' is the root itself)")

    def _listed(self, key: str, path: str | None, *at: str | int) -> None:
        if path is not None and all(rec.path != path for rec in self.files):
            raise At(f"{path!r} is not one of the entry's files", *(at or (key,)))

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


_BANDS_HELP = "band names in file order (common names: blue, green, red, nir, swir1, ...)"
_NODATA_HELP = "overrides the files' own nodata value"


class SceneEntry(Entry):
    """One image: one multi-band file, or single-band files stacked in ``paths`` order."""

    kind: Literal["scene"] = option("scene", "one image")
    paths: RelPaths = option(..., "the image's files; single-band files are stacked in this order")
    bands: OptionalNames = option(None, _BANDS_HELP)
    nodata: OptionalNumber = option(None, _NODATA_HELP)
    # Sentinel-2 delivers its bands at 10, 20 and 60 m: such files cannot be stacked into
    # one image pixel for pixel, and saying so here lets geoseg refuse before it reads.
    resolutions: OptionalSizes = option(
        None,
        "the pixel size of each file in 'paths', in the CRS's units, when the files differ "
        "(Sentinel-2's 10/20/60 m bands); such a scene is not stacked into one image",
    )

    @model_validator(mode="after")
    def _check(self) -> SceneEntry:
        for p in self.paths:
            self._listed("paths", p)
        if self.bands is not None and len(self.paths) > 1 and len(self.bands) != len(self.paths):
            raise At(
                f"{len(self.bands)} band names for {len(self.paths)} single-band files; give one name per file",
                "bands",
            )
        if self.resolutions is not None and len(self.resolutions) != len(self.paths):
            raise At(f"{len(self.resolutions)} pixel sizes for {len(self.paths)} files", "resolutions")
        return self

    @property
    def mixed_resolutions(self) -> bool:
        """Whether the files have different pixel sizes (see ``resolutions``)."""
        return self.resolutions is not None and len(set(self.resolutions)) > 1

    def raster_paths(self, root: PathLike | None = None) -> list[Path]:
        """The image's files, resolved, in band order."""
        return [self.resolve(p, root) for p in self.paths]


class TimeSeriesEntry(Entry):
    """Dated rasters of one place with the same band layout, in increasing date order."""

    kind: Literal["timeseries"] = option("timeseries", "dated rasters of one place")
    rasters: Annotated[tuple[DatedRaster, ...], as_tuple("a list of {date, path}", empty=False)] = option(
        ..., "the dated rasters [{date, path}], in increasing date order"
    )
    bands: OptionalNames = option(None, _BANDS_HELP)
    nodata: OptionalNumber = option(None, _NODATA_HELP)

    @model_validator(mode="after")
    def _check(self) -> TimeSeriesEntry:
        for i, r in enumerate(self.rasters):
            self._listed("path", r.path, "rasters", i, "path")
            if i and r.date <= self.rasters[i - 1].date:
                raise At(f"{r.date} does not come after {self.rasters[i - 1].date}", "rasters", i, "date")
        return self

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
                # built from checked parts; NAME@DATE is not an entry name, so not re-validated
                return SceneEntry.model_construct(
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


class LabelSetEntry(Entry):
    """Labels to train and evaluate on, in one of two forms.

    - Tiles: ``splits`` give, per split, a glob of image files and a glob of mask files; a
      mask belongs to the image with the same ``pair_by`` key (``stem``: the file name without
      its last extension, ``a.tiff_25.tiff`` <-> ``a.tiff_25.png``). A split without masks
      (e.g. ``test``) has images only.
    - One scene: ``image`` names a scene entry; ``label_raster`` is a dense label raster on its
      grid (or on its own grid: ``label_grid``), ``polygons``/``points`` vector labels whose
      ``class_field`` holds the class value (or name: ``class_field_holds``).

    Globs are matched against the catalogued files (``*`` does not cross ``/``), so the pairs
    are the same whether or not the data is on disk.
    """

    kind: Literal["labelset"] = option("labelset", "labels to train and evaluate on")
    classes: Classes = option(..., 'the classes: {value: name | {name, colour: "#rrggbb"}}, values 0..254')
    bands: OptionalNames = option(None, _BANDS_HELP)
    splits: Annotated[
        tuple[Split, ...], FromMapping(str, SplitSpec, _splits, "a mapping of split name -> {images, masks}")
    ] = option((), "tiles: {split name: {images: glob, masks: glob}}")
    pair_by: Annotated[str, BeforeValidator(one_of(PAIR_RULES, "rule", "rules"))] = option(
        "stem", "how a mask finds its image: stem (the file name without its last extension)"
    )
    image: OptionalText = option(None, "one scene: the scene entry the labels are for")
    label_raster: OptionalRelPath = option(None, "a dense label raster of the scene")
    polygons: OptionalRelPath = option(None, "label polygons of the scene")
    points: OptionalRelPath = option(None, "label points of the scene")
    class_field: OptionalText = option(None, "the attribute of the polygons/points that holds the class")
    class_field_holds: Annotated[
        str, BeforeValidator(one_of(("value", "name"), "class_field content", "choices"))
    ] = option(
        "value",
        "what class_field holds: 'value' (the class values of 'classes') or 'name' (their names, "
        "as OpenStreetMap's fclass)",
    )
    label_grid: Annotated[str, BeforeValidator(one_of(("image", "own"), "label grid", "choices"))] = option(
        "image",
        "where label_raster lies: 'image' (on the scene's grid) or 'own' (another grid: reproject "
        "it, nearest, onto the scene's before use)",
    )

    @model_validator(mode="after")
    def _check(self) -> LabelSetEntry:
        for key in ("label_raster", "polygons", "points"):
            self._listed(key, getattr(self, key))
        if bool(self.splits) == (self.image is not None):
            raise At("a label set has either 'splits' (tiles with masks) or 'image' (one scene)", "splits")
        if self.image is not None and not (self.label_raster or self.polygons or self.points):
            raise At("a single-scene label set needs 'label_raster', 'polygons' or 'points'", "image")
        if (self.polygons or self.points) and not self.class_field:
            raise At("missing (required with 'polygons' or 'points')", "class_field")
        # The globs are checked against the catalogued files now, so a typo fails at load time.
        for s in self.splits:
            images = self._matching(s.images)
            if not images:
                raise At(f"{s.images!r} matches none of the entry's files", "splits", s.name, "images")
            if s.masks is None:
                continue
            masks = self._matching(s.masks)
            if not masks:
                raise At(f"{s.masks!r} matches none of the entry's files", "splits", s.name, "masks")
            for group, other, label in ((images, masks, "image"), (masks, images, "mask")):
                keys = [_pair_key(p, self.pair_by) for p in group]
                if len(set(keys)) != len(keys):
                    raise At(f"two {label}s share a {self.pair_by!r} key", "splits", s.name)
                other_keys = {_pair_key(p, self.pair_by) for p in other}
                for p in group:
                    if _pair_key(p, self.pair_by) not in other_keys:
                        raise At(f"{label} {p!r} has no partner by {self.pair_by!r}", "splits", s.name)
        return self

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


class ModelEntry(Entry):
    """A checkpoint file: relative to the package's ``models`` directory or the data root."""

    kind: Literal["model"] = option("model", "a checkpoint")
    path: RelPath = option(..., "the checkpoint, relative to geoseg/models/ or the data root")
    arch: Text = option(..., "its segmentation-models-pytorch architecture (Unet, ...)")
    encoder: Text = option(..., "its encoder (mobilenet_v2, resnet18, ...)")
    bands: OptionalNames = option(None, "the bands it reads, by name")
    classes: Classes = option((), "the classes it maps: {value: name | {name, colour}}")

    @model_validator(mode="after")
    def _check(self) -> ModelEntry:
        self._listed("path", self.path)
        return self

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
