"""Change between dated class maps: alignment, transition matrix, change raster, change
polygons, and the first year of forest loss over a time series.

How it works, and why:

- **Alignment.** Maps on the reference grid (the first map's unless another is named;
  equivalent CRSs written differently count as equal) are read as they are. Any other map
  is reprojected onto the reference grid inside each block task through a GDAL
  ``WarpedVRT`` with nearest-neighbour resampling, so classes are never blended and no
  reprojected copy of the whole map is made. Maps whose extents do not overlap the
  reference are refused before any work. Pixels that are nodata in a map, outside it, or
  hold a value missing from the class table, are invalid for that date.
- **Blocks.** The reference grid is cut into ``block_size`` squares; each Dask task gets
  paths and a window (never pixels), reads every date itself and returns the block's
  codes and its small partial sums. The client writes the codes into the output rasters
  as blocks arrive, and adds the partial sums in block order at the end, so totals are
  the same bytes whatever order the workers finish in. Memory holds a few blocks, never
  the map.
- **Areas** are in square metres on the ellipsoid, through :mod:`geoseg.areas` (the same
  measure the polygons get): one pixel area for low-distortion projections (UTM: exactly
  pixel width x height), one area per row for geographic grids (exact for a
  latitude/longitude cell, via an authalic cylindrical equal-area projection), a
  per-pixel area otherwise. Tables are in hectares.
- **Change raster.** With ``n`` classes in the class table's order (index 0..n-1, not the
  class id), a pixel that was class index ``i`` and became ``j`` holds
  ``i * n + j``; unchanged pixels keep their own code ``i * (n + 1)``. Up to 15 classes
  this is a uint8 class map (nodata 255) whose colour table shows unchanged pixels in a
  pale tint of their class and changed pixels in their new class's colour, with every
  code's name ("forest -> grassland") in its metadata; above 15 classes it is uint16
  (nodata 65535). ``GEOSEG_CHANGE_ENCODING`` in the metadata says so in words.
- **Polygons** come from :func:`geoseg.vectorize.polygonize_batches` (block-parallel,
  merged exactly across block seams): the chosen transitions are written to a temporary
  raster (everything else nodata) and polygonised; ``min_area_ha`` then leaves out change
  polygons smaller than that area. The tables and rasters still count every pixel.
- **Loss year** over a time series: see :func:`first_loss`.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
import re
import shutil
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date as Date
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.enums import Resampling

from geoseg.areas import AreaModel, area_model
from geoseg.errors import (
    BadRasterError,
    ConfigError,
    DataQuirkWarning,
    GridMismatchError,
    MissingFileError,
    OutputError,
)
from geoseg.grid import Grid, Window, iter_tiles
from geoseg.io import (
    CLASS_NODATA,
    GDAL_ENV,
    BandRef,
    ClassInfo,
    RasterSource,
    RasterWriter,
    check_writable,
    class_map_writer,
    open_raster,
    read_classes,
    read_window,
)
from geoseg.progress import Progress, report

log = logging.getLogger(__name__)

DEFAULT_BLOCK = 1024
LOSS_NODATA = 65535  # uint16 loss-year raster: 0 = no loss, a year = first loss, this = not assessable
MAX_UINT8_CLASSES = 15  # 15 * 15 = 225 codes fit below the uint8 nodata 255

PathLike = str | os.PathLike[str]


# ======================================================================================
# Alignment


@dataclass(frozen=True)
class ClassMap:
    """One dated class map as it is read on the reference grid."""

    source: RasterSource  # its own grid, band 1, nodata (255 when it declares none)
    warp: bool  # reprojected onto the reference grid when read
    date: str | None = None

    @property
    def path(self) -> str:
        return self.source.paths[0]

    @property
    def nodata(self) -> float:
        return float(self.source.nodata) if self.source.nodata is not None else float(CLASS_NODATA)


@dataclass(frozen=True)
class AlignedMaps:
    """Class maps of several dates, read block by block on one reference grid."""

    grid: Grid
    classes: tuple[ClassInfo, ...]
    maps: tuple[ClassMap, ...]

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def class_ids(self) -> np.ndarray:
        return np.array([c.id for c in self.classes], dtype=np.int64)

    def read_index(self, i: int, window: Window) -> np.ndarray:
        """Class *indices* (positions in ``classes``) of map ``i`` on ``window``; -1 = invalid."""
        values, valid = read_aligned(self.maps[i], self.grid, window)
        return to_index(values, valid, self.class_ids)

    def paths(self) -> list[str]:
        return [m.path for m in self.maps]


def _open_class_map(path: PathLike) -> RasterSource:
    p = str(path)
    if not p.startswith("/vsi") and not os.path.exists(p):
        raise MissingFileError("no such file; check the path", p)
    src = open_raster(p)
    if src.count != 1:
        raise BadRasterError(
            f"has {src.count} bands; a class map has one (pick one with `gdal_translate -b N`, "
            "or classify imagery first)",
            p,
        )
    if np.dtype(src.dtype).kind not in "ui":
        raise BadRasterError(f"holds {src.dtype} values; a class map holds integer class ids", p)
    if src.nodata is None:
        src = RasterSource(src.bands, src.grid, src.dtype, float(CLASS_NODATA), src.uses_mask)
    return src


def _class_key(classes: Sequence[ClassInfo]) -> list[tuple[int, str]]:
    return sorted((c.id, c.name) for c in classes)


def _describe_classes(classes: Sequence[ClassInfo]) -> str:
    return ", ".join(f"{c.id}={c.name}" for c in sorted(classes, key=lambda c: c.id))


def align_maps(
    paths: Sequence[PathLike],
    reference: PathLike | Grid | int | None = None,
    dates: Sequence[str] | None = None,
    classes: Sequence[ClassInfo] | None = None,
) -> AlignedMaps:
    """Validate class maps and put them on one grid (no pixels are read).

    ``reference``: the index of one of the maps (default 0), the path of any raster whose
    grid to use, or a ``Grid``. Every map must hold the same class table (ids and names) in
    its metadata; a map without one inherits the others'. ``classes`` overrides them all.
    Raises ``GridMismatchError`` for a map that does not overlap the reference grid.
    """
    if not paths:
        raise ConfigError("no class maps given")
    sources = [_open_class_map(p) for p in paths]
    if isinstance(reference, Grid):
        grid, ref_name = reference, "the reference grid"
    elif reference is None or isinstance(reference, int):
        k = reference or 0
        if not 0 <= k < len(sources):
            raise ConfigError(f"reference map {k} is out of range: there are {len(sources)} maps")
        grid, ref_name = sources[k].grid, sources[k].paths[0]
    else:
        ref_src = open_raster(reference)
        grid, ref_name = ref_src.grid, str(reference)

    if classes is None:
        tables = [(s.paths[0], read_classes(s.paths[0])) for s in sources]
        named = [(p, t) for p, t in tables if t]
        if not named:
            raise BadRasterError(
                "has no class table (no GEOSEG_CLASSES or CLASS_<id> metadata); add one, e.g. "
                f"`gdal_edit.py -mo CLASS_0=forest -mo CLASS_1=non-forest {sources[0].paths[0]}`",
                sources[0].paths[0],
            )
        first_path, first = named[0]
        for p, t in named[1:]:
            if _class_key(t) != _class_key(first):
                raise BadRasterError(
                    f"has classes {_describe_classes(t)} but {first_path} has {_describe_classes(first)}; "
                    "change is only defined between maps with the same class table",
                    p,
                )
        classes = first
    classes = sorted(classes, key=lambda c: c.id)
    if len({c.id for c in classes}) != len(classes):
        raise ConfigError("the class table lists a class id twice")
    if len(classes) > 255:
        raise ConfigError(f"{len(classes)} classes: at most 255 are supported")

    maps = []
    for k, src in enumerate(sources):
        warp = not src.grid.same_as(grid)
        if warp:
            _check_overlap(src, grid, ref_name)
        maps.append(ClassMap(src, warp, dates[k] if dates is not None else None))
    return AlignedMaps(grid, tuple(classes), tuple(maps))


def _check_overlap(src: RasterSource, grid: Grid, ref_name: str) -> None:
    from rasterio.warp import transform_bounds

    path = src.paths[0]
    if src.grid.crs is None or grid.crs is None:
        raise GridMismatchError("has no CRS, so it cannot be aligned with the other maps", path)
    try:
        left, bottom, right, top = transform_bounds(src.grid.crs, grid.crs, *src.grid.bounds, densify_pts=21)
    except Exception as exc:
        raise GridMismatchError(
            f"cannot be brought into the CRS of {ref_name} ({exc}); reproject it first with gdalwarp", path
        ) from exc
    g_left, g_bottom, g_right, g_top = grid.bounds
    finite = all(math.isfinite(v) for v in (left, bottom, right, top))
    if not finite or min(right, g_right) <= max(left, g_left) or min(top, g_top) <= max(bottom, g_bottom):
        raise GridMismatchError(
            f"does not overlap {ref_name} (its extent {src.grid.describe()} vs {grid.describe()}); "
            "give maps of the same area",
            path,
        )


def read_aligned(m: ClassMap, grid: Grid, window: Window) -> tuple[np.ndarray, np.ndarray]:
    """Raw class values of ``m`` on ``window`` of ``grid`` and the valid mask."""
    if not m.warp:
        data, valid = read_window(m.source, window)
        return data[0], valid
    from rasterio.vrt import WarpedVRT

    nodata = m.nodata
    inside = window.intersection(grid.window)
    values = np.full(window.shape, nodata, dtype=m.source.dtype)
    valid = np.zeros(window.shape, dtype=bool)
    if inside is None:
        return values, valid
    # The VRT fills everything outside the source with the source's own nodata, so one
    # comparison marks both nodata and "off the map" as invalid.
    with (
        rasterio.Env(**GDAL_ENV),
        rasterio.open(m.path) as ds,
        WarpedVRT(
            ds,
            crs=grid.crs,
            transform=grid.transform,
            width=grid.width,
            height=grid.height,
            resampling=Resampling.nearest,
            src_nodata=nodata,
            nodata=nodata,
        ) as vrt,
    ):
        part = vrt.read(1, window=inside.to_rasterio())
    dst = inside.relative_to(window).slices()
    values[dst] = part
    valid[dst] = part != nodata
    return values, valid


def to_index(values: np.ndarray, valid: np.ndarray, class_ids: np.ndarray) -> np.ndarray:
    """Class ids -> positions in ``class_ids`` (sorted); -1 where invalid or not a class."""
    v = values.astype(np.int64, copy=False)
    pos = np.searchsorted(class_ids, v)
    pos = np.minimum(pos, len(class_ids) - 1)
    known = valid & (class_ids[pos] == v)
    return np.where(known, pos, -1).astype(np.int16)


# ======================================================================================
# Small parsers shared with the CLI


def resolve_classes(
    wanted: Sequence[str | int] | None, classes: Sequence[ClassInfo], what: str, where: str | None = None
) -> list[int]:
    """Class names or ids -> indices into ``classes``; every class when ``wanted`` is empty."""
    if not wanted:
        return list(range(len(classes)))
    by_name = {c.name.lower(): k for k, c in enumerate(classes)}
    by_id = {c.id: k for k, c in enumerate(classes)}
    out: list[int] = []
    for w in wanted:
        text = str(w).strip()
        k = by_name.get(text.lower())
        if k is None and re.fullmatch(r"\d+", text):
            k = by_id.get(int(text))
        if k is None:
            raise ConfigError(
                f"{what} {text!r} is not a class of {where or 'the maps'} (classes: {_describe_classes(classes)}); "
                "give one of those names or ids"
            )
        if k not in out:
            out.append(k)
    return out


_DATE_RE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$")


def parse_date(text: str) -> Date:
    """``YYYY``, ``YYYY-MM`` or ``YYYY-MM-DD`` -> a date (the first day of the year/month)."""
    m = _DATE_RE.match(str(text).strip())
    if not m:
        raise ConfigError(f"date {text!r} is not YYYY, YYYY-MM or YYYY-MM-DD")
    try:
        return Date(int(m.group(1)), int(m.group(2) or 1), int(m.group(3) or 1))
    except ValueError as exc:
        raise ConfigError(f"date {text!r} is not a real date ({exc})") from exc


def check_dates(dates: Sequence[str], n_maps: int) -> list[Date]:
    """Parse dates and require one per map, strictly increasing."""
    if len(dates) != n_maps:
        raise ConfigError(f"{len(dates)} dates given for {n_maps} maps; give one date per map, in order")
    parsed = [parse_date(d) for d in dates]
    for a, b, ta, tb in zip(parsed, parsed[1:], dates, dates[1:], strict=False):
        if b <= a:
            raise ConfigError(
                f"dates must be in increasing order, but {tb} follows {ta}; list maps oldest first"
            )
    return parsed


# ======================================================================================
# Running blocks


def _run_blocks(
    client: Any, fn: Callable[[Any], Any], tasks: Sequence[Any], token: str
) -> Iterator[tuple[int, Any]]:
    """(index, result) of ``fn`` over ``tasks`` as they finish; a few blocks in flight."""
    if client is None:
        for i, t in enumerate(tasks):
            yield i, fn(t)
        return
    from distributed import as_completed

    try:
        workers = max(1, sum(client.nthreads().values()))
    except Exception:
        workers = 1
    limit = 2 * workers + 2  # enough to keep workers busy; results wait on the client briefly
    queue = as_completed()
    index: dict[str, int] = {}
    submitted = finished = 0
    live: list[Any] = []
    try:
        while finished < len(tasks):
            while submitted < len(tasks) and submitted - finished < limit:
                fut = client.submit(fn, tasks[submitted], key=f"{token}-{submitted}", pure=False)
                index[fut.key] = submitted
                live.append(fut)
                queue.add(fut)
                submitted += 1
            fut = next(queue)
            result = fut.result()
            finished += 1
            live.remove(fut)
            fut.release()
            yield index.pop(fut.key), result
    finally:
        if live:
            client.cancel(live)


class _Phases:
    """One progress scale (0..100 %) over several phases of a run, each with its own share."""

    SCALE = 100

    def __init__(self, progress: Progress | None, shares: Sequence[float]) -> None:
        self.progress = progress
        total = float(sum(shares))
        self.starts = np.concatenate([[0.0], np.cumsum(shares)]) / total * self.SCALE

    def phase(self, k: int, label: str) -> Progress:
        lo, hi = float(self.starts[k]), float(self.starts[k + 1])

        def update(done: int, total: int, postfix: str = "") -> None:
            frac = min(done, total) / total if total else 1.0
            report(self.progress, round(lo + (hi - lo) * frac), self.SCALE, postfix or label)

        return update


def _pixel_areas(area: AreaModel, window: Window) -> np.ndarray:
    """m² of every pixel of ``window``, as a full array."""
    w = area.pixel_weights(window)
    if w is None:
        return np.full(window.shape, area.pixel_area_m2, dtype=np.float64)
    return np.broadcast_to(np.asarray(w, dtype=np.float64), window.shape)


def _windows(grid: Grid, block_size: int) -> list[Window]:
    if block_size < 16:
        raise ConfigError(f"block size must be at least 16 pixels, got {block_size}")
    return [t.core for t in iter_tiles(grid.shape, block_size)]


class _TempRaster:
    """A plain tiled GeoTIFF written block by block, for polygonising and then deleting."""

    def __init__(self, path: Path, grid: Grid, dtype: str, nodata: float) -> None:
        self.path = path
        self.nodata = nodata
        self.dtype = dtype
        self.grid = grid
        profile = {
            "driver": "GTiff", "width": grid.width, "height": grid.height, "count": 1, "dtype": dtype,
            "crs": grid.crs, "transform": grid.transform, "nodata": nodata, "tiled": True,
            "blockxsize": 512, "blockysize": 512, "compress": "DEFLATE", "BIGTIFF": "IF_SAFER",
        }  # fmt: skip
        with rasterio.Env(**GDAL_ENV):
            self._ds = rasterio.open(path, "w", **profile)
            # Unwritten blocks must read back as nodata.
            self._ds.write(np.full((1, 1, 1), nodata, dtype=dtype), window=Window(0, 0, 1, 1).to_rasterio())

    def write(self, window: Window, data: np.ndarray) -> None:
        self._ds.write(data.astype(self.dtype, copy=False)[None], window=window.to_rasterio())

    def close(self) -> RasterSource:
        """Close (idempotent) and describe the file for reading back."""
        if self._ds is not None:
            self._ds.close()
            self._ds = None
        return RasterSource(
            (BandRef(str(self.path), 1, "value", self.nodata),), self.grid, self.dtype, self.nodata
        )


# ======================================================================================
# The GeoPackage


class GpkgBuilder:
    """Layers and tables written into a temporary GeoPackage, renamed into place at the end."""

    def __init__(self, out: Path, crs_wkt: str | None) -> None:
        self.out = out
        self.tmp = out.with_name(f".{out.stem}.partial{out.suffix}")
        self.crs = crs_wkt
        self.counts: dict[str, int] = {}
        self._cleanup()

    def _options(self) -> dict[str, Any]:
        # GeoPackage 1.3, not GDAL 3.10's default 1.4, so GDAL 3.6 (Debian's ogrinfo, older
        # QGIS) opens the file without a "may only be partially supported" warning.
        return {} if self.tmp.exists() else {"dataset_options": {"VERSION": "1.3"}}

    def add_polygons(
        self,
        layer: str,
        batches: Iterator[Any],
        fields: Callable[[Any], dict[str, np.ndarray]],
        keep: Callable[[Any], np.ndarray] | None = None,
        metadata: dict[str, str] | None = None,
    ) -> int:
        """Append polygon batches (``PolygonBatch``) to a new layer; ``fields(batch)`` gives
        its attribute columns, ``keep(batch)`` an optional boolean filter. Returns the count."""
        import pyogrio.raw

        count = 0
        started = False
        pending: list[tuple[np.ndarray, dict[str, np.ndarray]]] = []
        pending_n = 0

        def flush(force: bool = False) -> None:
            nonlocal started, pending, pending_n
            if not pending and not (force and not started):
                return
            if pending:
                wkb = np.concatenate([p[0] for p in pending])
                names = list(pending[0][1])
                data = [np.concatenate([p[1][k] for p in pending]) for k in names]
            else:
                wkb = np.empty(0, dtype=object)
                names = list(fields(None))
                data = list(fields(None).values())
            extra: dict[str, Any] = self._options()
            if not started and metadata:
                extra["layer_metadata"] = metadata
            try:
                pyogrio.raw.write(
                    str(self.tmp), wkb, data, names, layer=layer, driver="GPKG",
                    geometry_type="Polygon", crs=self.crs, append=started, **extra,
                )  # fmt: skip
            except Exception as exc:
                raise OutputError(f"cannot be written ({_first_line(exc)})", self.out) from exc
            started = True
            pending, pending_n = [], 0

        for batch in batches:
            mask = keep(batch) if keep is not None else np.ones(len(batch), dtype=bool)
            if not mask.any():
                continue
            cols = {k: np.asarray(v)[mask] for k, v in fields(batch).items()}
            pending.append((batch.wkb[mask], cols))
            pending_n += int(mask.sum())
            count += int(mask.sum())
            if pending_n >= 50_000:
                flush()
        flush(force=True)
        self.counts[layer] = count
        return count

    def add_table(self, name: str, columns: Mapping[str, Sequence[Any] | np.ndarray]) -> None:
        """A non-spatial table (GeoPackage ``attributes``), e.g. the transition matrix."""
        import pandas as pd
        import pyogrio

        try:
            pyogrio.write_dataframe(
                pd.DataFrame(columns), str(self.tmp), layer=name, driver="GPKG", **self._options()
            )
        except Exception as exc:
            raise OutputError(f"cannot be written ({_first_line(exc)})", self.out) from exc
        self.counts[name] = len(next(iter(columns.values()))) if columns else 0

    def commit(self) -> Path:
        os.replace(self.tmp, self.out)
        return self.out

    def abort(self) -> None:
        self._cleanup()

    def _cleanup(self) -> None:
        for suffix in ("", "-journal", "-wal", "-shm"):
            self.tmp.with_name(self.tmp.name + suffix).unlink(missing_ok=True)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _check_gpkg(out: PathLike, inputs: Sequence[PathLike]) -> Path:
    p = Path(out)
    if p.suffix.lower() != ".gpkg":
        raise OutputError("must be a GeoPackage (.gpkg): its tables need one", p)
    return check_writable(p, list(inputs))


def _check_raster_out(
    path: PathLike | None, inputs: Sequence[PathLike], others: Sequence[Path]
) -> Path | None:
    if path is None:
        return None
    p = check_writable(path, list(inputs))
    for o in others:
        if o.resolve() == p.resolve():
            raise OutputError(f"is also given as {o}; give each output its own name", p)
    return p


def check_outputs(
    out: PathLike | None, raster: PathLike | None, report_dir: PathLike | None, inputs: Sequence[PathLike]
) -> tuple[Path | None, Path | None, Path | None]:
    """Fail before any work when an output cannot be written (or is an input)."""
    out_path = _check_gpkg(out, inputs) if out is not None else None
    raster_path = _check_raster_out(raster, inputs, [out_path] if out_path else [])
    return out_path, raster_path, _check_report_dir(report_dir)


def _check_report_dir(path: PathLike | None) -> Path | None:
    if path is None:
        return None
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise OutputError("exists and is not a folder; give a folder for the report", p)
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"folder {parent} does not exist; create it first", p)
    if not os.access(parent, os.W_OK):
        raise OutputError(f"folder {parent} is not writable", p)
    return p


@dataclass
class _Outputs:
    """Temporary files of one run; moved into place together at the end, or all removed."""

    work: Path
    moves: list[tuple[Path, Path]] = field(default_factory=list)
    temps: list[_TempRaster] = field(default_factory=list)

    def temp_raster(self, name: str, grid: Grid, dtype: str, nodata: float) -> _TempRaster:
        """A scratch raster in the work folder, closed and removed by ``cleanup``."""
        r = _TempRaster(self.work / name, grid, dtype, nodata)
        self.temps.append(r)
        return r

    @classmethod
    def beside(cls, out: Path | None) -> _Outputs:
        """Work folder beside the first output (same disk), or a system temporary one."""
        if out is None:
            import tempfile

            return cls(Path(tempfile.mkdtemp(prefix="geoseg-")))
        work = out.with_name(f".{out.name}.work")
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        return cls(work)

    def staged(self, final: Path) -> Path:
        """A temporary path in ``final``'s own folder (so the rename never crosses devices)."""
        tmp = final.with_name(f".{final.name}.geoseg-staged{final.suffix}")
        tmp.unlink(missing_ok=True)
        self.moves.append((tmp, final))
        return tmp

    def commit(self) -> None:
        for tmp, final in self.moves:
            if tmp.is_dir():
                final.mkdir(exist_ok=True)
                for f in sorted(tmp.iterdir()):
                    os.replace(f, final / f.name)
                tmp.rmdir()
            else:
                os.replace(tmp, final)
        self.moves.clear()

    def cleanup(self) -> None:
        for r in self.temps:
            r.close()
        for tmp, _ in self.moves:
            if tmp.is_dir():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink(missing_ok=True)
        shutil.rmtree(self.work, ignore_errors=True)


