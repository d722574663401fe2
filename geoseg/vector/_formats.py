"""Polygon layers in the formats people use at scale, chosen by the output's suffix.

``.gpkg`` layers are written by :mod:`geoseg.vector._vectorize` and
:class:`geoseg.vector.GpkgBuilder` (appending to one SQLite file is cheap). Every other
format holds one layer per file, written here by :class:`LayerFile` as polygon batches
stream in:

- **GeoParquet 1.1** (``.parquet``), written by pyarrow: WKB geometry, a ``bbox`` struct
  column registered as the geometry's *covering* (readers skip row groups by its
  statistics), the CRS as PROJJSON, zstd, and row groups of ``ROW_GROUP_ROWS`` rows (the
  GeoParquet guide's 50,000-150,000) or ``ROW_GROUP_BYTES``, whichever comes first.
  Rows come in block order (row-major blocks of the raster), which is the spatial order
  that makes those row-group bounding boxes tight. The ``geo`` metadata (with the
  layer's bbox and geometry types, known only at the end) goes into the footer, so the
  Arrow schema is not stored there too (``store_schema=False``): pyarrow would otherwise
  read back the stored schema's metadata and hide ``geo``.
- **FlatGeobuf** (``.fgb``, with its packed Hilbert R-tree), **PMTiles** (``.pmtiles``,
  Mapbox vector tiles in Web Mercator) and **GeoJSON**, written by GDAL (the pyogrio
  wheel's GDAL 3.12) in *one* write session: GDAL rewrites a FlatGeobuf or GeoJSON file
  on every append (measured: appending 20,000 polygons to a 180,000-polygon FlatGeobuf
  took 0.6 s and grows with the file), and builds PMTiles only when the dataset closes.
  So batches go to an Arrow IPC stream beside the output first (cheap appends, no
  parsing), and :func:`pyogrio.raw.write_arrow` copies that stream into the format at
  the end, reading it memory-mapped batch by batch.

PMTiles zoom levels come from the raster (:func:`pmtiles_zooms`): the deepest level is
the first whose 256-px display pixel is no coarser than a raster pixel, the shallowest
the one where the whole layer spans about one tile. Tiles hold the polygons cut at tile
edges and quantised to 4096 units a tile; at the shallow levels GDAL drops features from
tiles over 500 kB, as any vector-tile pyramid does: PMTiles is for looking at, the other
formats for analysis. GDAL cannot tile an empty layer, so a PMTiles layer without polygons
(a change run that found no change) gets no file. FlatGeobuf's spatial index orders the
features along a Hilbert curve, so they come back in another order than written.

Tables (transition matrices, areas by period) go to plain Parquet (:func:`write_table`).
Every file is written under a temporary name in its own folder and renamed into place by
the caller only when all of a run's outputs are complete.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from geoseg.errors import OutputError, first_line
from geoseg.raster import Grid

FORMATS = {
    ".gpkg": "GPKG",
    ".parquet": "GeoParquet",
    ".fgb": "FlatGeobuf",
    ".pmtiles": "PMTiles",
    ".geojson": "GeoJSON",
    ".json": "GeoJSON",
}

# Formats whose polygon layers QGIS styles from a ``.qml`` file of the same base name.
QML_SIDECAR = ("GeoParquet", "FlatGeobuf", "GeoJSON")

ROW_GROUP_ROWS = 100_000
ROW_GROUP_BYTES = 128 << 20

WEB_MERCATOR_HALF = 20037508.342789244  # metres from the origin to the edge of EPSG:3857
MAX_ZOOM = 22  # GDAL's MVT writer goes no deeper


def output_driver(path: str | os.PathLike[str]) -> str:
    """The format of ``path``'s suffix (a key of ``FORMATS``' values), or one line saying which exist."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise OutputError(
            f"cannot write vector format {suffix or '(no extension)'!r}; use .gpkg (GeoPackage), "
            ".parquet (GeoParquet), .fgb (FlatGeobuf), .pmtiles (PMTiles) or .geojson",
            path,
        )
    return FORMATS[suffix]


