"""The products of a change or track run, written all or nothing.

Bad input must leave no partial output behind, so a run checks every output path before
any work (one that cannot be written, or that is one of the inputs, fails at once), writes
its rasters, report and vector layers under temporary names beside their final ones (the
same disk, so the rename never crosses devices), and renames them into place together
only when everything has succeeded; on any failure the temporaries are removed.

The vector output's suffix chooses the format (:func:`layer_set`). :class:`GpkgBuilder`
streams polygon batches from :func:`geoseg.vectorize.polygonize_batches` (block-parallel,
merged exactly across block seams) and non-spatial tables into one temporary GeoPackage;
:class:`LayerFiles` writes the same layers one file each (GeoParquet, FlatGeobuf, PMTiles,
GeoJSON: the first layer at the output path, the others beside it as
``OUT_<layer>.<suffix>``) and the tables as Parquet beside it (``OUT_<table>.parquet``).
Finishing a workflow's GeoPackage (styles, provenance tables) is :mod:`geoseg.export`'s.

The underscored helpers are internal to geoseg (used by :mod:`geoseg.change` and
:mod:`geoseg.track`), not a public API."""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio

from geoseg.errors import OutputError, first_line
from geoseg.files import check_parent_writable, check_writable
from geoseg.progress import Progress
from geoseg.raster import GDAL_ENV, BandRef, Grid, PixelWindow, RasterSource, move_raster, remove_raster
from geoseg.vector._formats import (
    QML_SIDECAR,
    LayerFile,
    beside,
    output_driver,
    partial,
    pmtiles_zooms,
    write_table,
    write_text_atomic,
)
from geoseg.vector._gpkg import gpkg_creation_options
from geoseg.vector._styles import LayerStyle, write_styles

PathLike = str | os.PathLike[str]


class ScratchRaster:
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
            self._ds.write(
                np.full((1, 1, 1), nodata, dtype=dtype), window=PixelWindow(0, 0, 1, 1).to_rasterio()
            )

    def write(self, window: PixelWindow, data: np.ndarray) -> None:
        self._ds.write(data.astype(self.dtype, copy=False)[None], window=window.to_rasterio())

    def close(self) -> RasterSource:
        """Close (idempotent) and describe the file for reading back."""
        if self._ds is not None:
            self._ds.close()
            self._ds = None
        return RasterSource(
            (BandRef(str(self.path), 1, "value", self.nodata),), self.grid, self.dtype, self.nodata
        )


class GpkgBuilder:
    """Layers and tables written into a temporary GeoPackage, renamed into place at the end."""

    def __init__(self, out: Path, crs_wkt: str | None) -> None:
        self.out = out
        self.tmp = out.with_name(f".{out.stem}.partial{out.suffix}")
        self.crs = crs_wkt
        self.counts: dict[str, int] = {}
        self.styles: list[LayerStyle] = []
        self._cleanup()

    def set_styles(self, styles: Iterable[LayerStyle]) -> None:
        """QGIS default styles for the layers this file holds, written when it is committed
        (styles of layers it does not hold are left out)."""
        self.styles = list(styles)

    def _options(self) -> dict[str, Any]:
        return gpkg_creation_options(self.tmp)  # GPKG_VERSION when this write creates the file

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
                raise OutputError(f"cannot be written ({first_line(exc)})", self.out) from exc
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
            raise OutputError(f"cannot be written ({first_line(exc)})", self.out) from exc
        self.counts[name] = len(next(iter(columns.values()))) if columns else 0

    @property
    def files(self) -> dict[str, Path]:
        """Layer or table -> the file that holds it (here: all in the one GeoPackage)."""
        return {name: self.out for name in self.counts}

    def commit(self) -> Path:
        styles = [st for st in self.styles if self.counts.get(st.layer) is not None]
        if styles and self.tmp.exists():
            con = sqlite3.connect(self.tmp)
            try:
                with con:
                    write_styles(con, styles)
            finally:
                con.close()
        os.replace(self.tmp, self.out)
        return self.out

    def abort(self) -> None:
        self._cleanup()

    def _cleanup(self) -> None:
        for suffix in ("", "-journal", "-wal", "-shm"):
            self.tmp.with_name(self.tmp.name + suffix).unlink(missing_ok=True)