# ======================================================================================
# Two dates: transition matrix, change raster, change polygons


@dataclass(frozen=True)
class ChangeEncoding:
    """How the change raster encodes a (from, to) pair of class indices."""

    n: int

    @property
    def dtype(self) -> str:
        return "uint8" if self.n <= MAX_UINT8_CLASSES else "uint16"

    @property
    def nodata(self) -> int:
        return CLASS_NODATA if self.dtype == "uint8" else 65535

    def code(self, i: int, j: int) -> int:
        return i * self.n + j

    def split(self, code: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        c = np.asarray(code, dtype=np.int64)
        return c // self.n, c % self.n

    def describe(self) -> str:
        return (
            f"value = from_index * {self.n} + to_index, indices into GEOSEG_CHANGE_CLASSES "
            f"(0..{self.n - 1}); unchanged pixels hold from_index * {self.n + 1}; nodata {self.nodata} "
            "where either date is nodata"
        )


def change_classes(classes: Sequence[ClassInfo]) -> list[ClassInfo]:
    """One ``ClassInfo`` per code of the change raster, for its colour table and names."""
    enc = ChangeEncoding(len(classes))
    out = []
    for i, a in enumerate(classes):
        for j, b in enumerate(classes):
            if i == j:
                pale = tuple(round(0.35 * c + 0.65 * 225) for c in a.colour)
                out.append(ClassInfo(enc.code(i, j), f"{a.name} (unchanged)", (pale[0], pale[1], pale[2])))
            else:
                out.append(ClassInfo(enc.code(i, j), f"{a.name} -> {b.name}", b.colour))
    return out


@dataclass(frozen=True)
class _ChangeTask:
    maps: AlignedMaps
    window: Window
    area: AreaModel
    selected: tuple[bool, ...]  # per code: polygonise it
    landcover: tuple[bool, ...]  # per date: return its aligned raw values (warped maps only)


@dataclass
class _ChangeBlock:
    window: Window
    codes: np.ndarray
    selected: np.ndarray
    pixels: np.ndarray  # (n*n,) int64
    area_m2: np.ndarray  # (n*n,)
    unknown: int  # valid pixels whose value is not in the class table
    landcover: list[np.ndarray | None]


def _change_block(task: _ChangeTask) -> _ChangeBlock:
    maps, window = task.maps, task.window
    enc = ChangeEncoding(maps.n_classes)
    raw = [read_aligned(m, maps.grid, window) for m in maps.maps[:2]]
    a, b = (to_index(v, ok, maps.class_ids) for v, ok in raw)
    unknown = int(sum(int(((idx < 0) & ok).sum()) for idx, (_, ok) in zip((a, b), raw, strict=True)))
    valid = (a >= 0) & (b >= 0)
    code = np.full(window.shape, enc.nodata, dtype=enc.dtype)
    c = a.astype(np.int64) * enc.n + b
    code[valid] = c[valid]
    sel = np.asarray(task.selected, dtype=bool)
    chosen = valid & sel[np.where(valid, c, 0)]
    selected = np.where(chosen, code, enc.nodata).astype(enc.dtype)
    cv = c[valid]
    pixels = np.bincount(cv, minlength=enc.n * enc.n).astype(np.int64)
    area = np.bincount(cv, weights=_pixel_areas(task.area, window)[valid], minlength=enc.n * enc.n)
    lc: list[np.ndarray | None] = [
        np.where(ok, v, maps.maps[k].nodata).astype(maps.maps[k].source.dtype) if task.landcover[k] else None
        for k, (v, ok) in enumerate(raw)
    ]
    return _ChangeBlock(window, code, selected, pixels, area, unknown, lc)


@dataclass
class ChangeResult:
    """Statistics and products of a comparison of two class maps."""

    classes: tuple[ClassInfo, ...]
    grid: Grid
    pixels: np.ndarray  # (n, n) transition counts, rows = before, columns = after
    area_ha: np.ndarray  # (n, n) hectares
    before: str
    after: str
    out: Path | None = None
    raster: Path | None = None
    report: Path | None = None
    layers: dict[str, int] = field(default_factory=dict)  # layer/table -> features/rows
    selected: list[tuple[int, int]] = field(default_factory=list)  # (from, to) indices polygonised
    min_area_ha: float = 0.0
    warped: list[str] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.classes]

    def class_table(self) -> dict[str, list[Any]]:
        """Per class: area before and after, gain, loss, net change (ha)."""
        m = self.area_ha
        before, after = m.sum(axis=1), m.sum(axis=0)
        diag = np.diag(m)
        gain, loss = after - diag, before - diag
        return {
            "class_id": [c.id for c in self.classes],
            "class_name": self.names,
            "before_ha": before.tolist(),
            "after_ha": after.tolist(),
            "gain_ha": gain.tolist(),
            "loss_ha": loss.tolist(),
            "net_ha": (gain - loss).tolist(),
        }

    def transitions(self, changed_only: bool = False) -> dict[str, list[Any]]:
        """One row per (from, to) pair that occurs, largest area first."""
        rows = []
        n = len(self.classes)
        for i in range(n):
            for j in range(n):
                if self.pixels[i, j] and not (changed_only and i == j):
                    rows.append((i, j))
        rows.sort(key=lambda ij: (-self.area_ha[ij], ij))
        c = self.classes
        return {
            "from_id": [c[i].id for i, _ in rows],
            "from_class": [c[i].name for i, _ in rows],
            "to_id": [c[j].id for _, j in rows],
            "to_class": [c[j].name for _, j in rows],
            "pixels": [int(self.pixels[i, j]) for i, j in rows],
            "area_ha": [float(self.area_ha[i, j]) for i, j in rows],
        }

    def matrix_table(self) -> dict[str, list[Any]]:
        """The matrix in wide form: one row per before class, one column per after class."""
        cols: dict[str, list[Any]] = {
            "from_id": [c.id for c in self.classes],
            "from_class": self.names,
        }
        for j, c in enumerate(self.classes):
            cols[f"to_{_field_name(c.name)}_ha"] = self.area_ha[:, j].tolist()
        cols["total_ha"] = self.area_ha.sum(axis=1).tolist()
        return cols

    def summary(self) -> str:
        """The matrix and per-class table as text, for the CLI."""
        lines = [
            f"transition matrix (ha), rows = {Path(self.before).name}, columns = {Path(self.after).name}:"
        ]
        lines += _format_matrix(self.names, self.area_ha)
        lines.append("")
        lines.append("per class (ha):")
        t = self.class_table()
        width = max(8, *(len(n) for n in self.names))
        lines.append(
            f"  {'class':<{width}} {'before':>12} {'after':>12} {'gain':>12} {'loss':>12} {'net':>12}"
        )
        for k, name in enumerate(self.names):
            lines.append(
                f"  {name:<{width}} {t['before_ha'][k]:>12,.2f} {t['after_ha'][k]:>12,.2f} "
                f"{t['gain_ha'][k]:>12,.2f} {t['loss_ha'][k]:>12,.2f} {t['net_ha'][k]:>+12,.2f}"
            )
        changed = float(self.area_ha.sum() - np.trace(self.area_ha))
        total = float(self.area_ha.sum())
        lines.append("")
        lines.append(
            f"changed: {changed:,.2f} ha of {total:,.2f} ha compared ({100 * changed / max(total, 1e-12):.2f} %)"
        )
        if self.warped:
            lines.append(f"reprojected onto the reference grid (nearest neighbour): {', '.join(self.warped)}")
        return "\n".join(lines)


