"""Class raster -> polygons, block by block on Dask, merged exactly across block seams.

This module is what users import: the results, the inputs (class maps, class tables), the
polygon stream (``polygonize_batches`` and its wrappers) and writing a layer
(``vectorize``). The parts with an idea of their own live beside it: :mod:`geoseg.classblocks`
(a block as a Dask task, run in order), :mod:`geoseg.seams` (block layout, merging across
seams) and :mod:`geoseg.sieve` (the minimum mapping unit).

How it works, and why:

- **Blocks.** The raster is cut into ``block_size`` squares. Each Dask task gets the path and
  a window (never pixels), reads its block and polygonises it with GDAL
  (``rasterio.features.shapes``) in *global pixel coordinates*: vertices are integers, so
  the same corner seen from two blocks is bit-identical and merging is exact. Pixel
  coordinates go to the CRS with one affine at the very end.
- **Seams.** A polygon touching no internal block edge is final as it is and is streamed to
  the output. The others ("seam pieces") go to the client, which joins them across seams
  and merges each group as soon as every block it touches is done (:mod:`geoseg.seams`).
  The result equals polygonising the whole raster at once: same polygons, same areas, and
  rasterising them gives the raster back.
- **Order.** Blocks are consumed in row-major order whatever order Dask finishes them in
  (a small reorder buffer), and each block's interior polygons are followed by the groups
  that block completed, sorted by their first pixel; the same input and block size give
  the same features in the same order, whatever the worker count.
- **Minimum mapping unit** (``min_area_ha``) is an exactly defined sieve of the raster
  (:mod:`geoseg.sieve`), run as a first pass over the blocks; polygons are then exactly the
  polygonisation of the sieved raster.
- **Simplification** (``simplify_m``) is ``shapely.coverage_simplify`` of each block's
  polygons with the block outline fixed (``simplify_boundary=False``): shared edges are
  simplified once, so neighbours keep sharing them (no gaps, no overlaps); vertices
  where class boundaries cross block seams, and edges along nodata and the raster edge,
  stay where they are. Vertices are a subset of the pixel corners, so merging across
  seams stays exact.
- **Areas** come from :mod:`geoseg.areas` (planar in low-distortion projections, on the
  ellipsoid otherwise).
- **Memory.** A worker holds one block and its polygons. The client holds a few blocks'
  results (the reorder window), the seam pieces of groups still open (about one row of
  blocks, plus any polygon that spans many blocks, which the output must hold whole anyway),
  and up to ``FLUSH_FEATURES`` polygons waiting to be written. With a minimum mapping unit
  it also holds, between the passes, the small regions no block could decide on its own
  and their neighbours: a fraction of the polygons, but it grows with the map.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import rasterio.features
import shapely
from affine import Affine

from geoseg.areas import AreaModel, area_model
from geoseg.classblocks import _BlockTask, _read_block, _run_ordered, _Sieve, dask_client
from geoseg.errors import (
    BadRasterError,
    ConfigError,
    GeosegError,
    MissingFileError,
    OutputError,
    first_line,
)
from geoseg.grid import Window
from geoseg.io import (
    CLASS_NODATA,
    ClassInfo,
    RasterSource,
    check_writable,
    open_raster,
    read_classes,
)
from geoseg.progress import Progress, report
from geoseg.seams import BOTTOM, LEFT, RIGHT, TOP, _Layout, _SeamMerger
from geoseg.sieve import _apply_sieve, _plan_sieve, _sieve_stats_block

DEFAULT_BLOCK = 2048
DEFAULT_LAYER = "landcover"
FORMATS = {".gpkg": "GPKG", ".fgb": "FlatGeobuf", ".geojson": "GeoJSON", ".json": "GeoJSON"}
FLUSH_FEATURES = 20_000  # per write session (~0.05 s each): big enough to amortise, small enough to overlap
FLUSH_BYTES = 64 << 20


# ======================================================================================
# Public results


@dataclass(frozen=True)
class PolygonBatch:
    """Polygons in the raster's CRS with their class value, area and perimeter."""

    wkb: np.ndarray  # object array of WKB bytes
    value: np.ndarray  # int64
    area_m2: np.ndarray
    perimeter_m: np.ndarray

    def __len__(self) -> int:
        return len(self.value)

    @property
    def geometry(self) -> np.ndarray:
        """Shapely geometries (decoded on demand: the writer uses the WKB directly)."""
        return shapely.from_wkb(self.wkb)

    @staticmethod
    def concat(batches: Sequence[PolygonBatch]) -> PolygonBatch:
        if not batches:
            return _empty_batch()
        return PolygonBatch(
            np.concatenate([b.wkb for b in batches]),
            np.concatenate([b.value for b in batches]),
            np.concatenate([b.area_m2 for b in batches]),
            np.concatenate([b.perimeter_m for b in batches]),
        )


