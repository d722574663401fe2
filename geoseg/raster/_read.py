"""Open and validate any GDAL raster, stack band files, and read windows boundlessly.

A ``RasterSource`` is a small picklable description of where pixels live (paths, band
indices, nodata, grid); it goes into Dask graphs instead of arrays, and each task opens
the files itself. GDAL dataset handles are not thread safe and must not cross process
boundaries: a read opens its files and closes them again, unless the caller asks to
``keep_open`` (a prediction worker), and then each thread keeps its own handles.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import rasterio
from rasterio.enums import ColorInterp
from rasterio.errors import RasterioIOError

from geoseg.classes import ClassInfo as ClassInfo  # re-exported: io is where most callers look
from geoseg.classes import default_colour as default_colour
from geoseg.errors import (
    BadRasterError,
    BandError,
    GridMismatchError,
    MissingFileError,
    WindowError,
    first_line,
)
from geoseg.raster._grid import Grid, PixelWindow

SUPPORTED_DTYPES = ("uint8", "uint16", "int16", "uint32", "int32", "float32", "float64")


# Quiet, predictable GDAL: no sidecar .aux.xml files next to the user's inputs, and no
# directory listing of every sibling when opening a file (slow on big folders and S3).
GDAL_ENV = {"GDAL_PAM_ENABLED": "NO", "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR"}


@dataclass(frozen=True)
class BandRef:
    """One band of a source: which file and which 1-based band in it."""

    path: str
    index: int
    name: str
    nodata: float | None = None  # files stacked together may declare different nodata


@dataclass(frozen=True)
class RasterSource:
    """A validated multi-band raster, possibly stacked from several single-band files."""

    bands: tuple[BandRef, ...]
    grid: Grid
    dtype: str  # the common dtype of all bands (files stacked together may differ)
    nodata: float | None  # fill value of reads; each band is checked against its own nodata
    uses_mask: bool = False  # an internal/sidecar mask marks nodata (GDAL per-dataset mask)

    @property
    def count(self) -> int:
        return len(self.bands)

    @property
    def band_names(self) -> tuple[str, ...]:
        return tuple(b.name for b in self.bands)

    @property
    def paths(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(b.path for b in self.bands))

    def read(
        self, window: PixelWindow | None = None, keep_open: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """Read ``window`` (boundless) -> (pixels ``(bands, h, w)``, valid mask ``(h, w)``).

        Pixels outside the raster are filled with nodata (0 when there is none) and are
        invalid. A pixel is valid only when every band is valid, since a model needs all.
        ``keep_open``: see ``read_window``.
        """
        return read_window(self, window if window is not None else self.grid.window, keep_open)


def _open(path: str | os.PathLike[str]) -> Any:
    path = str(path)
    if not path.startswith(("/vsi", "http://", "https://")) and not os.path.exists(path):
        raise MissingFileError("no such file; check the path", path)
    try:
        with rasterio.Env(**GDAL_ENV):
            return rasterio.open(path)
    except RasterioIOError as exc:
        raise BadRasterError(f"not a raster GDAL can read ({first_line(exc)})", path) from exc


def _check_readable(ds: Any, path: str) -> None:
    """Read the first and last block: a truncated GeoTIFF opens fine but fails here."""
    h, w = ds.height, ds.width
    try:
        for row in (0, h - 1):
            ds.read(1, window=rasterio.windows.Window(0, row, min(w, 256), 1))
            ds.read(1, window=rasterio.windows.Window(max(0, w - 256), row, min(w, 256), 1))
    except RasterioIOError as exc:
        raise BadRasterError(
            f"truncated or corrupt raster ({first_line(exc)}); re-download or re-export it", path
        ) from exc


def _band_name(ds: Any, i: int) -> str:
    desc = ds.descriptions[i - 1]
    if desc:
        return str(desc)
    interp = ds.colorinterp[i - 1]
    if interp not in (ColorInterp.undefined, ColorInterp.gray, ColorInterp.palette):
        return str(interp.name)
    return f"band{i}"


def _describe_one(path: str, ds: Any) -> tuple[list[BandRef], str, float | None, bool]:
    dtype = ds.dtypes[0]
    if any(d != dtype for d in ds.dtypes):
        raise BadRasterError(f"bands have mixed data types {sorted(set(ds.dtypes))}", path)
    if dtype not in SUPPORTED_DTYPES:
        raise BadRasterError(
            f"data type {dtype} is not supported (use one of {', '.join(SUPPORTED_DTYPES)})", path
        )
    flags = ds.mask_flag_enums[0] if ds.count else ()
    uses_mask = any(f.name == "per_dataset" for f in flags) and ds.nodata is None
    refs = [BandRef(path, i, _band_name(ds, i), ds.nodata) for i in range(1, ds.count + 1)]
    return refs, dtype, ds.nodata, uses_mask


def open_raster(
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    bands: Sequence[str | int] | None = None,
    band_names: Sequence[str] | None = None,
    nodata: float | None = None,
    require_crs: bool = True,
) -> RasterSource:
    """Open and validate one raster, or stack several on the same grid into one source.

    ``bands`` selects and orders bands by name or 1-based index; ``band_names`` renames
    the (stacked) bands before selection, e.g. for single-band files without
    descriptions. ``nodata`` overrides the declared value. No pixels are copied.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    if not paths:
        raise BadRasterError("no raster given")
    refs: list[BandRef] = []
    grid: Grid | None = None
    dtype = ""
    declared: float | None = None
    uses_mask = False
    for p in paths:
        path = str(p)
        with _open(path) as ds:
            if require_crs and ds.crs is None:
                raise BadRasterError(
                    f"has no CRS; assign one first, e.g. `gdal_edit.py -a_srs EPSG:XXXX {path}`", path
                )
            if ds.transform.b != 0 or ds.transform.d != 0:
                raise BadRasterError("is rotated; warp it north-up first with gdalwarp", path)
            _check_readable(ds, path)
            these, d, nd, m = _describe_one(path, ds)
            here = Grid.from_dataset(ds)
        if grid is None:
            grid, dtype, declared, uses_mask = here, d, nd, m
        else:
            if not grid.same_as(here):
                raise GridMismatchError(
                    f"cannot be stacked with {paths[0]}: different grid ({here.describe()} vs {grid.describe()})",
                    path,
                )
            # e.g. nc-landsat7: five float32 bands and an int16 one; read them all as the
            # common type, each band keeping its own nodata value.
            dtype = np.result_type(dtype, d).name
            uses_mask = uses_mask or m
        refs.extend(these)
    assert grid is not None
    if band_names is not None:
        if len(band_names) != len(refs):
            raise BandError(
                f"{len(band_names)} band names given for {len(refs)} bands", ", ".join(str(p) for p in paths)
            )
        refs = [BandRef(r.path, r.index, n, r.nodata) for r, n in zip(refs, band_names, strict=True)]
    if bands is not None:
        refs = _select(refs, bands, paths)
    if nodata is not None:
        refs = [BandRef(r.path, r.index, r.name, nodata) for r in refs]
    if declared is not None and not _fits(declared, dtype):
        declared = next((r.nodata for r in refs if r.nodata is not None and _fits(r.nodata, dtype)), None)
    return RasterSource(tuple(refs), grid, dtype, nodata if nodata is not None else declared, uses_mask)