def _field_name(name: str) -> str:
    return re.sub(r"[^0-9a-zA-Z]+", "_", name).strip("_").lower() or "class"


def _format_matrix(names: Sequence[str], m: np.ndarray) -> list[str]:
    w = max(10, *(len(n) for n in names))
    cw = max(12, *(len(n) + 1 for n in names))
    head = f"  {'':<{w}}" + "".join(f"{n:>{cw}}" for n in names)
    rows = [head]
    for i, n in enumerate(names):
        rows.append(f"  {n:<{w}}" + "".join(f"{v:>{cw},.2f}" for v in m[i]))
    return rows


def detect_change(
    before: PathLike,
    after: PathLike,
    out: PathLike | None = None,
    *,
    raster: PathLike | None = None,
    from_classes: Sequence[str | int] | None = None,
    to_classes: Sequence[str | int] | None = None,
    min_area_ha: float = 0.0,
    landcover: bool = False,
    report_dir: PathLike | None = None,
    reference: PathLike | Grid | int | None = None,
    block_size: int = DEFAULT_BLOCK,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: Progress | None = None,
    tags: dict[str, str] | None = None,
) -> ChangeResult:
    """Compare two class maps: transition matrix, change raster, change polygons.

    ``out`` (a .gpkg) receives the ``change`` polygon layer (the chosen transitions:
    ``from_classes`` -> ``to_classes``, names or ids, default every change; polygons under
    ``min_area_ha`` left out), ``landcover_before`` / ``landcover_after`` when
    ``landcover``, and the tables ``transitions``, ``transition_matrix`` and
    ``class_change``. ``raster`` receives the change COG. With neither, only the
    statistics are computed. Runs on Dask like ``geoseg.vectorize`` (``workers=0``: in
    this process). Nothing is left behind if anything fails.
    """
    from geoseg.vectorize import dask_client

    if not min_area_ha >= 0:
        raise ConfigError(f"minimum area must be zero or positive hectares, got {min_area_ha}")
    inputs = [before, after]
    maps = align_maps(inputs, reference=reference)
    n = maps.n_classes
    enc = ChangeEncoding(n)
    froms = resolve_classes(from_classes, maps.classes, "--from class", str(before))
    tos = resolve_classes(to_classes, maps.classes, "--to class", str(before))
    chosen = [(i, j) for i in froms for j in tos if i != j]
    if not chosen:
        raise ConfigError(
            "the --from and --to classes leave no change to map (from and to are the same class)"
        )
    selected = [False] * (n * n)
    for i, j in chosen:
        selected[enc.code(i, j)] = True
    out_path, raster_path, report_path = check_outputs(out, raster, report_dir, inputs)
    windows = _windows(maps.grid, block_size)
    area = area_model(maps.grid)
    want_polygons = out_path is not None
    lc = tuple(landcover and want_polygons and m.warp for m in maps.maps[:2])

    result = ChangeResult(
        maps.classes, maps.grid, np.zeros((n, n), np.int64), np.zeros((n, n)), str(before), str(after),
        selected=chosen, min_area_ha=min_area_ha, warped=[m.path for m in maps.maps if m.warp],
    )  # fmt: skip
    outputs = _Outputs.beside(out_path or raster_path or report_path)
    writers: list[Any] = []
    gpkg: GpkgBuilder | None = None
    try:
        with dask_client(workers, scheduler) as client:
            # ---- pass 1: blocks -> change raster, chosen-transitions raster, sums
            cog_path = outputs.staged(raster_path) if raster_path else outputs.work / "change.tif"
            tags = {
                "GEOSEG_CHANGE_ENCODING": enc.describe(),
                "GEOSEG_CHANGE_CLASSES": json.dumps(
                    [
                        {"index": k, "id": c.id, "name": c.name, "colour": list(c.colour)}
                        for k, c in enumerate(maps.classes)
                    ]
                ),
                "GEOSEG_BEFORE": str(before),
                "GEOSEG_AFTER": str(after),
                **(tags or {}),  # e.g. a workflow's provenance record
            }
            need_cog = raster_path is not None or report_path is not None
            cog: RasterWriter | None = None
            if need_cog:
                if enc.dtype == "uint8":
                    cog = class_map_writer(cog_path, maps.grid, change_classes(maps.classes), tags)
                else:
                    cog = RasterWriter(cog_path, maps.grid, 1, "uint16", enc.nodata, tags=tags)
                writers.append(cog)
            sel_raster = (
                outputs.temp_raster("selected.tif", maps.grid, enc.dtype, enc.nodata)
                if want_polygons
                else None
            )
            lc_rasters: list[_TempRaster | None] = [
                outputs.temp_raster(f"landcover{k}.tif", maps.grid, maps.maps[k].source.dtype, maps.maps[k].nodata)
                if lc[k] else None
                for k in range(2)
            ]  # fmt: skip
            tasks = [_ChangeTask(maps, w, area, tuple(selected), lc) for w in windows]
            from dask.base import tokenize

            token = "geoseg-change-" + tokenize(maps.paths(), str(maps.grid), block_size, selected, lc)
            partial: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(tasks)
            unknown = 0
            phases = _Phases(progress, [1, 1] if want_polygons else [1])
            blocks_done = phases.phase(0, "blocks")
            for done, (k, res) in enumerate(_run_blocks(client, _change_block, tasks, token), start=1):
                if cog is not None:
                    cog.write(res.window, res.codes)
                if sel_raster is not None:
                    sel_raster.write(res.window, res.selected)
                for r, values in zip(lc_rasters, res.landcover, strict=True):
                    if r is not None and values is not None:
                        r.write(res.window, values)
                partial[k] = (res.pixels, res.area_m2)
                unknown += res.unknown
                blocks_done(done, len(tasks))
            pixels = np.zeros(n * n, np.int64)
            area_m2 = np.zeros(n * n)
            for p in partial:  # in block order: the same sums whatever order blocks finished
                assert p is not None
                pixels += p[0]
                area_m2 += p[1]
            result.pixels = pixels.reshape(n, n)
            result.area_ha = area_m2.reshape(n, n) / 1e4
            if unknown:
                warnings.warn(
                    f"{unknown:,} pixels hold values missing from the class table; they were treated as nodata",
                    DataQuirkWarning,
                    stacklevel=2,
                )
            if pixels.sum() == 0:
                raise GridMismatchError(
                    f"no pixel is valid in both {before} and {after} (where they overlap one is always nodata); "
                    "check the nodata values and that the maps cover the same area"
                )
            if cog is not None:
                cog.finish()
                writers.remove(cog)

            # ---- pass 2: polygons and tables
            if out_path is not None:
                assert sel_raster is not None
                gpkg = GpkgBuilder(out_path, maps.grid.crs.to_wkt() if maps.grid.crs else None)
                sel_src = sel_raster.close()
                meta = _provenance(
                    {"before": str(before), "after": str(after), "min_area_ha": str(min_area_ha)}
                )
                fields = _change_fields(maps.classes, enc)
                keep = _min_area_filter(min_area_ha)
                poly_progress = phases.phase(1, "polygons")
                if result.area_ha.sum() - np.trace(result.area_ha) > 0 and any(
                    result.pixels[i, j] for i, j in chosen
                ):
                    batches = _polygonize(sel_src, block_size, client, poly_progress)
                else:
                    batches = iter(())
                gpkg.add_polygons("change", batches, fields, keep, meta)
                if landcover:
                    for k, layer in enumerate(("landcover_before", "landcover_after")):
                        r = lc_rasters[k]
                        src = r.close() if r is not None else maps.maps[k].source
                        gpkg.add_polygons(
                            layer, _polygonize(src, block_size, client, None), _landcover_fields(maps.classes), None,
                            _provenance({"source": maps.maps[k].path}),
                        )  # fmt: skip
                gpkg.add_table("transitions", result.transitions())
                gpkg.add_table("transition_matrix", result.matrix_table())
                gpkg.add_table("class_change", result.class_table())
                result.layers = dict(gpkg.counts)
                poly_progress(1, 1, "done")
        if report_path is not None:
            from geoseg.report import change_report

            staged_report = outputs.staged(report_path)
            staged_report.mkdir()
            change_report(result, maps, cog_path, staged_report)
            result.report = report_path
        if gpkg is not None:
            gpkg.commit()
            result.out = out_path
        outputs.commit()
        result.raster = raster_path
    except BaseException:
        for w in writers:
            w.abort()
        if gpkg is not None:
            gpkg.abort()
        raise
    finally:
        outputs.cleanup()
    return result


