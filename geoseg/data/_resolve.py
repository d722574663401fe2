"""What a user's text names: a file, a GDAL path, a catalog scene, one date of a time series,
a time series, a label set or a model; one function (``resolve``) for every command that
takes a name or a path.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from geoseg.data._catalog import Catalog, load_catalog
from geoseg.data._entries import Entry, LabelSetEntry, ModelEntry, SceneEntry, TimeSeriesEntry
from geoseg.data._paths import PathLike
from geoseg.errors import CatalogError, MissingFileError
from geoseg.options import suggest

#: What a text names. ``file``: a local path that exists; ``gdal``: a GDAL virtual path
#: (``/vsicurl/...``, ``/vsis3/...``), passed on as written; the others: catalog entries
#: (``scene`` also for ``NAME@DATE`` of a time series).
Kind = Literal["file", "gdal", "scene", "timeseries", "labelset", "model"]

#: What the caller wants: ``image`` (one raster to read), ``model`` (a checkpoint) or ``any``.
Want = Literal["image", "model", "any"]

_HINT = "`geoseg data list` shows the catalog"


@dataclass(frozen=True)
class Resolved:
    """What ``resolve`` found for a text.

    ``paths`` are the files it stands for: the file itself; a scene's files in band order;
    a time series' rasters in date order (``dates`` beside them); a label set's catalogued
    files; a model's checkpoint. A GDAL path has none (``text`` is the path).
    """

    text: str
    kind: Kind
    paths: tuple[Path, ...] = ()
    #: the catalog entry's name (``NAME@DATE`` for one date of a time series)
    name: str | None = None
    dates: tuple[str, ...] = ()
    bands: tuple[str, ...] | None = None
    #: the catalog's nodata override of a scene or time series
    nodata: float | None = None
    #: the catalog entry, for what the fields above do not carry (splits, classes, ...)
    entry: Entry | None = None

    @property
    def stacked(self) -> bool:
        """Whether the image is several files (or one with a nodata override) read as one."""
        return self.kind == "scene" and (len(self.paths) > 1 or self.nodata is not None)

    @property
    def path(self) -> Path:
        """The one file: a local file, a one-file scene, a checkpoint."""
        if len(self.paths) != 1:
            what = "a GDAL path" if self.kind == "gdal" else f"{len(self.paths)} files"
            raise CatalogError(f"{self.text!r} is {what}, not one file")
        return self.paths[0]

    def check_readable(self) -> None:
        """Refuse, in one line, an image that cannot be read as one (files at different
        pixel sizes); nothing is written."""
        if self.kind == "scene" and isinstance(self.entry, SceneEntry):
            _stackable(self.entry)

    def image(self) -> str | Path:
        """The one raster to read.

        A file or GDAL path as given; a scene of one file is that file; a scene of several
        single-band files (``nc-landsat7``), or one with a nodata override, is a VRT
        stacking them with the catalog's band names, kept in the cache folder under a name
        that changes with the files (written only when it would differ).
        """
        if self.kind == "gdal":
            return self.text
        if self.kind == "file":
            return self.paths[0]
        if self.kind != "scene" or not isinstance(self.entry, SceneEntry):
            raise _not_an_image(self.text, self.kind)
        _stackable(self.entry)
        if not self.stacked:
            return self.paths[0]
        key = "\n".join([*map(str, self.paths), str(self.bands), str(self.nodata)])
        digest = hashlib.sha256(key.encode()).hexdigest()[:12]
        # geoseg's cache folder (ONNX exports live there too)
        from geoseg.files import cache_dir
        from geoseg.raster import write_stack_vrt

        vrt = cache_dir() / "inputs" / f"{(self.name or 'scene').replace('@', '_')}-{digest}.vrt"
        return write_stack_vrt(vrt, list(self.paths), self.bands, self.nodata)


def resolve(
    text: str | os.PathLike[str],
    want: Want = "any",
    *,
    catalog: Catalog | None = None,
    root: PathLike | None = None,
    check: bool = True,
) -> Resolved:
    """What ``text`` names, for a command that takes a file or a catalog name.

    In order: a local path that exists (for a model: a file); a GDAL ``/vsi...`` path; a
    catalog entry (``nc-landsat7``, ``forest-s2-rgb``) or one date of a time series
    (``pucallpa-landsat@1985``).

    Parameters
    ----------
    text
        What the user wrote.
    want
        ``image``: one raster is wanted (a time series needs ``@DATE``; a model or label set
        is refused, saying what it is); ``model``: a checkpoint (a scene is refused);
        ``any``: whatever it names.
    catalog
        The catalog to look names up in (default: ``load_catalog()``, read only when
        ``text`` is not a local path).
    root
        The data root (default: ``data_root()``).
    check
        Require the files of a catalog entry to be on disk (``MissingFileError`` with the
        ``geoseg data fetch NAME`` line otherwise).

    Returns
    -------
    Resolved
        Which it is, and its file(s).

    Raises
    ------
    MissingFileError
        A path (or a name) that is neither a file nor in the catalog, with a "did you mean"
        among the catalog's names; catalog data that is not on disk.
    CatalogError
        A catalog name of the wrong kind for ``want``; an unknown model name.
    """
    text = str(text)
    p = Path(text)
    if p.is_file() if want == "model" else p.exists():
        return Resolved(text, "file", (p,))
    if text.startswith("/vsi") and want != "model":
        return Resolved(text, "gdal")
    catalog = catalog if catalog is not None else load_catalog()
    found = _from_catalog(text, want, catalog, root, check)
    if found is not None:
        return found
    if want == "model":
        if p.suffix or os.sep in text or "/" in text:
            raise MissingFileError("no such model file", text)
        models = [e.name for e in catalog if isinstance(e, ModelEntry)]
        raise CatalogError(
            f"no model {text!r} in the catalog{suggest(text, models)}; catalog models: "
            f"{', '.join(models) or 'none'}; or give a checkpoint file ({_HINT})",
            path=catalog.path,
        )
    names = [e.name for e in catalog if not isinstance(e, ModelEntry)]
    what = "catalog scene" if want == "image" else "catalog entry"
    raise MissingFileError(
        f"no such file or {what}{suggest(text.partition('@')[0], names)}; check the path ({_HINT})", text
    )


def catalog_image(name: str) -> Path | None:
    """The image a catalog name stands for, or None when ``name`` is not a scene of the catalog.

    ``NAME`` is a scene entry, ``NAME@DATE`` one date of a time series. A scene of one file
    is that file; a scene of single-band files (``nc-landsat7``) is a VRT stacking them
    with the catalog's band names, kept in the cache folder under a name that changes
    with the files. Data that is not on disk raises the ``geoseg data fetch`` line.
    """
    found = _from_catalog(name, "image", load_catalog(), None, True)
    return None if found is None else Path(found.image())


def _from_catalog(
    text: str, want: Want, catalog: Catalog, root: PathLike | None, check: bool
) -> Resolved | None:
    """``text`` as a catalog name (``NAME`` or ``NAME@DATE``), or None when it is not one."""
    base, _, date = text.partition("@")
    if base not in catalog:
        return None
    entry = catalog.get(base)
    if date:
        if not isinstance(entry, TimeSeriesEntry):
            raise CatalogError(
                f"{base!r} is a {entry.kind} of the catalog, not a time series: it has no @{date}"
            )
        entry = entry.scene(date)
    if want == "model" and not isinstance(entry, ModelEntry):
        raise CatalogError(
            f"{text!r} is a {entry.kind} of the catalog, not a model; give a catalog model or a "
            f"checkpoint file ({_HINT})"
        )
    if want == "image":
        if not isinstance(entry, SceneEntry):
            raise _not_an_image(text, entry.kind)
        _stackable(entry)
    if check:
        entry.require(root)
    if isinstance(entry, SceneEntry):
        return Resolved(text, "scene", tuple(entry.raster_paths(root)), entry.name, (), entry.bands,
                        entry.nodata, entry)  # fmt: skip
    if isinstance(entry, TimeSeriesEntry):
        dated = entry.dated_paths(root)
        return Resolved(text, "timeseries", tuple(p for _, p in dated), entry.name,
                        tuple(d for d, _ in dated), entry.bands, entry.nodata, entry)  # fmt: skip
    if isinstance(entry, ModelEntry):
        return Resolved(text, "model", (entry.checkpoint_path(root),), entry.name, bands=entry.bands,
                        entry=entry)  # fmt: skip
    assert isinstance(entry, LabelSetEntry)  # the four kinds
    return Resolved(
        text, "labelset", tuple(entry.file_paths(root)), entry.name, bands=entry.bands, entry=entry
    )


def _not_an_image(text: str, kind: str) -> CatalogError:
    if kind == "model":
        return CatalogError(f"{text!r} is a model of the catalog, not an image; give it as the model")
    return CatalogError(
        f"{text!r} is a {kind} of the catalog, not one image; give a scene, NAME@DATE of a "
        "time series, or a file"
    )


def _stackable(entry: SceneEntry) -> None:
    """Refuse a scene whose files have different pixel sizes: they cannot be read as one image."""
    if entry.mixed_resolutions and entry.resolutions is not None:
        sizes = ", ".join(f"{s:g}" for s in sorted(set(entry.resolutions)))
        raise CatalogError(
            f"{entry.name!r} has files at different pixel sizes ({sizes}); geoseg does not stack "
            "them into one image yet: give one of its files instead (`geoseg data list` shows "
            "where they are)"
        )