def _fits(value: float, dtype: str) -> bool:
    """Whether ``value`` is exactly representable in ``dtype`` (to be used as a fill value)."""
    if np.issubdtype(np.dtype(dtype), np.floating):
        return True
    info = np.iinfo(np.dtype(dtype))
    return not np.isnan(value) and float(value).is_integer() and info.min <= value <= info.max


def _select(refs: list[BandRef], wanted: Sequence[str | int], paths: Sequence[Any]) -> list[BandRef]:
    by_name = {r.name.lower(): r for r in refs}
    out = []
    for w in wanted:
        if isinstance(w, int) or (isinstance(w, str) and w.isdigit()):
            i = int(w)
            if not 1 <= i <= len(refs):
                raise BandError(f"has no band {i} (it has {len(refs)}: 1..{len(refs)})", _label(paths))
            out.append(refs[i - 1])
        else:
            ref = by_name.get(str(w).lower())
            if ref is None:
                names = ", ".join(r.name for r in refs)
                raise BandError(
                    f"has no band named {w!r} (it has: {names}); pass --bands with those names or indices",
                    _label(paths),
                )
            out.append(ref)
    return out


def _label(paths: Sequence[Any]) -> str:
    return str(paths[0]) if len(paths) == 1 else f"{paths[0]} (+{len(paths) - 1} files)"