def _provenance(extra: dict[str, str]) -> dict[str, str]:
    from geoseg import __version__

    return {"geoseg_version": __version__, **extra}


def _min_area_filter(min_area_ha: float) -> Callable[[Any], np.ndarray] | None:
    if not min_area_ha:
        return None
    threshold = min_area_ha * 1e4
    return lambda batch: np.asarray(batch.area_m2) >= threshold


def _change_fields(
    classes: Sequence[ClassInfo], enc: ChangeEncoding
) -> Callable[[Any], dict[str, np.ndarray]]:
    names = np.array([c.name for c in classes], dtype=object)
    ids = np.array([c.id for c in classes], dtype=np.int32)

    def fields(batch: Any) -> dict[str, np.ndarray]:
        if batch is None:
            z = np.zeros(0, np.int32)
            o = np.empty(0, dtype=object)
            return {"class_id": z, "class_name": o, "from_id": z, "from_class": o, "to_id": z, "to_class": o,
                    "area_ha": np.zeros(0)}  # fmt: skip
        i, j = enc.split(batch.value)
        label = np.array([f"{a} -> {b}" for a, b in zip(names[i], names[j], strict=True)], dtype=object)
        return {
            "class_id": np.asarray(batch.value, dtype=np.int32),
            "class_name": label,
            "from_id": ids[i],
            "from_class": names[i],
            "to_id": ids[j],
            "to_class": names[j],
            "area_ha": np.asarray(batch.area_m2) / 1e4,
        }

    return fields