def _chunks(
    batches: Iterable[Any],
    fields: Callable[[Any], dict[str, np.ndarray]],
    keep: Callable[[Any], np.ndarray] | None,
    size: int = 50_000,
) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]:
    """(WKB, attribute columns) of the kept polygons, in chunks of about ``size``."""
    pending: list[tuple[np.ndarray, dict[str, np.ndarray]]] = []
    n = 0
    for batch in batches:
        mask = keep(batch) if keep is not None else np.ones(len(batch), dtype=bool)
        if not mask.any():
            continue
        pending.append((batch.wkb[mask], {k: np.asarray(v)[mask] for k, v in fields(batch).items()}))
        n += int(mask.sum())
        if n >= size:
            yield _concat(pending)
            pending, n = [], 0
    if pending:
        yield _concat(pending)


def _concat(
    parts: Sequence[tuple[np.ndarray, dict[str, np.ndarray]]],
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    names = list(parts[0][1])
    return np.concatenate([p[0] for p in parts]), {k: np.concatenate([p[1][k] for p in parts]) for k in names}


class LayerFiles:
    """The layers and tables of a run, one file each, for an output that is not a GeoPackage.

    The first polygon layer goes to ``out`` itself, every later one to
    ``OUT_<layer><suffix>`` beside it, each table to ``OUT_<table>.parquet``; the QGIS
    styles of GeoParquet, FlatGeobuf and GeoJSON layers to ``.qml`` files of the same base
    name (QGIS applies them when it opens the layer). A PMTiles layer without polygons gets
    no file (GDAL cannot tile an empty extent). Everything is written under
    temporary names and renamed into place by ``commit``; ``abort`` removes it all. The
    interface is :class:`GpkgBuilder`'s.
    """

    def __init__(self, out: Path, crs_wkt: str | None, grid: Grid) -> None:
        self.out = out
        self.crs = crs_wkt
        self.driver = output_driver(out)
        self.zooms = pmtiles_zooms(grid, out) if self.driver == "PMTiles" else None
        self.counts: dict[str, int] = {}
        self.files: dict[str, Path] = {}
        self.styles: list[LayerStyle] = []
        self._writers: list[LayerFile] = []
        self._staged: list[tuple[Path, Path]] = []  # (temporary, final)

    def set_styles(self, styles: Iterable[LayerStyle]) -> None:
        """QGIS styles for the layers written (``.qml`` sidecars where the format takes one)."""
        self.styles = list(styles)

    def add_polygons(
        self,
        layer: str,
        batches: Iterator[Any],
        fields: Callable[[Any], dict[str, np.ndarray]],
        keep: Callable[[Any], np.ndarray] | None = None,
        metadata: dict[str, str] | None = None,
    ) -> int:
        """A new layer file of polygon batches, as :meth:`GpkgBuilder.add_polygons`."""
        path = beside(self.out, layer) if self._writers else self.out
        writer = LayerFile(path, layer, self.driver, self.crs, "Polygon", metadata, self.zooms)
        self._writers.append(writer)
        for wkb, cols in _chunks(batches, fields, keep):
            writer.write(wkb, cols)
        if writer.count == 0:  # an empty layer still has its fields
            writer.write(np.empty(0, dtype=object), fields(None))
        tmp = writer.finish()
        self.counts[layer] = writer.count
        if tmp is not None:  # None: an empty PMTiles layer, which gets no file
            self._staged.append((tmp, path))
            self.files[layer] = path
        return writer.count

    def add_table(self, name: str, columns: Mapping[str, Sequence[Any] | np.ndarray]) -> None:
        """A non-spatial table as Parquet beside the output: ``OUT_<name>.parquet``."""
        path = beside(self.out, name, ".parquet")
        tmp = partial(path)
        self._staged.append((tmp, path))
        write_table(tmp, columns)
        self.counts[name] = len(next(iter(columns.values()))) if columns else 0
        self.files[name] = path

    def commit(self) -> Path:
        """Rename every file into place (styles first); returns the main output."""
        if self.driver in QML_SIDECAR:
            for st in self.styles:
                if st.layer in self.files:
                    write_text_atomic(self.files[st.layer].with_suffix(".qml"), st.qml())
        for tmp, final in self._staged:
            os.replace(tmp, final)
        self._staged.clear()
        return self.out

    def abort(self) -> None:
        for w in self._writers:
            w.abort()
        for tmp, _ in self._staged:
            tmp.unlink(missing_ok=True)
        self._staged.clear()


def layer_set(out: Path, grid: Grid) -> GpkgBuilder | LayerFiles:
    """The writer of a run's layers and tables for ``out``: a GeoPackage for ``.gpkg``,
    one file a layer for the other formats (:class:`LayerFiles`)."""
    crs = grid.crs.to_wkt() if grid.crs else None
    return GpkgBuilder(out, crs) if output_driver(out) == "GPKG" else LayerFiles(out, crs, grid)


def _check_vector_out(out: PathLike, inputs: Sequence[PathLike]) -> Path:
    p = Path(out)
    output_driver(p)  # a format geoseg writes, or one line naming those it does
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
    out: PathLike | None,
    raster: PathLike | None,
    report_dir: PathLike | None,
    inputs: Sequence[PathLike],
    grid: Grid | None = None,
) -> tuple[Path | None, Path | None, Path | None]:
    """Fail before any work when an output cannot be written (or is an input); with the
    maps' ``grid``, also when a PMTiles output cannot be tiled (a raster without a CRS)."""
    out_path = _check_vector_out(out, inputs) if out is not None else None
    if out_path is not None and grid is not None and output_driver(out_path) == "PMTiles":
        pmtiles_zooms(grid, out_path)
    raster_path = _check_raster_out(raster, inputs, [out_path] if out_path else [])
    return out_path, raster_path, _check_report_dir(report_dir)