def beside(out: Path, name: str, suffix: str | None = None) -> Path:
    """The file for layer or table ``name`` of a run whose main output is ``out``:
    ``OUT_<name><suffix>`` in the same folder (``suffix`` defaults to ``out``'s)."""
    return out.with_name(f"{out.stem}_{name}{suffix if suffix is not None else out.suffix}")


def partial(path: Path) -> Path:
    """The temporary name ``path`` is written under (same folder, same suffix: GDAL picks
    behaviour by the suffix, and the rename never crosses devices)."""
    return path.with_name(f".{path.stem}.partial{path.suffix}")


def pmtiles_zooms(grid: Grid, out: str | os.PathLike[str] = "PMTiles") -> tuple[int, int]:
    """(min, max) zoom of a PMTiles pyramid for polygons of a raster on ``grid``.

    Max: the first zoom whose display pixel (a 256-px tile) is no coarser than the
    raster's pixel, measured in Web Mercator metres at the centre of the grid (so the
    latitude's scale is included). Min: the zoom at which the grid spans about one tile.
    ``out`` names the output in errors (a raster without a CRS cannot be placed on tiles).
    """
    from pyproj import Transformer

    if grid.crs is None:
        raise OutputError(
            "cannot be tiled: the raster has no CRS, so its polygons have no place on a web map; "
            "write .gpkg, .parquet or .fgb instead",
            out,
        )

    h, w = grid.shape
    t = grid.transform
    # the centre pixel's corner and its neighbours, and the grid's corners, in EPSG:3857
    r, c = h // 2, w // 2
    cols = [c, c + 1, c, 0, w, 0, w]
    rows = [r, r, r + 1, 0, 0, h, h]
    xs = [t.c + t.a * x + t.b * y for x, y in zip(cols, rows, strict=True)]
    ys = [t.f + t.d * x + t.e * y for x, y in zip(cols, rows, strict=True)]
    to_3857 = Transformer.from_crs(grid.crs, "EPSG:3857", always_xy=True)
    xs, ys = (list(v) for v in to_3857.transform(xs, ys))
    pixel = min(math.hypot(xs[1] - xs[0], ys[1] - ys[0]), math.hypot(xs[2] - xs[0], ys[2] - ys[0]))
    span = max(max(xs[3:]) - min(xs[3:]), max(ys[3:]) - min(ys[3:]))
    world = 2 * WEB_MERCATOR_HALF
    if not (math.isfinite(pixel) and pixel > 0 and math.isfinite(span) and span > 0):
        raise OutputError("cannot be tiled: the raster's grid has no extent in Web Mercator", out)
    max_zoom = min(MAX_ZOOM, max(0, math.ceil(math.log2(world / 256 / pixel) - 1e-9)))
    min_zoom = min(max_zoom, max(0, math.floor(math.log2(world / span))))
    return min_zoom, max_zoom


def _arrow_columns(columns: Mapping[str, np.ndarray]) -> dict[str, Any]:
    import pyarrow as pa

    out: dict[str, Any] = {}
    for name, values in columns.items():
        v = np.asarray(values)
        out[name] = pa.array(v, type=pa.string()) if v.dtype == object else pa.array(v)
    return out