def _landcover_fields(classes: Sequence[ClassInfo]) -> Callable[[Any], dict[str, np.ndarray]]:
    lookup = {c.id: c.name for c in classes}

    def fields(batch: Any) -> dict[str, np.ndarray]:
        if batch is None:
            return {"class_id": np.zeros(0, np.int32), "class_name": np.empty(0, dtype=object),
                    "area_ha": np.zeros(0), "perimeter_m": np.zeros(0)}  # fmt: skip
        return {
            "class_id": np.asarray(batch.value, dtype=np.int32),
            "class_name": np.array([lookup.get(v) for v in batch.value.tolist()], dtype=object),
            "area_ha": np.asarray(batch.area_m2) / 1e4,
            "perimeter_m": np.asarray(batch.perimeter_m),
        }

    return fields


def _polygonize(src: RasterSource, block_size: int, client: Any, progress: Progress | None) -> Iterator[Any]:
    from geoseg.vectorize import polygonize_batches

    return polygonize_batches(src, connectivity=4, block_size=block_size, client=client, progress=progress)


# ======================================================================================
# Time series: first year of forest loss


def first_loss(
    forest: np.ndarray, valid: np.ndarray, persist: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """First confirmed loss and first confirmed regrowth of forest, per pixel.

    ``forest`` and ``valid`` are ``(dates, ...)`` booleans; dates where a pixel is nodata
    are skipped for that pixel, as a cloud would be.

    - *Lost at date i* (i >= 1): the last valid observation before ``i`` was forest, and
      the ``persist`` valid observations from ``i`` on (``i`` itself valid) are all
      non-forest. A series that ends before ``persist`` observations leaves the loss
      unconfirmed ("pending"): with ``persist=2`` the last date alone never makes a
      clearing, and a single non-forest date between forest dates is ignored.
    - *Regrowth at date j*: the ``persist`` valid observations before ``j`` were all
      non-forest and the ``persist`` valid observations from ``j`` on are all forest.
      Asking for an established non-forest state before (not just one date) keeps a
      clearing too brief to count as loss from coming back as regrowth.

    Returns (loss index, regrowth index, pending): the date index of the first event
    (-1: none), and the pixels whose loss started but the series ended before it could
    be confirmed.
    """
    forest = np.asarray(forest, dtype=bool)
    valid = np.asarray(valid, dtype=bool)
    shape = forest.shape[1:]
    loss = np.full(shape, -1, dtype=np.int16)
    gain = np.full(shape, -1, dtype=np.int16)
    pending = np.zeros(shape, dtype=bool)
    # Trailing runs of consecutive valid forest / non-forest observations so far.
    run_forest = np.zeros(shape, dtype=np.int16)
    run_open = np.zeros(shape, dtype=np.int16)
    for i in range(forest.shape[0]):
        if i > 0:
            start = (run_forest >= 1) & valid[i] & ~forest[i] & (loss < 0)
            if start.any():
                ok, unfinished = _persists(forest, valid, i, persist, False, start)
                loss[ok] = i
                pending |= unfinished
            start = (run_open >= persist) & valid[i] & forest[i] & (gain < 0)
            if start.any():
                ok, _ = _persists(forest, valid, i, persist, True, start)
                gain[ok] = i
        seen_forest = valid[i] & forest[i]
        seen_open = valid[i] & ~forest[i]
        run_forest = np.where(seen_forest, run_forest + 1, np.where(seen_open, 0, run_forest)).astype(
            np.int16
        )
        run_open = np.where(seen_open, run_open + 1, np.where(seen_forest, 0, run_open)).astype(np.int16)
    pending &= loss < 0
    return loss, gain, pending


def _persists(
    forest: np.ndarray, valid: np.ndarray, i: int, k: int, target: bool, start: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Where ``start`` holds: confirmed (k valid observations equal to ``target`` from i
    on), and unfinished (no contrary observation but the series ended first)."""
    count = start.astype(np.int16)
    alive = start.copy()
    for t in range(i + 1, forest.shape[0]):
        need = alive & (count < k) & valid[t]
        alive &= ~(need & (forest[t] != target))
        count += need & (forest[t] == target)
    return alive & (count >= k), alive & (count < k)


@dataclass(frozen=True)
class _TrackTask:
    maps: AlignedMaps
    window: Window
    area: AreaModel
    forest: tuple[int, ...]  # class indices that are forest
    persist: int
    years: tuple[int, ...]


@dataclass
class _TrackBlock:
    window: Window
    loss_year: np.ndarray  # uint16
    loss_index: np.ndarray  # uint8, 255 none
    gain_index: np.ndarray  # uint8, 255 none
    loss_m2: np.ndarray  # (T,)
    gain_m2: np.ndarray  # (T,)
    forest_m2: np.ndarray  # (T,)
    observed_m2: np.ndarray  # (T,)
    pending_m2: float
    assessed_m2: float


def _track_block(task: _TrackTask) -> _TrackBlock:
    maps, window = task.maps, task.window
    t_count = len(maps.maps)
    idx = np.stack([maps.read_index(k, window) for k in range(t_count)])
    valid = idx >= 0
    forest = np.isin(idx, np.asarray(task.forest, dtype=np.int16)) & valid
    loss, gain, pending = first_loss(forest, valid, task.persist)
    assessed = valid.sum(axis=0) >= 2
    years = np.asarray((0, *task.years[1:]), dtype=np.uint16)
    loss_year = np.where(loss >= 0, years[np.maximum(loss, 0)], 0).astype(np.uint16)
    loss_year[~assessed] = LOSS_NODATA
    w = _pixel_areas(task.area, window)
    loss_m2 = np.bincount(loss[loss >= 0], weights=w[loss >= 0], minlength=t_count)
    gain_m2 = np.bincount(gain[gain >= 0], weights=w[gain >= 0], minlength=t_count)
    forest_m2 = np.array([w[forest[t]].sum() for t in range(t_count)])
    observed_m2 = np.array([w[valid[t]].sum() for t in range(t_count)])
    return _TrackBlock(
        window,
        loss_year,
        np.where(loss >= 0, loss, 255).astype(np.uint8),
        np.where(gain >= 0, gain, 255).astype(np.uint8),
        loss_m2,
        gain_m2,
        forest_m2,
        observed_m2,
        float(w[pending].sum()),
        float(w[assessed].sum()),
    )


@dataclass
class TrackResult:
    """Loss per period of a dated series of class maps."""

    dates: list[str]
    years: list[int]
    forest: list[str]  # forest class names
    persist: int
    grid: Grid
    loss_ha: np.ndarray  # (T,): first loss confirmed at each date (index 0 is always 0)
    regrowth_ha: np.ndarray  # (T,)
    forest_ha: np.ndarray  # (T,): forest observed at each date
    observed_ha: np.ndarray  # (T,): valid pixels at each date
    pending_ha: float
    assessed_ha: float
    paths: list[str] = field(default_factory=list)
    out: Path | None = None
    loss_year: Path | None = None
    report: Path | None = None
    layers: dict[str, int] = field(default_factory=dict)
    warped: list[str] = field(default_factory=list)

    def period_table(self) -> dict[str, list[Any]]:
        """One row per period (previous date -> date): loss, cumulative loss, regrowth, forest."""
        rows = range(1, len(self.dates))
        cum = np.cumsum(self.loss_ha)
        cum_gain = np.cumsum(self.regrowth_ha)
        return {
            "period": [f"{self.dates[i - 1]}..{self.dates[i]}" for i in rows],
            "start_date": [self.dates[i - 1] for i in rows],
            "end_date": [self.dates[i] for i in rows],
            "year": [self.years[i] for i in rows],
            "loss_ha": [float(self.loss_ha[i]) for i in rows],
            "cumulative_loss_ha": [float(cum[i]) for i in rows],
            "regrowth_ha": [float(self.regrowth_ha[i]) for i in rows],
            "cumulative_regrowth_ha": [float(cum_gain[i]) for i in rows],
            "forest_ha": [float(self.forest_ha[i]) for i in rows],
        }

    def date_table(self) -> dict[str, list[Any]]:
        """Forest and observed area at each date."""
        return {
            "date": list(self.dates),
            "year": list(self.years),
            "forest_ha": self.forest_ha.tolist(),
            "observed_ha": self.observed_ha.tolist(),
            "forest_percent": (100 * self.forest_ha / np.maximum(self.observed_ha, 1e-12)).tolist(),
        }

    def summary(self) -> str:
        t = self.period_table()
        lines = [
            f"forest = {', '.join(self.forest)}; a loss counts when non-forest persists for {self.persist} "
            f"date{'s' if self.persist > 1 else ''}",
            f"  {'period':<24} {'loss ha':>12} {'cumulative':>12} {'regrowth ha':>12} {'forest ha':>12}",
        ]
        for k in range(len(t["period"])):
            lines.append(
                f"  {t['period'][k]:<24} {t['loss_ha'][k]:>12,.2f} {t['cumulative_loss_ha'][k]:>12,.2f} "
                f"{t['regrowth_ha'][k]:>12,.2f} {t['forest_ha'][k]:>12,.2f}"
            )
        lines.append(
            f"forest at {self.dates[0]}: {self.forest_ha[0]:,.2f} ha; total loss {self.loss_ha.sum():,.2f} ha; "
            f"unconfirmed at the end of the series: {self.pending_ha:,.2f} ha"
        )
        if self.warped:
            lines.append(f"reprojected onto the reference grid (nearest neighbour): {', '.join(self.warped)}")
        return "\n".join(lines)


def default_persist(n_dates: int) -> int:
    """2 where the series allows it (three dates or more), else 1."""
    return 2 if n_dates >= 3 else 1


def check_persist(persist: int | None, n_dates: int) -> int:
    """The persistence to use: ``persist``, or the default; refused if the series is too short."""
    k = default_persist(n_dates) if persist is None else int(persist)
    if k < 1:
        raise ConfigError(f"--persist must be at least 1, got {k}")
    if k > n_dates - 1:
        raise ConfigError(
            f"--persist {k} needs at least {k + 1} dates (a loss is confirmed by {k} dates after a forest date); "
            f"there are {n_dates}: lower --persist"
        )
    return k


def track_loss(
    maps: Sequence[PathLike],
    dates: Sequence[str],
    forest: str | int | Sequence[str | int],
    out: PathLike | None = None,
    *,
    loss_year: PathLike | None = None,
    persist: int | None = None,
    min_area_ha: float = 0.0,
    report_dir: PathLike | None = None,
    reference: PathLike | Grid | int | None = None,
    block_size: int = DEFAULT_BLOCK,
    workers: int | None = None,
    scheduler: str | None = None,
    report_imagery: Sequence[tuple[str, PathLike, Sequence[int], str]] | None = None,
    progress: Progress | None = None,
    tags: dict[str, str] | None = None,
) -> TrackResult:
    """First year of forest loss over dated class maps (oldest first).

    Writes ``loss_year`` (uint16 COG: the year of the date of first confirmed loss, 0 = no
    loss, 65535 = fewer than two valid dates), and into ``out`` (.gpkg) the layers
    ``forest_loss`` (polygons per period: ``year``, ``date``, ``period``, ``area_ha``) and
    ``regrowth`` (the same for non-forest becoming forest), and the tables
    ``loss_by_period`` and ``forest_by_date``. See :func:`first_loss` for the rule.
    ``report_imagery`` adds false-colour composites (date, path, three 1-based bands,
    their names) to the report.
    """
    from geoseg.vectorize import dask_client

    if len(maps) < 2:
        raise ConfigError(
            f"track needs a time series of at least two dated maps, got {len(maps)}; give every date's map"
        )
    parsed = check_dates(list(dates), len(maps))
    k = check_persist(persist, len(maps))
    if not min_area_ha >= 0:
        raise ConfigError(f"minimum area must be zero or positive hectares, got {min_area_ha}")
    aligned = align_maps(maps, reference=reference, dates=list(dates))
    wanted = [forest] if isinstance(forest, (str, int)) else list(forest)
    forest_idx = resolve_classes(wanted, aligned.classes, "forest class", str(maps[0]))
    if not wanted:
        raise ConfigError("no forest class given; name it with --forest")
    out_path, loss_path, report_path = check_outputs(out, loss_year, report_dir, maps)
    years = [d.year for d in parsed]
    if max(years) >= LOSS_NODATA:
        raise ConfigError("dates beyond year 65534 cannot be written to a uint16 loss-year raster")
    windows = _windows(aligned.grid, block_size)
    area = area_model(aligned.grid)
    t_count = len(maps)
    result = TrackResult(
        list(dates), years, [aligned.classes[i].name for i in forest_idx], k, aligned.grid,
        np.zeros(t_count), np.zeros(t_count), np.zeros(t_count), np.zeros(t_count), 0.0, 0.0,
        paths=[str(p) for p in maps], warped=[m.path for m in aligned.maps if m.warp],
    )  # fmt: skip
    outputs = _Outputs.beside(out_path or loss_path or report_path)
    writers: list[Any] = []
    gpkg: GpkgBuilder | None = None
    try:
        with dask_client(workers, scheduler) as client:
            ly_path = outputs.staged(loss_path) if loss_path else outputs.work / "loss_year.tif"
            ly: RasterWriter | None = None
            if loss_path is not None or report_path is not None:
                ly = RasterWriter(
                    ly_path, aligned.grid, 1, "uint16", LOSS_NODATA,
                    tags={
                        "GEOSEG_LOSS_YEAR": "year of the date of first confirmed forest loss; 0 = no loss; "
                        f"{LOSS_NODATA} = fewer than two valid dates",
                        "GEOSEG_DATES": json.dumps(list(dates)),
                        "GEOSEG_FOREST_CLASSES": json.dumps(result.forest),
                        "GEOSEG_PERSIST": str(k),
                        "GEOSEG_INPUTS": json.dumps([str(p) for p in maps]),
                        **(tags or {}),  # e.g. a workflow's provenance record
                    },
                    band_descriptions=["loss_year"],
                    colormap=loss_year_palette(years[1:]),
                )  # fmt: skip
                writers.append(ly)
            want_polygons = out_path is not None
            loss_idx = (
                outputs.temp_raster("loss_index.tif", aligned.grid, "uint8", 255) if want_polygons else None
            )
            gain_idx = (
                outputs.temp_raster("gain_index.tif", aligned.grid, "uint8", 255) if want_polygons else None
            )
            tasks = [_TrackTask(aligned, w, area, tuple(forest_idx), k, tuple(years)) for w in windows]
            from dask.base import tokenize

            token = "geoseg-track-" + tokenize(
                aligned.paths(), str(aligned.grid), block_size, forest_idx, k, years
            )
            partial: list[_TrackBlock | None] = [None] * len(tasks)
            phases = _Phases(progress, [2, 1, 1] if want_polygons else [1])
            blocks_done = phases.phase(0, "blocks")
            for done, (i, res) in enumerate(_run_blocks(client, _track_block, tasks, token), start=1):
                if ly is not None:
                    ly.write(res.window, res.loss_year)
                if loss_idx is not None and gain_idx is not None:
                    loss_idx.write(res.window, res.loss_index)
                    gain_idx.write(res.window, res.gain_index)
                res.loss_year = res.loss_index = res.gain_index = np.empty(0)  # keep only the sums
                partial[i] = res
                blocks_done(done, len(tasks))
            for p in partial:  # block order: deterministic sums
                assert p is not None
                result.loss_ha += p.loss_m2 / 1e4
                result.regrowth_ha += p.gain_m2 / 1e4
                result.forest_ha += p.forest_m2 / 1e4
                result.observed_ha += p.observed_m2 / 1e4
                result.pending_ha += p.pending_m2 / 1e4
                result.assessed_ha += p.assessed_m2 / 1e4
            if result.assessed_ha == 0:
                raise BadRasterError(
                    "no pixel has two valid dates; check the maps' nodata values and that they cover the same area",
                    str(maps[0]),
                )
            if ly is not None:
                ly.finish()
                writers.remove(ly)
            if out_path is not None:
                assert loss_idx is not None and gain_idx is not None
                gpkg = GpkgBuilder(out_path, aligned.grid.crs.to_wkt() if aligned.grid.crs else None)
                keep = _min_area_filter(min_area_ha)
                meta = _provenance(
                    {"inputs": json.dumps([str(p) for p in maps]), "dates": json.dumps(list(dates)),
                     "forest": json.dumps(result.forest), "persist": str(k), "min_area_ha": str(min_area_ha)}
                )  # fmt: skip
                fields = _period_fields(list(dates), years)
                for layer, raster_, total_ha, ph in (
                    ("forest_loss", loss_idx, result.loss_ha.sum(), 1),
                    ("regrowth", gain_idx, result.regrowth_ha.sum(), 2),
                ):
                    src = raster_.close()
                    cb = phases.phase(ph, layer.replace("_", " ") + " polygons")
                    batches = _polygonize(src, block_size, client, cb) if total_ha > 0 else iter(())
                    gpkg.add_polygons(layer, batches, fields, keep, meta)
                gpkg.add_table("loss_by_period", result.period_table())
                gpkg.add_table("forest_by_date", result.date_table())
                result.layers = dict(gpkg.counts)
                phases.phase(2, "done")(1, 1)
        if report_path is not None:
            from geoseg.report import track_report

            staged_report = outputs.staged(report_path)
            staged_report.mkdir()
            track_report(result, aligned, ly_path, staged_report, report_imagery)
            result.report = report_path
        if gpkg is not None:
            gpkg.commit()
            result.out = out_path
        outputs.commit()
        result.loss_year = loss_path
    except BaseException:
        for w in writers:
            w.abort()
        if gpkg is not None:
            gpkg.abort()
        raise
    finally:
        outputs.cleanup()
    return result


def _period_fields(dates: Sequence[str], years: Sequence[int]) -> Callable[[Any], dict[str, np.ndarray]]:
    d = np.array(list(dates), dtype=object)
    y = np.array(list(years), dtype=np.int32)
    period = np.array(["", *(f"{a}..{b}" for a, b in itertools.pairwise(dates))], dtype=object)

    def fields(batch: Any) -> dict[str, np.ndarray]:
        if batch is None:
            o = np.empty(0, dtype=object)
            return {"year": np.zeros(0, np.int32), "date": o, "period": o, "area_ha": np.zeros(0)}
        i = np.asarray(batch.value, dtype=np.int64)
        return {"year": y[i], "date": d[i], "period": period[i], "area_ha": np.asarray(batch.area_m2) / 1e4}

    return fields


def loss_year_palette(years: Sequence[int]) -> dict[int, tuple[int, int, int, int]]:
    """Yellow (early) to dark red (late) for loss years; no loss light grey."""
    import matplotlib

    cmap = matplotlib.colormaps["YlOrRd"]
    # TIFF colour tables have no alpha: "no loss" is a light grey rather than transparent.
    table: dict[int, tuple[int, int, int, int]] = {0: (235, 235, 235, 255)}
    uniq = sorted(set(years))
    for k, yr in enumerate(uniq):
        r, g, b, _ = cmap(0.3 + 0.7 * k / max(len(uniq) - 1, 1))
        table[yr] = (round(255 * r), round(255 * g), round(255 * b), 255)
    return table


__all__ = [
    "DEFAULT_BLOCK",
    "LOSS_NODATA",
    "AlignedMaps",
    "ChangeEncoding",
    "ChangeResult",
    "ClassMap",
    "GpkgBuilder",
    "TrackResult",
    "align_maps",
    "change_classes",
    "check_dates",
    "check_outputs",
    "check_persist",
    "default_persist",
    "detect_change",
    "first_loss",
    "loss_year_palette",
    "parse_date",
    "read_aligned",
    "resolve_classes",
    "to_index",
    "track_loss",
]
