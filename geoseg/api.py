"""The use cases as library functions: what the commands and the workflow steps run.

Each function takes its inputs and outputs, an options model of its package (or the same
options as keywords, checked by that model) and composes the packages below: the
computation, the QGIS styles of what it writes, and its report. ``geoseg predict``,
``vectorize``, ``change`` and ``track`` and the workflow steps of those kinds are thin
adapters over these, so a use case is assembled in one place. ``import geoseg`` gives them
as ``geoseg.predict(...)``, ``geoseg.change(...)``, ...
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from geoseg.errors import ConfigError
from geoseg.inference import PredictOptions, PredictResult, connect, predict
from geoseg.progress import Parts, Progress
from geoseg.raster import open_region
from geoseg.temporal import (
    SPECTRAL_CLASSES,
    ChangeOptions,
    ChangeResult,
    TrackOptions,
    TrackResult,
    check_dates,
    check_persist,
    classify_series,
    detect_change,
    open_imagery,
    parse_date,
    resolve_classes,
    track_loss,
)
from geoseg.vector import VectorizeOptions, VectorizeResult, check_outputs
from geoseg.vector import vectorize as _vectorize

PathLike = str | os.PathLike[str]

__all__ = ["change", "predict", "predict_many", "track", "vectorize"]


def predict_many(
    jobs: Sequence[tuple[PathLike | Sequence[PathLike], PathLike]],
    model: PathLike,
    options: PredictOptions | None = None,
    *,
    client: Any = None,
    progress: Progress | None = None,
    tags: dict[str, str] | None = None,
    **keywords: Any,
) -> list[PredictResult]:
    """Predict several maps on one cluster: ``jobs`` are ``(images, out)`` pairs.

    Maps smaller than a batch per worker (a label set's 512 x 512 tiles) would leave all
    but one worker idle if they ran one after another, so as many maps at a time as the
    cluster has worker threads share it (the Amazon validation tiles on 2 workers: 8.2 ->
    4.5 s); ``progress`` counts the tiles of all maps, its total known from the start.
    ``workers=0`` predicts them in this process, one after another.

    Returns
    -------
    list of PredictResult
        One per job, in order.
    """
    from geoseg.cluster import close_client

    opts = PredictOptions.build({**(options.model_dump() if options else {}), **keywords})
    groups = [[images] if isinstance(images, (str, os.PathLike)) else list(images) for images, _ in jobs]
    here = client is None and opts.workers == 0 and not opts.scheduler
    own = client is None and not here
    # one cluster for all of the maps; forked when safe (no other thread runs GDAL here)
    client = connect(opts.scheduler, opts.workers, opts.threads) if own else client
    try:
        # every map's tile count up front (a file open each): the count's total is right
        # from the first tile on, whichever map finishes first
        totals = [len(open_region(g).grid.tiles(opts.tile_size, opts.overlap)) for g in groups]
        bar = Parts(progress, totals)  # tiles done of all maps, summed
        run = opts.replace(workers=0 if here else None, scheduler=None)

        def one(k: int) -> PredictResult:
            return predict(groups[k], model, jobs[k][1], run, client=client, progress=bar.part(k), tags=tags)

        lanes = max(1, min(len(jobs), sum(client.nthreads().values()))) if client is not None else 1
        with ThreadPoolExecutor(lanes, thread_name_prefix="geoseg-map") as pool:
            return list(pool.map(one, range(len(jobs))))
    finally:
        if own and client is not None:
            close_client(client)  # a remote scheduler's client owns no cluster


def vectorize(
    classmap: PathLike,
    out: PathLike,
    options: VectorizeOptions | None = None,
    *,
    progress: Progress | None = None,
    **keywords: Any,
) -> VectorizeResult:
    """Polygons of a class map, merged exactly across block seams, with their QGIS style.

    See :func:`geoseg.vector.vectorize`; ``options`` are :class:`geoseg.vector.VectorizeOptions`.
    """
    return _vectorize(classmap, out, options, progress=progress, **keywords)


def change(
    before: PathLike,
    after: PathLike,
    out: PathLike | None = None,
    options: ChangeOptions | None = None,
    *,
    raster: PathLike | None = None,
    report_dir: PathLike | None = None,
    report_back: tuple[str, str] | None = None,
    reference: PathLike | None = None,
    progress: Progress | None = None,
    tags: dict[str, str] | None = None,
    **keywords: Any,
) -> ChangeResult:
    """Compare two class maps: transition matrix, change raster, styled change polygons, report.

    Parameters
    ----------
    before, after
        The class maps (``after`` is reprojected onto ``before``'s grid, or ``reference``'s).
    out
        A GeoPackage for the change polygons and the tables; or GeoParquet (``.parquet``),
        FlatGeobuf (``.fgb``), PMTiles (``.pmtiles``) or GeoJSON: one file a layer, the
        first at ``out``, the others as ``OUT_<layer>.<suffix>`` and the tables as
        ``OUT_<table>.parquet`` beside it.
    options
        :class:`geoseg.temporal.ChangeOptions` (or the same by name in ``keywords``):
        ``from_classes``, ``to_classes``, ``min_area_ha``, ``landcover``, ...
    raster
        Also write the change raster (COG).
    report_dir
        Also write maps, charts and an HTML report into this folder.
    report_back
        ``(href relative to report_dir, title)``: the report links back to that page (a
        workflow's report).

    Returns
    -------
    ChangeResult
        The transition matrix in pixels and hectares, and what was written.
    """
    from geoseg.products import change_report

    return detect_change(
        before, after, out, options, raster=raster, report_dir=report_dir,
        report=functools.partial(change_report, back=report_back),
        reference=reference, progress=progress, tags=tags, **keywords,
    )  # fmt: skip


def _dates_from_names(maps: Sequence[PathLike]) -> list[str] | None:
    """Return dates from file names like ``1985.tif`` or ``2015-06.tif``, when every name is one."""
    try:
        for m in maps:
            parse_date(Path(m).stem)
    except ConfigError:
        return None
    return [Path(m).stem for m in maps]


def _series(maps: PathLike | Sequence[PathLike]) -> tuple[list[str], list[str] | None, list[str] | None]:
    """Return ``maps`` as paths, with the dates and band names a catalog time series gives."""
    if isinstance(maps, (str, os.PathLike)):
        maps = [maps]
    paths = [str(m) for m in maps]
    if len(paths) == 1 and not Path(paths[0]).exists():
        from geoseg.data import resolve

        found = resolve(paths[0])
        if found.kind == "timeseries":
            return (
                [str(p) for p in found.paths],
                list(found.dates),
                list(found.bands) if found.bands else None,
            )
    return paths, None, None


def track(
    maps: PathLike | Sequence[PathLike],
    out: PathLike | None = None,
    options: TrackOptions | None = None,
    *,
    loss_year: PathLike | None = None,
    report_dir: PathLike | None = None,
    report_back: tuple[str, str] | None = None,
    classified: PathLike | None = None,
    reference: PathLike | None = None,
    progress: Progress | None = None,
    tags: dict[str, str] | None = None,
    **keywords: Any,
) -> TrackResult:
    """Track forest loss over dated class maps, or over imagery classified first.

    Parameters
    ----------
    maps
        Dated class maps, oldest first, or the name of a catalog time series (which gives
        the files, the dates and the band names).
    out
        A GeoPackage for the loss and regrowth polygons and the tables; or another vector
        format by its suffix, as for :func:`change` (``forest_loss`` at ``out``,
        ``OUT_regrowth.<suffix>``, ``OUT_<table>.parquet``).
    options
        :class:`geoseg.temporal.TrackOptions` (or the same by name in ``keywords``):
        ``forest`` (needed), ``dates`` (default: the series', or file names like
        ``1985.tif``), ``persist``, ``min_area_ha``; with ``classify`` the maps are imagery,
        classified forest / non-forest / water by the spectral baseline first.
    loss_year
        Also write the first-loss-year raster (uint16 COG, 0 = no loss).
    report_dir
        Also write maps, a loss chart and an HTML report into this folder (with
        false-colour composites of the first and last imagery when classifying).
    report_back
        ``(href relative to report_dir, title)``: the report links back to that page (a
        workflow's report).
    classified
        With ``classify``: keep the classified maps (class COGs) in this folder.

    Returns
    -------
    TrackResult
        Loss, regrowth and forest area by date, and what was written.
    """
    from geoseg.products import track_report

    given = TrackOptions.build({**(options.model_dump() if options else {}), **keywords})
    paths, series_dates, series_bands = _series(maps)
    if len(paths) < 2:
        raise ConfigError(
            f"track needs a time series of at least two dated maps, got {len(paths)}; give every date's map"
        )
    dates = list(given.dates or series_dates or _dates_from_names(paths) or [])
    if not dates:
        raise ConfigError("no dates: give one per map (--dates 1985,1990,1995 or dates=[...])")
    bands = list(given.bands) if given.bands else series_bands
    opts = given.replace(dates=tuple(dates), bands=tuple(bands) if bands else None)
    check_dates(dates, len(paths))
    check_persist(opts.persist, len(paths))
    if (given.bands or classified) and opts.classify is None:
        raise ConfigError(
            "bands and classified only apply when the maps are imagery to classify (--spectral)"
        )
    if opts.classify is not None and (opts.classes or opts.legend):
        raise ConfigError(
            "classes and legend name the classes of class maps; the spectral baseline's are "
            "forest, non-forest and water (--forest forest)"
        )
    check_outputs(out, loss_year, report_dir, paths)
    imagery = None
    work: Path | None = None
    try:
        if opts.classify is not None:
            # everything the classified maps will be checked for, before making them
            resolve_classes(list(opts.forest), SPECTRAL_CLASSES, "forest class", "the spectral classes")
            for p in paths:
                open_imagery(p, bands)
            folder = Path(classified) if classified is not None else None
            if folder is None:
                folder = work = Path(tempfile.mkdtemp(prefix="geoseg-classified-"))
            images = paths
            thresholds = opts.classify
            paths = [str(p) for p in classify_series(images, dates, folder, band_names=bands,
                                                     thresholds=thresholds, progress=progress)]  # fmt: skip
            if report_dir is not None:
                src = open_imagery(images[0], bands)
                order = [b.index for b in src.bands]  # SWIR1, NIR, red as the file numbers them
                names = "/".join(b.name.upper() for b in src.bands)
                imagery = [(dates[k], images[k], order, names) for k in (0, len(images) - 1)]
        return track_loss(
            paths, out, opts.replace(classify=None, bands=None), loss_year=loss_year, report_dir=report_dir,
            report=functools.partial(track_report, imagery=imagery, back=report_back), reference=reference,
            progress=progress,
            tags=tags,
        )  # fmt: skip
    finally:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
