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
  and their neighbours: a fraction of the polygons, but it grows with the map."""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from geoseg.classes import ClassInfo
from geoseg.cluster import dask_client
from geoseg.errors import (
    ConfigError,
    OutputError,
    first_line,
)
from geoseg.files import check_writable
from geoseg.progress import Progress
from geoseg.raster import LegendEntry, find_classes, load_legend
from geoseg.vector._classmap import (
    _check_classes,
    _class_names,
    check_class_map,
    open_class_map,
)
from geoseg.vector._formats import LayerFile, output_driver, pmtiles_zooms
from geoseg.vector._gpkg import gpkg_creation_options
from geoseg.vector._options import DEFAULT_LAYER, VectorizeOptions
from geoseg.vector._polygonize import PolygonBatch, PolygonizeStats, polygonize_batches
from geoseg.vector._seams import _Layout
from geoseg.vector._styles import LayerStyle, landcover_style, write_styles

FLUSH_FEATURES = 20_000  # per write session (~0.05 s each): big enough to amortise, small enough to overlap


FLUSH_BYTES = 64 << 20


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


class _LayerWriter:
    """Appends batches to one layer of a temporary file, renamed into place by ``commit``.

    The temporary name keeps the extension (GDAL picks behaviour by it: FlatGeobuf makes a
    folder otherwise). A layer added to an existing GeoPackage is written into a copy of
    it, so the original is untouched until the rename. The one-layer formats (GeoParquet,
    FlatGeobuf, PMTiles, GeoJSON) are :class:`~geoseg.vector._formats.LayerFile`'s.
    """

    FIELDS = ("class_id", "class_name", "area_ha", "perimeter_m")

    def __init__(self, out: Path, layer: str, driver: str, crs_wkt: str | None, geometry_type: str,
                 names: dict[int, str], metadata: dict[str, str],
                 zooms: tuple[int, int] | None = None) -> None:  # fmt: skip
        self.out = out
        self.tmp = out.with_name(f".{out.stem}.partial{out.suffix}")
        self.layer, self.driver, self.crs, self.geometry_type = layer, driver, crs_wkt, geometry_type
        self.names = names
        self.metadata = metadata
        self.started = False
        self.buffer: list[PolygonBatch] = []
        self.buffered = self.buffered_bytes = 0
        self.count = 0
        self.file = (
            None
            if driver == "GPKG"
            else LayerFile(out, layer, driver, crs_wkt, geometry_type, metadata, zooms)
        )
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
        if self.file is not None:
            self.file.write(batch.wkb, dict(zip(self.FIELDS, fields, strict=True)))
            self.started = True
            self.count += len(batch)
            return
        extra: dict[str, Any] = {}
        if self.driver == "GPKG" and not self.started:
            extra["layer_metadata"] = self.metadata
            extra.update(gpkg_creation_options(self.tmp))  # GPKG_VERSION, as every writer's
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

    def commit(self, style: LayerStyle | None = None) -> None:
        self.flush(force=True)
        if self.file is not None:
            self.file.commit(style.qml() if style is not None else None)
            return
        if style is not None and self.driver == "GPKG":  # QGIS reads a GeoPackage's default styles
            con = sqlite3.connect(self.tmp)
            try:
                with con:
                    write_styles(con, [style])
            finally:
                con.close()
        os.replace(self.tmp, self.out)

    def abort(self) -> None:
        if self.file is not None:
            self.file.abort()
        self._cleanup()

    def _cleanup(self) -> None:
        if self.file is not None:
            return  # the LayerFile's own temporaries
        for p in (self.tmp, *(self.tmp.with_name(self.tmp.name + s) for s in ("-journal", "-wal", "-shm"))):
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)


def vectorize(
    classmap: str | os.PathLike[str],
    out: str | os.PathLike[str],
    options: VectorizeOptions | None = None,
    *,
    class_table: Sequence[ClassInfo] | None = None,
    progress: Progress | None = None,
    **keywords: Any,
) -> VectorizeResult:
    """Write the polygons of a class map to a vector layer; ``out``'s suffix picks the format.

    ``.gpkg`` (GeoPackage: a layer added to the file, or replaced), ``.parquet``
    (GeoParquet 1.1 with a bbox covering column), ``.fgb`` (FlatGeobuf), ``.pmtiles``
    (vector tiles, zoom levels from the raster's pixel size) or ``.geojson``. Fields:
    ``class_id``, ``class_name`` (the raster's own names: geoseg metadata, a raster
    attribute table, category names, a .qml/.clr beside it; over them the options'
    ``legend`` file and ``classes``, or ``class_table``; NULL where unnamed), ``area_ha``
    and ``perimeter_m``; the raster's CRS (PMTiles: Web Mercator); a spatial index
    (GeoPackage, FlatGeobuf); the layer's QGIS default style, coloured by class (in a
    GeoPackage; beside GeoParquet, FlatGeobuf and GeoJSON as ``OUT.qml``). A raster that
    does not look like a class map (more than 255 values in a sample) is refused unless
    the options' ``force``. ``options`` (or the
    same by name in ``keywords``) are :class:`VectorizeOptions`; it runs on a LocalCluster
    of ``workers`` processes (default: one per CPU, or none when the raster is a single
    block; 0: in this process) or on the Dask ``scheduler`` at that address. Nothing is
    left at ``out`` if anything fails.
    """
    start = time.perf_counter()
    opts = VectorizeOptions.build({**(options.model_dump() if options else {}), **keywords})
    layer = DEFAULT_LAYER if opts.layer is None else opts.layer
    connectivity, block_size, workers = opts.connectivity, opts.block_size, opts.workers
    min_area_ha, simplify_m, scheduler = opts.min_area_ha, opts.simplify_m, opts.scheduler
    out_path = Path(out)
    driver = output_driver(out_path)
    if not layer:
        raise ConfigError("layer name must not be empty")
    src = open_class_map(classmap)
    check_writable(out_path, [str(classmap)])
    zooms = pmtiles_zooms(src.grid, out_path) if driver == "PMTiles" else None
    check_class_map(src, opts.force)
    given = _given_classes(opts, class_table)
    names, strict, table = _class_names(str(classmap), given)
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
        writer = _LayerWriter(out_path, layer, driver, crs, geometry_type, names, metadata, zooms)
        try:
            for batch in polygonize_batches(
                src, connectivity=connectivity, block_size=block_size, min_area_ha=min_area_ha,
                simplify_m=simplify_m, client=client, progress=progress, stats=stats,
            ):  # fmt: skip
                _check_classes(stats.values, names, strict, table, str(classmap))
                writer.add(batch)
            _check_classes(stats.values, names, strict, table, str(classmap))
            writer.commit(vectorize_style(layer, classmap, given))
        except BaseException:
            writer.abort()
            raise
    return VectorizeResult(
        out_path, layer, stats.polygons, stats.seam_polygons, stats.blocks, stats.pixels,
        stats.valid_pixels, stats.sieved_pixels, time.perf_counter() - start,
    )  # fmt: skip


def _given_classes(
    opts: VectorizeOptions, class_table: Sequence[ClassInfo] | None
) -> str | Sequence[ClassInfo] | Sequence[LegendEntry] | None:
    """What the caller says the classes are: a legend file (plus ``classes`` over it),
    ``classes`` alone, or a ``class_table`` from Python."""
    if opts.legend is not None and opts.classes is None:
        return opts.legend
    entries = opts.legend_entries()
    if entries is not None:
        return entries
    return class_table


def vectorize_style(
    layer: str,
    classmap: str | os.PathLike[str],
    classes: str | os.PathLike[str] | Sequence[ClassInfo] | Sequence[LegendEntry] | None,
) -> LayerStyle | None:
    """The QGIS style of a land-cover layer: its classes' colours (None when none are named).

    The classes are the raster's own (:func:`geoseg.raster.find_classes`), with
    ``classes`` (a legend file, or classes given one by one) over them.
    """
    table = find_classes(classmap)
    if isinstance(classes, (str, os.PathLike)):
        table = table.with_legend(load_legend(classes))
    elif classes is not None:
        table = table.with_legend(
            [c if isinstance(c, LegendEntry) else LegendEntry(c.id, c.name, c.colour) for c in classes]
        )
    return landcover_style(layer, list(table.classes)) if table.named else None