def _empty_batch() -> PolygonBatch:
    return PolygonBatch(np.empty(0, dtype=object), np.empty(0, np.int64), np.zeros(0), np.zeros(0))


@dataclass
class PolygonizeStats:
    """Counters filled in while ``polygonize_batches`` runs."""

    blocks: int = 0
    pixels: int = 0  # pixels in the grid
    valid_pixels: int = 0
    polygons: int = 0
    seam_polygons: int = 0  # polygons assembled from pieces of several blocks
    sieved_pixels: int = 0  # pixels whose class the minimum mapping unit changed or dropped
    values: set[int] = field(default_factory=set)


@dataclass(frozen=True)
class VectorizeResult:
    """What ``vectorize`` wrote, and how fast."""

    path: Path
    layer: str
    polygons: int
    seam_polygons: int
    blocks: int
    pixels: int
    valid_pixels: int
    sieved_pixels: int
    seconds: float

    @property
    def megapixels_per_second(self) -> float:
        return self.pixels / 1e6 / self.seconds if self.seconds > 0 else float("inf")


# ======================================================================================
# Inputs


def open_class_map(path: str | os.PathLike[str] | RasterSource) -> RasterSource:
    """Open a single-band class raster; nodata is the declared value, else 255."""
    src = path if isinstance(path, RasterSource) else open_raster(path)
    name = src.paths[0]
    if src.count != 1:
        raise BadRasterError(
            f"has {src.count} bands; a class map has one (pick one with `gdal_translate -b N`)", name
        )
    if src.nodata is None and not src.uses_mask:
        src = replace(src, nodata=float(CLASS_NODATA))
    return src


def load_class_table(path: str | os.PathLike[str]) -> list[ClassInfo]:
    """Read a class table: YAML/JSON (list of {id, name, colour}, or {id: name}) or CSV.

    CSV needs a header with ``id`` and ``name`` and optionally ``colour`` (``#rrggbb``).
    """
    p = Path(path)
    if not p.exists():
        raise MissingFileError("no such class table; check the path", p)
    try:
        text = p.read_text(encoding="utf-8")
        if p.suffix.lower() == ".csv":
            rows: Any = list(csv.DictReader(text.splitlines()))
        elif p.suffix.lower() == ".json":
            rows = json.loads(text)
        else:
            import yaml

            rows = yaml.safe_load(text)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot be read as a class table ({exc})", p) from exc
    except Exception as exc:  # yaml.YAMLError and friends
        raise ConfigError(f"cannot be read as a class table ({type(exc).__name__}: {exc})", p) from exc
    if isinstance(rows, dict) and "classes" in rows:
        rows = rows["classes"]
    if isinstance(rows, dict):
        rows = [{"id": k, **(v if isinstance(v, dict) else {"name": v})} for k, v in rows.items()]
    if not isinstance(rows, list) or not rows:
        raise ConfigError("is not a class table: expected rows of id, name[, colour]", p)
    out: list[ClassInfo] = []
    for row in rows:
        try:
            cid = int(row["id"])
            name = str(row["name"])
            colour = _parse_colour(row.get("colour", row.get("color")))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"bad class row {row!r}: needs an integer id and a name ({exc})", p) from exc
        out.append(ClassInfo(cid, name, colour) if colour else ClassInfo(cid, name))
    ids = [c.id for c in out]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"lists a class id twice ({sorted(i for i in ids if ids.count(i) > 1)[0]})", p)
    return out