class LayerFile:
    """One polygon layer streamed into one file (any format of ``FORMATS`` but GeoPackage).

    ``write`` appends WKB geometries with their attribute columns (numpy arrays: ints,
    floats, objects holding str or None); ``finish`` completes the temporary file and
    returns it; ``commit`` also renames it into place; ``abort`` removes what was written.
    """

    def __init__(
        self,
        out: Path,
        layer: str,
        driver: str,
        crs_wkt: str | None,
        geometry_type: str,
        metadata: Mapping[str, str] | None = None,
        zooms: tuple[int, int] | None = None,
    ) -> None:
        if driver not in FORMATS.values() or driver == "GPKG":
            raise ValueError(f"LayerFile writes one-layer formats, not {driver}")
        if driver == "PMTiles" and zooms is None:
            raise ValueError("a PMTiles layer needs its zoom levels (pmtiles_zooms)")
        self.out, self.layer, self.driver = out, layer, driver
        self.crs, self.geometry_type = crs_wkt, geometry_type
        self.metadata = dict(metadata or {})
        self.zooms = zooms
        self.tmp = partial(out)
        self.scratch = out.with_name(f".{out.stem}.partial.arrows")  # batches for GDAL
        self.count = 0
        self._writer: Any = None  # pyarrow ParquetWriter or RecordBatchStreamWriter
        self._sink: Any = None
        self._schema: Any = None
        self._pending: list[Any] = []  # Parquet: tables not yet written as a row group
        self._pending_rows = self._pending_bytes = 0
        self._bounds = [math.inf, math.inf, -math.inf, -math.inf]
        self._types: set[str] = set()
        self.abort()

    # -- writing

    def write(self, wkb: np.ndarray, columns: Mapping[str, np.ndarray]) -> None:
        """Append polygons (``wkb``: an object array of WKB bytes) and their attributes."""
        import pyarrow as pa

        try:
            cols = _arrow_columns(columns)
            if self.driver == "GeoParquet":
                cols.update(self._geoparquet_geometry(wkb))
            else:
                cols["geometry"] = pa.array(wkb, type=pa.binary())
            table = pa.table(cols)
            if self._schema is None:
                self._open(table.schema)
            table = table.cast(self._schema)
            if self.driver == "GeoParquet":
                self._pending.append(table)
                self._pending_rows += table.num_rows
                self._pending_bytes += table.nbytes
                self._write_row_groups(final=False)
            else:
                for batch in table.to_batches():
                    self._writer.write_batch(batch)
        except OutputError:
            raise
        except Exception as exc:
            raise OutputError(f"cannot be written ({first_line(exc)})", self.out) from exc
        self.count += len(wkb)

    def _open(self, schema: Any) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self._schema = schema
        if self.driver == "GeoParquet":
            self._writer = pq.ParquetWriter(
                str(self.tmp), schema, compression="zstd", store_schema=False, write_statistics=True
            )
        else:
            self._sink = pa.OSFile(str(self.scratch), "wb")
            self._writer = pa.ipc.new_stream(self._sink, schema)

    def _geoparquet_geometry(self, wkb: np.ndarray) -> dict[str, Any]:
        import pyarrow as pa
        import shapely

        geoms = shapely.from_wkb(wkb)
        b = shapely.bounds(geoms).reshape(-1, 4)
        if len(b):
            self._bounds = [
                min(self._bounds[0], float(b[:, 0].min())), min(self._bounds[1], float(b[:, 1].min())),
                max(self._bounds[2], float(b[:, 2].max())), max(self._bounds[3], float(b[:, 3].max())),
            ]  # fmt: skip
            self._types.update(str(t) for t in np.unique(shapely.get_type_id(geoms)))
        bbox = pa.StructArray.from_arrays(
            [pa.array(b[:, k], type=pa.float64()) for k in range(4)], names=["xmin", "ymin", "xmax", "ymax"]
        )
        return {"geometry": pa.array(wkb, type=pa.binary()), "bbox": bbox}

    def _write_row_groups(self, final: bool) -> None:
        """Write full row groups from the pending tables (and the rest when ``final``)."""
        import pyarrow as pa

        while self._pending and (
            final or self._pending_rows >= ROW_GROUP_ROWS or self._pending_bytes >= ROW_GROUP_BYTES
        ):
            table = pa.concat_tables(self._pending)
            rows = ROW_GROUP_ROWS
            if self._pending_bytes >= ROW_GROUP_BYTES and table.num_rows:  # large polygons: fewer rows
                rows = max(1, min(rows, int(table.num_rows * ROW_GROUP_BYTES / max(table.nbytes, 1))))
            head, rest = table.slice(0, rows), table.slice(rows)
            if head.num_rows:
                self._writer.write_table(head, row_group_size=rows)
            self._pending = [rest] if rest.num_rows else []
            self._pending_rows, self._pending_bytes = rest.num_rows, rest.nbytes
            if final and not self._pending:
                break

    # -- finishing

    def finish(self) -> Path | None:
        """Complete the temporary file (an empty layer when nothing was written) and return
        it; None for a PMTiles layer without polygons (GDAL cannot tile an empty extent, so
        such a layer gets no file)."""
        try:
            if self._schema is None:  # no batch at all: an empty layer of the same fields
                self.write(np.empty(0, dtype=object), {})
            if self.driver == "PMTiles" and self.count == 0:
                return None
            if self.driver == "GeoParquet":
                self._write_row_groups(final=True)
                self._writer.add_key_value_metadata(
                    {"geo": json.dumps(self._geo_metadata()), "geoseg": json.dumps({"layer": self.layer, **self.metadata})}
                )  # fmt: skip
                self._writer.close()
            else:
                self._writer.close()
                self._sink.close()
                self._write_with_gdal()
        except OutputError:
            raise
        except Exception as exc:
            raise OutputError(f"cannot be written ({first_line(exc)})", self.out) from exc
        finally:
            self._writer = self._sink = None
            self.scratch.unlink(missing_ok=True)
        return self.tmp

    def _geo_metadata(self) -> dict[str, Any]:
        from pyproj import CRS

        names = {"1": "LineString", "3": "Polygon", "6": "MultiPolygon", "7": "GeometryCollection"}
        column: dict[str, Any] = {
            "encoding": "WKB",
            "geometry_types": sorted(names.get(t, "Unknown") for t in self._types),
            # null: the CRS is unknown; leaving it out would mean OGC:CRS84 (longitude/latitude)
            "crs": CRS.from_wkt(self.crs).to_json_dict() if self.crs else None,
            "covering": {"bbox": {k: ["bbox", k] for k in ("xmin", "ymin", "xmax", "ymax")}},
        }
        if self.count:
            column["bbox"] = self._bounds
        return {"version": "1.1.0", "primary_column": "geometry", "columns": {"geometry": column}}

    def _write_with_gdal(self) -> None:
        import pyarrow as pa
        import pyogrio.raw

        dataset_options: dict[str, Any] | None = None
        if self.driver == "PMTiles":
            assert self.zooms is not None
            dataset_options = {"MINZOOM": self.zooms[0], "MAXZOOM": self.zooms[1], "NAME": self.layer}
            if "source" in self.metadata:
                dataset_options["DESCRIPTION"] = f"geoseg polygons of {self.metadata['source']}"
        with pa.memory_map(str(self.scratch)) as source:
            reader = pa.ipc.open_stream(source)
            pyogrio.raw.write_arrow(
                reader, str(self.tmp), layer=self.layer, driver=self.driver, geometry_name="geometry",
                geometry_type=self.geometry_type, crs=self.crs, dataset_options=dataset_options,
            )  # fmt: skip

    def commit(self, qml: str | None = None) -> Path:
        """``finish``, write the QGIS style sidecar (``OUT.qml``) when given, rename into place."""
        tmp = self.finish()
        if tmp is None:
            raise OutputError(
                "cannot be written: the layer has no polygons, and PMTiles cannot hold an empty layer",
                self.out,
            )
        if qml is not None and self.driver in QML_SIDECAR:
            write_text_atomic(self.out.with_suffix(".qml"), qml)
        os.replace(tmp, self.out)
        return self.out

    def abort(self) -> None:
        """Remove the temporary file and scratch stream (the final path is never touched)."""
        for closeable in (self._writer, self._sink):
            if closeable is not None:
                with contextlib.suppress(Exception):  # closing a half-written file after a failure
                    closeable.close()
        self._writer = self._sink = None
        # GDAL's PMTiles writer tiles through an MBTiles file beside its output
        for p in (self.tmp, self.scratch, self.tmp.with_name(self.tmp.name + ".tmp.mbtiles")):
            if p.is_dir():  # GDAL makes a folder of a FlatGeobuf path without a suffix
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)


def write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_table(path: Path, columns: Mapping[str, Sequence[Any] | np.ndarray]) -> None:
    """A non-spatial table as a plain Parquet file (zstd) at ``path``."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        # through pandas, as the GeoPackage's tables are: the same column types in both
        table = pa.Table.from_pandas(pd.DataFrame(columns), preserve_index=False)
        pq.write_table(table, str(path), compression="zstd")
    except Exception as exc:
        raise OutputError(f"cannot be written ({first_line(exc)})", path) from exc
