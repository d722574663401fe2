"""Change between two dated class maps: transition matrix, change raster, change polygons.

The two maps are put on one grid by :mod:`geoseg.align`, compared block by block through
:mod:`geoseg.blocks` and written all or nothing through :mod:`geoseg.outputs`; the first
year of forest loss over a longer series is :mod:`geoseg.track`'s.

How it works, and why:

- **Change raster.** With ``n`` classes in the class table's order (index 0..n-1, not the
  class id), a pixel that was class index ``i`` and became ``j`` holds
  ``i * n + j``; unchanged pixels keep their own code ``i * (n + 1)``. Up to 15 classes
  this is a uint8 class map (nodata 255) whose colour table shows unchanged pixels in a
  pale tint of their class and changed pixels in their new class's colour, shaded by the
  old class (:func:`geoseg.vector.transition_colour`, as every product shows it), with every
  code's name ("forest -> grassland") in its metadata; above 15 classes it is uint16
  (nodata 65535). ``GEOSEG_CHANGE_ENCODING`` in the metadata says so in words.
- **Polygons** come from :func:`geoseg.vectorize.polygonize_batches` (block-parallel,
  merged exactly across block seams): the chosen transitions are written to a temporary
  raster (everything else nodata) and polygonised; ``min_area_ha`` then leaves out change
  polygons smaller than that area. The tables and rasters still count every pixel.

The alignment, output and time-series names callers import from here (``align_maps``,
``check_outputs``, ``track_loss``, ...) are re-exported from their own modules, so
``from geoseg.change import ...`` keeps working."""

from __future__ import annotations

import json
import logging
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from geoseg.classes import CLASS_NODATA, ClassInfo
from geoseg.cluster import dask_client, run_tasks
from geoseg.errors import ConfigError, DataQuirkWarning, GridMismatchError
from geoseg.progress import Parts, Progress
from geoseg.raster import Grid, PixelWindow, RasterWriter, class_map_writer
from geoseg.temporal._align import (
    AlignedMaps,
    PathLike,
    align_maps,
    read_aligned,
    resolve_classes,
    to_index,
)
from geoseg.temporal._options import ChangeOptions
from geoseg.vector import (
    AreaModel,
    GpkgBuilder,
    LayerFiles,
    LayerStyle,
    ScratchRaster,
    StagedOutputs,
    area_model,
    block_windows,
    change_style,
    check_outputs,
    landcover_style,
    layer_set,
    min_area_filter,
    pixel_areas,
    polygon_batches,
    provenance_tags,
    transition_colour,
)

log = logging.getLogger(__name__)


MAX_UINT8_CLASSES = 15  # 15 * 15 = 225 codes fit below the uint8 nodata 255


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
            name = f"{a.name} (unchanged)" if i == j else f"{a.name} -> {b.name}"
            # the colours of the change layer's style and the report's map and chart too
            out.append(ClassInfo(enc.code(i, j), name, transition_colour(classes, i, j)))
    return out


@dataclass(frozen=True)
class _ChangeTask:
    maps: AlignedMaps
    window: PixelWindow
    area: AreaModel
    selected: tuple[bool, ...]  # per code: polygonise it
    landcover: tuple[bool, ...]  # per date: return its aligned raw values (warped maps only)


@dataclass
class _ChangeBlock:
    window: PixelWindow
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
    area = np.bincount(cv, weights=pixel_areas(task.area, window)[valid], minlength=enc.n * enc.n)
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
    files: dict[str, Path] = field(default_factory=dict)  # layer/table -> the file holding it
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


#: Writes a change report into a folder: ``(result, aligned maps, change raster, folder)``.
ChangeReport = Callable[["ChangeResult", AlignedMaps, Path, Path], object]