def read_window(
    source: RasterSource, window: PixelWindow, keep_open: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Boundless read of ``window``: ``(bands, h, w)`` pixels and an ``(h, w)`` valid mask.

    ``keep_open``: reuse this thread's open handle of each file (``kept_dataset``), so
    compressed blocks decoded by an earlier read that GDAL's block cache still holds are
    not decoded again. Neighbouring tiles' read windows share blocks.
    """
    fill = source.nodata if source.nodata is not None and not np.isnan(source.nodata) else 0
    out = np.full((source.count, window.height, window.width), fill, dtype=source.dtype)
    valid = np.zeros(window.shape, dtype=bool)
    inside = window.intersection(source.grid.window)
    if inside is None:
        # A boundless read pads a window that overlaps the raster; one that misses it
        # entirely is a caller's mistake (a wrong offset or the wrong raster).
        raise WindowError(
            f"window (row {window.row_off}, col {window.col_off}, {window.height} x {window.width}) lies outside "
            f"the raster ({source.grid.height} x {source.grid.width} px); give a window that overlaps it",
            source.bands[0].path,
        )
    dst = inside.relative_to(window).slices()
    rio_window = inside.to_rasterio()
    ok = np.ones(inside.shape, dtype=bool)
    with rasterio.Env(**GDAL_ENV):
        by_path: dict[str, list[tuple[int, BandRef]]] = {}
        for k, ref in enumerate(source.bands):
            by_path.setdefault(ref.path, []).append((k, ref))
        for path, items in by_path.items():
            with _kept(path) if keep_open else _open(path) as ds:
                data = ds.read([r.index for _, r in items], window=rio_window)
                if source.uses_mask:
                    ok &= ds.read_masks(items[0][1].index, window=rio_window) > 0
            for (k, ref), band in zip(items, data, strict=True):
                out[k][dst] = band
                ok &= _valid(band, ref.nodata)
    valid[dst] = ok
    return out, valid


_KEPT = threading.local()


KEPT_PER_THREAD = 8  # a mosaic's scenes or a stack's band files, without running out of fds


@contextmanager
def _kept(path: str) -> Iterator[Any]:
    """``kept_dataset(path)`` shaped like ``_open``'s context manager (which closes)."""
    yield kept_dataset(path)


def kept_dataset(path: str) -> Any:
    """This thread's open dataset of ``path``: opened on first use, then reused.

    A file replaced since (another inode, size or mtime) is opened afresh. The least
    recently used handle is closed beyond ``KEPT_PER_THREAD``. Handles are per thread
    because a GDAL dataset must not be used by two threads at once.
    """
    cache: OrderedDict[str, tuple[tuple[int, int, int], Any]] | None = getattr(_KEPT, "datasets", None)
    if cache is None:
        cache = _KEPT.datasets = OrderedDict()
    try:
        st = os.stat(path)
        stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
    except OSError:
        stamp = (0, 0, 0)  # /vsi paths and URLs: GDAL's own caching decides
    hit = cache.get(path)
    if hit is not None and hit[0] == stamp and not hit[1].closed:
        cache.move_to_end(path)
        return hit[1]
    if hit is not None:
        hit[1].close()
    ds = _open(path)
    cache[path] = (stamp, ds)
    while len(cache) > KEPT_PER_THREAD:
        cache.popitem(last=False)[1][1].close()
    return ds


def close_kept() -> None:
    """Close this thread's kept datasets (their cached blocks go with them)."""
    cache = getattr(_KEPT, "datasets", None)
    while cache:
        cache.popitem()[1][1].close()


def _valid(band: np.ndarray, nodata: float | None) -> np.ndarray:
    if np.issubdtype(band.dtype, np.floating):
        ok = np.isfinite(band)
        if nodata is not None and not np.isnan(nodata):
            ok &= band != nodata
        return ok
    if nodata is None:
        return np.ones(band.shape, dtype=bool)
    return band != nodata