def _parse_colour(value: Any) -> tuple[int, int, int] | None:
    if value in (None, ""):
        return None
    if isinstance(value, str):
        v = value.strip().lstrip("#")
        if len(v) == 6:
            return (int(v[0:2], 16), int(v[2:4], 16), int(v[4:6], 16))
        parts = v.replace(",", " ").replace(";", " ").split()
    else:
        parts = list(value)
    r, g, b = (int(x) for x in parts[:3])
    return (r, g, b)


def _check_params(
    connectivity: int, block_size: int, min_area_ha: float | None, simplify_m: float | None
) -> None:
    if connectivity not in (4, 8):
        raise ConfigError(f"connectivity must be 4 or 8, got {connectivity}")
    if block_size < 4:
        raise ConfigError(f"block size must be at least 4 pixels, got {block_size}")
    if min_area_ha is not None and not min_area_ha >= 0:
        raise ConfigError(f"minimum area must be zero or positive hectares, got {min_area_ha}")
    if simplify_m is not None and not simplify_m >= 0:
        raise ConfigError(f"simplification tolerance must be zero or positive metres, got {simplify_m}")


# ======================================================================================
# Worker side: polygonise one block


@dataclass
class _BlockPolygons:
    index: int
    valid_pixels: int
    sieved_pixels: int
    values: np.ndarray  # class values present
    interior: PolygonBatch
    seam_geoms: np.ndarray  # global pixel coordinates, possibly simplified
    seam_values: np.ndarray
    seam_keys: np.ndarray  # first pixel (row * width + col) of each piece
    edges: tuple[np.ndarray | None, ...]  # per side: 1-based seam piece index of each edge pixel


def _to_polygons(items: Iterator[tuple[dict[str, Any], float]]) -> tuple[np.ndarray, np.ndarray]:
    """GeoJSON-like shapes -> shapely polygons, built in bulk (3x faster than ``shape()``)."""
    coords: list[Any] = []
    ring_sizes: list[int] = []
    poly_rings: list[int] = []
    values: list[float] = []
    for geom, value in items:
        rings = geom["coordinates"]
        poly_rings.append(len(rings))
        values.append(value)
        for ring in rings:
            coords.extend(ring)
            ring_sizes.append(len(ring))
    if not values:
        return np.empty(0, dtype=object), np.empty(0, dtype=np.int64)
    xy = np.asarray(coords, dtype=np.float64)
    rings_arr = shapely.linearrings(xy, indices=np.repeat(np.arange(len(ring_sizes)), ring_sizes))
    polys = shapely.polygons(rings_arr, indices=np.repeat(np.arange(len(poly_rings)), poly_rings))
    return np.asarray(polys, dtype=object), np.asarray(values).astype(np.int64)


