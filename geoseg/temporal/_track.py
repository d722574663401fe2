"""Time series of dated class maps: the first year of forest loss, and regrowth.

Two-date change counts every pixel that differs, so a cloud, a misclassified date or a
seasonal field flickers into "loss" and back. Over a series, a loss counts only once the
non-forest state persists for ``persist`` valid dates after a forest date (nodata dates
are skipped, as a cloud would be), and a pixel's loss is dated once, at its first
confirmed loss; see :func:`first_loss` for the rule. The maps are put on one grid by
:mod:`geoseg.align` and read block by block through :mod:`geoseg.blocks`, like
:mod:`geoseg.change`; the outputs are a uint16 loss-year COG, per-period loss and
regrowth polygons and tables, written all or nothing through :mod:`geoseg.outputs`."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from geoseg.cluster import dask_client, run_tasks
from geoseg.errors import BadRasterError, ConfigError
from geoseg.progress import Parts, Progress
from geoseg.raster import Grid, PixelWindow, RasterWriter
from geoseg.temporal._align import AlignedMaps, PathLike, align_maps, resolve_classes
from geoseg.temporal._dates import check_dates
from geoseg.temporal._options import TrackOptions
from geoseg.vector import (
    AreaModel,
    GpkgBuilder,
    LayerFiles,
    LayerStyle,
    StagedOutputs,
    area_model,
    block_windows,
    check_outputs,
    layer_set,
    loss_year_legend,
    loss_year_style,
    min_area_filter,
    pixel_areas,
    polygon_batches,
    provenance_tags,
    single_style,
)

LOSS_NODATA = 65535  # uint16 loss-year raster: 0 = no loss, a year = first loss, this = not assessable


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
    window: PixelWindow
    area: AreaModel
    forest: tuple[int, ...]  # class indices that are forest
    persist: int
    years: tuple[int, ...]


@dataclass
class _TrackBlock:
    window: PixelWindow
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
    w = pixel_areas(task.area, window)
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
    files: dict[str, Path] = field(default_factory=dict)  # layer/table -> the file holding it
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


#: Writes a track report into a folder: ``(result, aligned maps, loss-year raster, folder)``.
TrackReport = Callable[["TrackResult", AlignedMaps, Path, Path], object]


def track_loss(
    maps: Sequence[PathLike],
    out: PathLike | None = None,
    options: TrackOptions | None = None,
    *,
    loss_year: PathLike | None = None,
    report_dir: PathLike | None = None,
    report: TrackReport | None = None,
    reference: PathLike | Grid | int | None = None,
    progress: Progress | None = None,
    tags: dict[str, str] | None = None,
    **keywords: Any,
) -> TrackResult:
    """First year of forest loss over dated class maps (oldest first).

    Writes ``loss_year`` (uint16 COG: the year of the date of first confirmed loss, 0 = no
    loss, 65535 = fewer than two valid dates), and into ``out`` (a .gpkg) the layers
    ``forest_loss`` (polygons per period: ``year``, ``date``, ``period``, ``area_ha``) and
    ``regrowth`` (the same for non-forest becoming forest), the tables ``loss_by_period``
    and ``forest_by_date``, and the layers' QGIS styles. Another suffix of ``out``
    (.parquet, .fgb, .pmtiles, .geojson) writes ``forest_loss`` to ``out``, ``regrowth`` to
    ``OUT_regrowth.<suffix>`` and the tables to ``OUT_<table>.parquet`` beside it
    (``result.files`` says which file holds what). See :func:`first_loss` for the rule. ``options`` (or the same by name in ``keywords``) are :class:`TrackOptions`:
    ``dates`` (one per map) and ``forest`` are needed. ``report`` writes a report into
    ``report_dir`` (this package draws nothing itself).
    """
    opts = TrackOptions.build({**(options.model_dump() if options else {}), **keywords})
    if report_dir is not None and report is None:
        raise ConfigError("report_dir needs a report writer (geoseg.track writes one)")
    if opts.dates is None:
        raise ConfigError("no dates: give one per map (e.g. dates=['1985', '1990'])")
    dates, persist, min_area_ha, block_size = (
        list(opts.dates),
        opts.persist,
        opts.min_area_ha,
        opts.block_size,
    )
    if len(maps) < 2:
        raise ConfigError(
            f"track needs a time series of at least two dated maps, got {len(maps)}; give every date's map"
        )
    parsed = check_dates(list(dates), len(maps))
    k = check_persist(persist, len(maps))
    aligned = align_maps(
        maps, reference=reference, dates=list(dates), legend=opts.legend_entries(), legend_file=opts.legend
    )
    wanted = list(opts.forest)
    forest_idx = resolve_classes(wanted, aligned.classes, "forest class", str(maps[0]))
    if not wanted:
        raise ConfigError("no forest class given; name it with --forest")
    out_path, loss_path, report_path = check_outputs(out, loss_year, report_dir, maps, aligned.grid)
    years = [d.year for d in parsed]
    if max(years) >= LOSS_NODATA:
        raise ConfigError("dates beyond year 65534 cannot be written to a uint16 loss-year raster")
    windows = block_windows(aligned.grid, block_size)
    area = area_model(aligned.grid)
    t_count = len(maps)
    result = TrackResult(
        list(dates), years, [aligned.classes[i].name for i in forest_idx], k, aligned.grid,
        np.zeros(t_count), np.zeros(t_count), np.zeros(t_count), np.zeros(t_count), 0.0, 0.0,
        paths=[str(p) for p in maps], warped=[m.path for m in aligned.maps if m.warp],
    )  # fmt: skip
    outputs = StagedOutputs.beside(out_path or loss_path or report_path)
    writers: list[Any] = []
    gpkg: GpkgBuilder | LayerFiles | None = None
    try:
        with dask_client(opts.workers, opts.scheduler) as client:
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
                    # named and coloured in the legend sidecars, the years present only: a
                    # 16-bit TIFF palette has 65,536 entries (91 % of the Pucallpa file)
                    legend=loss_year_legend(years[1:]),
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
            phases = Parts(progress, weights=[2, 1, 1] if want_polygons else [1])
            blocks_done = phases.part(0, "blocks")
            for done, (i, res) in enumerate(
                run_tasks(client, _track_block, tasks, lambda i: f"{token}-{i}"), start=1
            ):
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
                gpkg = layer_set(out_path, aligned.grid)
                keep = min_area_filter(min_area_ha)
                meta = provenance_tags(
                    {"inputs": json.dumps([str(p) for p in maps]), "dates": json.dumps(list(dates)),
                     "forest": json.dumps(result.forest), "persist": str(k), "min_area_ha": str(min_area_ha)}
                )  # fmt: skip
                fields = _period_fields(list(dates), years)
                for layer, raster_, total_ha, ph in (
                    ("forest_loss", loss_idx, result.loss_ha.sum(), 1),
                    ("regrowth", gain_idx, result.regrowth_ha.sum(), 2),
                ):
                    src = raster_.close()
                    cb = phases.part(ph, layer.replace("_", " ") + " polygons")
                    batches = polygon_batches(src, block_size, client, cb) if total_ha > 0 else iter(())
                    gpkg.add_polygons(layer, batches, fields, keep, meta)
                gpkg.add_table("loss_by_period", result.period_table())
                gpkg.add_table("forest_by_date", result.date_table())
                gpkg.set_styles(track_styles(result).values())
                result.layers = dict(gpkg.counts)
                result.files = dict(gpkg.files)
                phases.part(2, "done")(1, 1)
        if report_path is not None and report is not None:
            write = report
            result.report = outputs.report(report_path, lambda d: write(result, aligned, ly_path, d))
        outputs.finish(gpkg)
        if gpkg is not None:
            result.out = (
                out_path if out_path is not None and out_path.exists() else None
            )  # PMTiles: none if empty
        result.loss_year = loss_path
    except BaseException:
        outputs.abort(writers, gpkg)
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


def track_styles(result: TrackResult) -> dict[str, LayerStyle]:
    """The QGIS styles of a track run's layers, by layer name (the same in every GeoPackage)."""
    years = result.years[1:]
    return {
        "forest_loss": loss_year_style("forest_loss", years),
        "regrowth": single_style("regrowth", "year", years, (65, 171, 93), "regrowth by"),
    }