def detect_change(
    before: PathLike,
    after: PathLike,
    out: PathLike | None = None,
    options: ChangeOptions | None = None,
    *,
    raster: PathLike | None = None,
    report_dir: PathLike | None = None,
    report: ChangeReport | None = None,
    reference: PathLike | Grid | int | None = None,
    progress: Progress | None = None,
    tags: dict[str, str] | None = None,
    **keywords: Any,
) -> ChangeResult:
    """Compare two class maps: transition matrix, change raster, change polygons.

    ``out`` (a .gpkg) receives the ``change`` polygon layer (the chosen transitions:
    ``from_classes`` -> ``to_classes``, names or ids, default every change; polygons under
    ``min_area_ha`` left out), ``landcover_before`` / ``landcover_after`` when
    ``landcover``, the tables ``transitions``, ``transition_matrix`` and
    ``class_change``, and the layers' QGIS styles. Another suffix of ``out`` (.parquet,
    .fgb, .pmtiles, .geojson) writes ``change`` to ``out``, the land-cover layers to
    ``OUT_landcover_before.<suffix>`` / ``OUT_landcover_after.<suffix>`` and the tables to
    ``OUT_<table>.parquet`` beside it (``result.files`` says which file holds what).
    ``raster`` receives the change COG;
    ``report`` writes a report into ``report_dir`` (this package draws nothing itself).
    With no output, only the statistics are computed. ``options`` (or the same by name in
    ``keywords``) are :class:`ChangeOptions`; the work runs on Dask like vectorising
    (``workers=0``: in this process). Nothing is left behind if anything fails.
    """
    opts = ChangeOptions.build({**(options.model_dump() if options else {}), **keywords})
    if report_dir is not None and report is None:
        raise ConfigError("report_dir needs a report writer (geoseg.change writes one)")
    block_size, min_area_ha = opts.block_size, opts.min_area_ha
    inputs = [before, after]
    maps = align_maps(inputs, reference=reference, legend=opts.legend_entries(), legend_file=opts.legend)
    n = maps.n_classes
    enc = ChangeEncoding(n)
    froms = resolve_classes(opts.from_classes, maps.classes, "from class", str(before))
    tos = resolve_classes(opts.to_classes, maps.classes, "to class", str(before))
    chosen = [(i, j) for i in froms for j in tos if i != j]
    if not chosen:
        raise ConfigError(
            "the --from and --to classes leave no change to map (from and to are the same class)"
        )
    selected = [False] * (n * n)
    for i, j in chosen:
        selected[enc.code(i, j)] = True
    out_path, raster_path, report_path = check_outputs(out, raster, report_dir, inputs, maps.grid)
    windows = block_windows(maps.grid, block_size)
    area = area_model(maps.grid)
    want_polygons = out_path is not None
    lc = tuple(opts.landcover and want_polygons and m.warp for m in maps.maps[:2])

    result = ChangeResult(
        maps.classes, maps.grid, np.zeros((n, n), np.int64), np.zeros((n, n)), str(before), str(after),
        selected=chosen, min_area_ha=min_area_ha, warped=[m.path for m in maps.maps if m.warp],
    )  # fmt: skip
    outputs = StagedOutputs.beside(out_path or raster_path or report_path)
    writers: list[Any] = []
    gpkg: GpkgBuilder | LayerFiles | None = None
    try:
        with dask_client(opts.workers, opts.scheduler) as client:
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
                    # no colour table (a 16-bit TIFF palette has 65,536 entries): the codes
                    # present are named and coloured in the legend sidecars instead
                    cog = RasterWriter(
                        cog_path,
                        maps.grid,
                        1,
                        "uint16",
                        enc.nodata,
                        tags=tags,
                        legend=change_classes(maps.classes),
                    )
                writers.append(cog)
            sel_raster = (
                outputs.temp_raster("selected.tif", maps.grid, enc.dtype, enc.nodata)
                if want_polygons
                else None
            )
            lc_rasters: list[ScratchRaster | None] = [
                outputs.temp_raster(f"landcover{k}.tif", maps.grid, maps.maps[k].source.dtype, maps.maps[k].nodata)
                if lc[k] else None
                for k in range(2)
            ]  # fmt: skip
            tasks = [_ChangeTask(maps, w, area, tuple(selected), lc) for w in windows]
            from dask.base import tokenize

            token = "geoseg-change-" + tokenize(maps.paths(), str(maps.grid), block_size, selected, lc)
            partial: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(tasks)
            unknown = 0
            phases = Parts(progress, weights=[1, 1] if want_polygons else [1])
            blocks_done = phases.part(0, "blocks")
            for done, (k, res) in enumerate(
                run_tasks(client, _change_block, tasks, lambda i: f"{token}-{i}"), start=1
            ):
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
                gpkg = layer_set(out_path, maps.grid)
                sel_src = sel_raster.close()
                meta = provenance_tags(
                    {"before": str(before), "after": str(after), "min_area_ha": str(min_area_ha)}
                )
                fields = _change_fields(maps.classes, enc)
                keep = min_area_filter(min_area_ha)
                poly_progress = phases.part(1, "polygons")
                if result.area_ha.sum() - np.trace(result.area_ha) > 0 and any(
                    result.pixels[i, j] for i, j in chosen
                ):
                    batches = polygon_batches(sel_src, block_size, client, poly_progress)
                else:
                    batches = iter(())
                gpkg.add_polygons("change", batches, fields, keep, meta)
                if opts.landcover:
                    for k, layer in enumerate(("landcover_before", "landcover_after")):
                        r = lc_rasters[k]
                        src = r.close() if r is not None else maps.maps[k].source
                        gpkg.add_polygons(
                            layer, polygon_batches(src, block_size, client, None), _landcover_fields(maps.classes), None,
                            provenance_tags({"source": maps.maps[k].path}),
                        )  # fmt: skip
                gpkg.add_table("transitions", result.transitions())
                gpkg.add_table("transition_matrix", result.matrix_table())
                gpkg.add_table("class_change", result.class_table())
                gpkg.set_styles(change_styles(result).values())
                result.layers = dict(gpkg.counts)
                result.files = dict(gpkg.files)
                poly_progress(1, 1, "done")
        if report_path is not None and report is not None:
            write = report
            result.report = outputs.report(report_path, lambda d: write(result, maps, cog_path, d))
        outputs.finish(gpkg)
        if gpkg is not None:
            result.out = (
                out_path if out_path is not None and out_path.exists() else None
            )  # PMTiles: none if empty
        result.raster = raster_path
    except BaseException:
        outputs.abort(writers, gpkg)
        raise
    finally:
        outputs.cleanup()
    return result


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


def change_styles(result: ChangeResult) -> dict[str, LayerStyle]:
    """The QGIS styles of a change run's layers, by layer name (the same in every GeoPackage)."""
    classes = list(result.classes)
    pairs = [(i, j) for i, j in result.selected if result.pixels[i, j] > 0]
    styles = {"change": change_style("change", classes, pairs)}
    for name in ("landcover_before", "landcover_after"):
        styles[name] = landcover_style(name, classes)
    return styles