def _polygonize_array(
    values: np.ndarray, valid: np.ndarray, connectivity: int, row_off: int = 0, col_off: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Polygons of equal-valued connected pixels, in pixel coordinates shifted by the offsets."""
    items = rasterio.features.shapes(
        values, mask=valid, connectivity=connectivity, transform=Affine.translation(col_off, row_off)
    )
    geoms, vals = _to_polygons(items)
    if len(geoms) and connectivity == 8:
        # GDAL's 8-connected regions touch themselves at pixel corners (invalid "bowties");
        # "structure" keeps every pixel and makes them valid (multi)polygons. Its
        # 4-connected polygons are valid already (holes touch shells at points at most).
        bad = ~shapely.is_valid(geoms)
        if bad.any():
            geoms[bad] = shapely.make_valid(geoms[bad], method="structure", keep_collapsed=False)
    return geoms, vals


def _simplify_coverage(geoms: np.ndarray, tolerance_px: float) -> np.ndarray:
    """Simplify a block's polygons as one coverage, keeping the block outline."""
    if not len(geoms) or tolerance_px <= 0:
        return geoms
    # GDAL merges collinear vertices, so a T-junction is a vertex on one side only; a
    # coverage needs the same vertices on both sides of a shared edge. A vertex at every
    # pixel corner gives that (segmentize then rounds a hair off the grid: snap back).
    dense = shapely.transform(shapely.segmentize(geoms, 1.0), np.rint)
    simple = shapely.coverage_simplify(dense, tolerance_px, simplify_boundary=False)
    # Drop the now-collinear vertices left along untouched straight edges.
    return np.asarray(shapely.simplify(simple, 0.0), dtype=object)


def _first_pixel_keys(geoms_px: np.ndarray, width: int) -> np.ndarray:
    """Raster-order index of each polygon's first pixel (its top-most, then left-most vertex)."""
    if not len(geoms_px):
        return np.empty(0, dtype=np.int64)
    xy, owner = shapely.get_coordinates(geoms_px, return_index=True)
    order = np.lexsort((xy[:, 0], xy[:, 1], owner))
    first = order[np.r_[0, np.flatnonzero(np.diff(owner[order])) + 1]]
    return (xy[first, 1].astype(np.int64) * width + xy[first, 0].astype(np.int64)).astype(np.int64)


def _edge_pieces(
    seam: np.ndarray, window: Window, internal: tuple[bool, bool, bool, bool]
) -> tuple[np.ndarray | None, ...]:
    """For each internal side, the (1-based) seam piece owning each edge pixel, 0 for nodata.

    Each piece is clipped to the one-pixel strip along the side: with pixel-aligned
    polygons every part of the clip is a run of whole pixels, so this reads GDAL's own
    assignment of pixels to polygons (connectivity inside the block is the polygoniser's),
    and costs far less than rasterising pieces that may hold thousands of holes.
    """
    r0, c0, r1, c1 = window.row_off, window.col_off, window.row_end, window.col_end
    bounds = shapely.bounds(seam).T if len(seam) else np.zeros((4, 0))
    minx, miny, maxx, maxy = bounds
    strips = {  # strip rectangle (xmin, ymin, xmax, ymax), pieces reaching it, runs along x?
        TOP: ((c0, r0, c1, r0 + 1), miny == r0, True),
        BOTTOM: ((c0, r1 - 1, c1, r1), maxy == r1, True),
        LEFT: ((c0, r0, c0 + 1, r1), minx == c0, False),
        RIGHT: ((c1 - 1, r0, c1, r1), maxx == c1, False),
    }
    out: list[np.ndarray | None] = []
    for side in (TOP, BOTTOM, LEFT, RIGHT):
        if not internal[side]:
            out.append(None)
            continue
        rect, reaching, along_x = strips[side]
        edge = np.zeros(window.width if along_x else window.height, np.int32)
        idx = np.flatnonzero(reaching)
        if len(idx):
            parts, owner = shapely.get_parts(shapely.clip_by_rect(seam[idx], *rect), return_index=True)
            runs = shapely.area(parts) > 0  # drop lines and points where a piece only touches
            b = shapely.bounds(parts[runs])
            start, stop = (b[:, 0] - c0, b[:, 2] - c0) if along_x else (b[:, 1] - r0, b[:, 3] - r0)
            start, length = start.astype(np.int64), (stop - start).astype(np.int64)
            offsets = np.arange(length.sum()) - np.repeat(np.cumsum(length) - length, length)
            edge[np.repeat(start, length) + offsets] = np.repeat(idx[owner[runs]] + 1, length)
        out.append(edge)
    return tuple(out)


def _polygonize_block(task: _BlockTask) -> _BlockPolygons:
    """Dask task: read, (sieve,) polygonise and split one block into interior and seam polygons."""
    w = task.window
    values, valid = _read_block(task.source, w)
    valid_pixels = int(valid.sum())
    sieved = 0
    if task.sieve is not None and valid_pixels:
        values, valid, sieved = _apply_sieve(task, values, valid)
    geoms, vals = _polygonize_array(values, valid, task.connectivity, w.row_off, w.col_off)
    minx, miny, maxx, maxy = shapely.bounds(geoms).T if len(geoms) else (np.zeros(0),) * 4
    top, bottom, left, right = task.internal
    is_seam = (
        (top & (miny == w.row_off))
        | (bottom & (maxy == w.row_end))
        | (left & (minx == w.col_off))
        | (right & (maxx == w.col_end))
    )
    seam_raw = geoms[is_seam]
    edges = _edge_pieces(seam_raw, w, task.internal)
    keys = _first_pixel_keys(seam_raw, task.source.grid.width)
    simplified = task.simplify_px is not None and task.simplify_px > 0
    if simplified:
        geoms = _simplify_coverage(geoms, float(task.simplify_px or 0))
    interior = _finish(geoms[~is_seam], vals[~is_seam], task.area, task.connectivity, not simplified)
    return _BlockPolygons(
        task.index, valid_pixels, sieved, np.unique(vals), interior,
        geoms[is_seam], vals[is_seam], keys, edges,
    )  # fmt: skip


def _finish(
    geoms_px: np.ndarray, values: np.ndarray, area: AreaModel, connectivity: int, grid_edges: bool
) -> PolygonBatch:
    """Measure, georeference and encode pixel-space polygons."""
    if not len(geoms_px):
        return _empty_batch()
    # Exteriors counter-clockwise, holes clockwise, in the CRS (pixel rows run downwards,
    # which flips orientation): the OGC/RFC 7946 convention other tools expect.
    crs_geoms = shapely.orient_polygons(area.to_crs(geoms_px), exterior_cw=False)
    area_m2, perimeter_m = area.measure(geoms_px, crs_geoms, grid_edges=grid_edges)
    if connectivity == 8:  # one layer type: regions joined at a corner are MultiPolygons
        single = shapely.get_type_id(crs_geoms) == shapely.GeometryType.POLYGON
        crs_geoms[single] = shapely.multipolygons(crs_geoms[single][:, None])
    return PolygonBatch(
        np.asarray(shapely.to_wkb(crs_geoms), dtype=object), values.astype(np.int64), area_m2, perimeter_m
    )


# ======================================================================================
# The polygon stream


def polygonize_batches(
    source: str | os.PathLike[str] | RasterSource,
    *,
    connectivity: int = 4,
    block_size: int = DEFAULT_BLOCK,
    min_area_ha: float | None = None,
    simplify_m: float | None = None,
    client: Any = None,
    progress: Progress | None = None,
    stats: PolygonizeStats | None = None,
) -> Iterator[PolygonBatch]:
    """Polygons of a class (or any integer) raster, merged across block seams.

    Yields batches in a deterministic order (see the module docstring). ``client`` is a
    ``distributed.Client`` to run blocks on, or None to run them in this process. Raises
    ``BadRasterError`` for a raster without valid pixels once it has been read.
    """
    _check_params(connectivity, block_size, min_area_ha, simplify_m)
    src = open_class_map(source)
    stats = stats if stats is not None else PolygonizeStats()
    grid = src.grid
    layout = _Layout(grid.shape, block_size)
    area = area_model(grid)
    simplify_px = simplify_m / area.pixel_size_m if simplify_m else None
    windows = layout.windows()
    stats.blocks, stats.pixels = len(windows), grid.height * grid.width
    tasks = [
        _BlockTask(src, i, w, layout.internal(i), connectivity, area, simplify_px)
        for i, w in enumerate(windows)
    ]
    passes = 2 if min_area_ha else 1
    total = passes * len(tasks)
    if min_area_ha:
        threshold = area.threshold(min_area_ha * 1e4)
        empty = _Sieve(threshold, np.empty(0, np.int32), np.empty(0, np.int64), np.empty(0, bool))
        first = [replace(t, sieve=empty) for t in tasks]
        collected = []
        for i, st in enumerate(_run_ordered(client, _sieve_stats_block, first, "sieve")):
            collected.append(st)
            report(progress, i + 1, total, "minimum mapping unit")
        if sum(s.valid_pixels for s in collected) == 0:
            raise _no_valid(src)
        plan = _plan_sieve(collected, layout, connectivity, threshold)
        del collected
        tasks = [
            replace(t, sieve=_Sieve(threshold, *plan[t.index]) if t.index in plan else empty) for t in tasks
        ]
    merger = _SeamMerger(layout, connectivity)
    offset = total - len(tasks)
    for i, res in enumerate(_run_ordered(client, _polygonize_block, tasks, "polygonize")):
        stats.valid_pixels += res.valid_pixels
        stats.sieved_pixels += res.sieved_pixels
        stats.values.update(int(v) for v in res.values)
        if len(res.interior):
            stats.polygons += len(res.interior)
            yield res.interior
        groups = merger.add(res)
        if groups:
            geoms = np.empty(len(groups), dtype=object)
            geoms[:] = [g[0] for g in groups]
            values = np.array([g[1] for g in groups], np.int64)
            batch = _finish(geoms, values, area, connectivity, grid_edges=simplify_px is None)
            stats.polygons += len(batch)
            stats.seam_polygons += len(batch)
            yield batch
        report(progress, offset + i + 1, total, f"{stats.polygons:,} polygons")
    if not merger.is_empty():  # pragma: no cover - a bug, not a user error
        raise RuntimeError("seam pieces left unmerged")
    if stats.valid_pixels == 0:
        raise _no_valid(src)


def _no_valid(src: RasterSource) -> BadRasterError:
    return BadRasterError(
        f"has no valid pixels (all are nodata {src.nodata:g}); check the nodata value or the file"
        if src.nodata is not None
        else "has no valid pixels (all are masked)",
        src.paths[0],
    )


def polygonize(
    source: str | os.PathLike[str] | RasterSource, **kwargs: Any
) -> Iterator[tuple[shapely.Geometry, int]]:
    """(geometry, value) for every polygon; keyword arguments as ``polygonize_batches``."""
    for batch in polygonize_batches(source, **kwargs):
        yield from zip(batch.geometry, batch.value.tolist(), strict=True)


def polygonize_frame(
    source: str | os.PathLike[str] | RasterSource,
    *,
    classes: str | os.PathLike[str] | Sequence[ClassInfo] | None = None,
    **kwargs: Any,
) -> Any:
    """A GeoDataFrame (class_id, class_name, area_ha, perimeter_m, geometry) for rasters
    that fit in memory; keyword arguments as ``polygonize_batches`` (default: no Dask)."""
    import geopandas as gpd

    src = open_class_map(source)
    names, strict, table = _class_names(src.paths[0], classes)
    stats = kwargs.pop("stats", None) or PolygonizeStats()
    batch = PolygonBatch.concat(list(polygonize_batches(src, stats=stats, **kwargs)))
    _check_classes(stats.values, names, strict, table, src.paths[0])
    return gpd.GeoDataFrame(
        {
            "class_id": batch.value.astype(np.int32),
            "class_name": [names.get(v) for v in batch.value.tolist()],
            "area_ha": batch.area_m2 / 1e4,
            "perimeter_m": batch.perimeter_m,
        },
        geometry=batch.geometry,
        crs=src.grid.crs.to_wkt() if src.grid.crs else None,
    )


def _class_names(
    raster: str, classes: str | os.PathLike[str] | Sequence[ClassInfo] | None
) -> tuple[dict[int, str], bool, str | None]:
    """id -> name, whether every value must be named, and the table's path."""
    if classes is None:
        return {c.id: c.name for c in read_classes(raster)}, False, None
    if isinstance(classes, (str, os.PathLike)):
        return {c.id: c.name for c in load_class_table(classes)}, True, str(classes)
    return {c.id: c.name for c in classes}, True, None


def _check_classes(
    values: set[int], names: dict[int, str], strict: bool, table: str | None, raster: str
) -> None:
    missing = sorted(values - set(names))
    if strict and missing:
        listed = ", ".join(map(str, sorted(names)))
        raise ConfigError(
            f"does not match {raster}: the raster holds class {missing[0]}"
            f"{' (and ' + str(len(missing) - 1) + ' more)' if len(missing) > 1 else ''} but the table lists only {listed}; "
            "pass the table that goes with this raster",
            table,
        )


# ======================================================================================
# Writing


def output_driver(path: str | os.PathLike[str]) -> str:
    """The OGR driver for ``path``'s extension."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise OutputError(
            f"cannot write vector format {suffix or '(no extension)'!r}; use .gpkg (GeoPackage), "
            ".fgb (FlatGeobuf) or .geojson",
            path,
        )
    return FORMATS[suffix]


class _LayerWriter:
    """Appends batches to one layer of a temporary file, renamed into place by ``commit``.

    The temporary name keeps the extension (GDAL picks behaviour by it: FlatGeobuf makes a
    folder otherwise). A layer added to an existing GeoPackage is written into a copy of
    it, so the original is untouched until the rename.
    """

    FIELDS = ("class_id", "class_name", "area_ha", "perimeter_m")

    def __init__(self, out: Path, layer: str, driver: str, crs_wkt: str | None, geometry_type: str,
                 names: dict[int, str], metadata: dict[str, str]) -> None:  # fmt: skip
        self.out = out
        self.tmp = out.with_name(f".{out.stem}.partial{out.suffix}")
        self.layer, self.driver, self.crs, self.geometry_type = layer, driver, crs_wkt, geometry_type
        self.names = names
        self.metadata = metadata
        self.started = False
        self.buffer: list[PolygonBatch] = []
        self.buffered = self.buffered_bytes = 0
        self.count = 0
        self._cleanup()
        if driver == "GPKG" and out.exists():
            try:
                shutil.copyfile(out, self.tmp)
            except OSError as exc:
                raise OutputError(f"cannot be copied to add layer {layer!r} ({exc})", out) from exc

    def add(self, batch: PolygonBatch) -> None:
        self.buffer.append(batch)
        self.buffered += len(batch)
        self.buffered_bytes += sum(len(w) for w in batch.wkb)
        if self.buffered >= FLUSH_FEATURES or self.buffered_bytes >= FLUSH_BYTES:
            self.flush()

    def flush(self, force: bool = False) -> None:
        if not self.buffered and not (force and not self.started):
            return
        import pyogrio
        import pyogrio.raw

        batch = PolygonBatch.concat(self.buffer)
        self.buffer, self.buffered, self.buffered_bytes = [], 0, 0
        names = np.array([self.names.get(v) for v in batch.value.tolist()], dtype=object)
        fields = [batch.value.astype(np.int32), names, batch.area_m2 / 1e4, batch.perimeter_m]
        extra: dict[str, Any] = {}
        if self.driver == "GPKG" and not self.started:
            extra["layer_metadata"] = self.metadata
        # The file is temporary until the rename, so SQLite need not fsync every commit
        # (3x faster appends); this is a process-wide GDAL option, restored right after.
        previous = pyogrio.get_gdal_config_option("OGR_SQLITE_SYNCHRONOUS")
        pyogrio.set_gdal_config_options({"OGR_SQLITE_SYNCHRONOUS": "OFF"})
        try:
            pyogrio.raw.write(
                str(self.tmp), batch.wkb, fields, list(self.FIELDS), layer=self.layer, driver=self.driver,
                geometry_type=self.geometry_type, crs=self.crs, append=self.started, **extra,
            )  # fmt: skip
        except Exception as exc:
            raise OutputError(f"cannot be written ({first_line(exc)})", self.out) from exc
        finally:
            pyogrio.set_gdal_config_options({"OGR_SQLITE_SYNCHRONOUS": previous})
        self.started = True
        self.count += len(batch)

    def commit(self) -> None:
        self.flush(force=True)
        os.replace(self.tmp, self.out)

    def abort(self) -> None:
        self._cleanup()

    def _cleanup(self) -> None:
        for p in (self.tmp, *(self.tmp.with_name(self.tmp.name + s) for s in ("-journal", "-wal", "-shm"))):
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)


def vectorize(
    classmap: str | os.PathLike[str],
    out: str | os.PathLike[str],
    layer: str = DEFAULT_LAYER,
    min_area_ha: float | None = None,
    simplify_m: float | None = None,
    connectivity: int = 4,
    block_size: int = DEFAULT_BLOCK,
    workers: int | None = None,
    scheduler: str | None = None,
    classes: str | os.PathLike[str] | Sequence[ClassInfo] | None = None,
    progress: Progress | None = None,
) -> VectorizeResult:
    """Write the polygons of a class map to a vector layer (GeoPackage, FlatGeobuf, GeoJSON).

    Fields: ``class_id``, ``class_name`` (from ``classes`` or the raster's metadata; NULL
    where unnamed), ``area_ha`` and ``perimeter_m``; the raster's CRS; a spatial index
    (GeoPackage, FlatGeobuf). Runs on a LocalCluster of ``workers`` processes (default:
    one per CPU, or none when the raster is a single block; 0: in this process) or on the
    Dask ``scheduler`` at that address.
    Nothing is left at ``out`` if anything fails.
    """
    start = time.perf_counter()
    out_path = Path(out)
    _check_params(connectivity, block_size, min_area_ha, simplify_m)
    driver = output_driver(out_path)
    if not layer:
        raise ConfigError("layer name must not be empty")
    src = open_class_map(classmap)
    check_writable(out_path, [str(classmap)])
    names, strict, table = _class_names(str(classmap), classes)
    from geoseg import __version__

    metadata = {
        "source": str(classmap),
        "connectivity": str(connectivity),
        "block_size": str(block_size),
        "geoseg_version": __version__,
    }
    if min_area_ha:
        metadata["min_area_ha"] = str(min_area_ha)
    if simplify_m:
        metadata["simplify_m"] = str(simplify_m)
    stats = PolygonizeStats()
    crs = src.grid.crs.to_wkt() if src.grid.crs else None
    geometry_type = "MultiPolygon" if connectivity == 8 else "Polygon"
    if scheduler is None and workers is None and len(_Layout(src.grid.shape, block_size)) == 1:
        workers = 0  # one block: nothing to parallelise, and starting a cluster costs seconds
    with dask_client(workers, scheduler) as client:
        writer = _LayerWriter(out_path, layer, driver, crs, geometry_type, names, metadata)
        try:
            for batch in polygonize_batches(
                src, connectivity=connectivity, block_size=block_size, min_area_ha=min_area_ha,
                simplify_m=simplify_m, client=client, progress=progress, stats=stats,
            ):  # fmt: skip
                _check_classes(stats.values, names, strict, table, str(classmap))
                writer.add(batch)
            _check_classes(stats.values, names, strict, table, str(classmap))
            writer.commit()
        except BaseException:
            writer.abort()
            raise
    return VectorizeResult(
        out_path, layer, stats.polygons, stats.seam_polygons, stats.blocks, stats.pixels,
        stats.valid_pixels, stats.sieved_pixels, time.perf_counter() - start,
    )  # fmt: skip


__all__ = [
    "DEFAULT_BLOCK",
    "DEFAULT_LAYER",
    "GeosegError",
    "PolygonBatch",
    "PolygonizeStats",
    "VectorizeResult",
    "dask_client",
    "load_class_table",
    "open_class_map",
    "output_driver",
    "polygonize",
    "polygonize_batches",
    "polygonize_frame",
    "vectorize",
]