def _check_report_dir(path: PathLike | None) -> Path | None:
    if path is None:
        return None
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise OutputError("exists and is not a folder; give a folder for the report", p)
    check_parent_writable(p)
    return p


@dataclass
class StagedOutputs:
    """Temporary files of one run; moved into place together at the end, or all removed."""

    work: Path
    moves: list[tuple[Path, Path]] = field(default_factory=list)
    temps: list[ScratchRaster] = field(default_factory=list)

    def temp_raster(self, name: str, grid: Grid, dtype: str, nodata: float) -> ScratchRaster:
        """A scratch raster in the work folder, closed and removed by ``cleanup``."""
        r = ScratchRaster(self.work / name, grid, dtype, nodata)
        self.temps.append(r)
        return r

    @classmethod
    def beside(cls, out: Path | None) -> StagedOutputs:
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

    def report(self, path: Path, write: Callable[[Path], object]) -> Path:
        """``write`` a report into a staged folder that ``commit`` moves to ``path``."""
        staged = self.staged(path)
        staged.mkdir()
        write(staged)
        return path

    def finish(self, gpkg: GpkgBuilder | LayerFiles | None) -> None:
        """The vector outputs first (their own staged files), then every other staged output."""
        if gpkg is not None:
            gpkg.commit()
        self.commit()

    @staticmethod
    def abort(writers: Sequence[Any], gpkg: GpkgBuilder | LayerFiles | None) -> None:
        """After a failure: the open raster writers and the vector outputs leave nothing behind."""
        for w in writers:
            w.abort()
        if gpkg is not None:
            gpkg.abort()

    def commit(self) -> None:
        for tmp, final in self.moves:
            if tmp.is_dir():
                final.mkdir(exist_ok=True)
                for f in sorted(tmp.iterdir()):
                    os.replace(f, final / f.name)
                tmp.rmdir()
            else:
                move_raster(tmp, final)  # with its legend sidecars
        self.moves.clear()

    def cleanup(self) -> None:
        for r in self.temps:
            r.close()
        for tmp, _ in self.moves:
            if tmp.is_dir():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                remove_raster(tmp)
        shutil.rmtree(self.work, ignore_errors=True)


def provenance_tags(extra: dict[str, str]) -> dict[str, str]:
    from geoseg import __version__

    return {"geoseg_version": __version__, **extra}


def min_area_filter(min_area_ha: float) -> Callable[[Any], np.ndarray] | None:
    if not min_area_ha:
        return None
    threshold = min_area_ha * 1e4
    return lambda batch: np.asarray(batch.area_m2) >= threshold


def polygon_batches(
    src: RasterSource, block_size: int, client: Any, progress: Progress | None
) -> Iterator[Any]:
    from geoseg.vector._polygonize import polygonize_batches

    return polygonize_batches(src, connectivity=4, block_size=block_size, client=client, progress=progress)
