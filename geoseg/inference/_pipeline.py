"""Tiled prediction on Dask: scenes -> tiles -> model -> stitched class COG.

The graph carries only the source description (paths, band indices, grid), tile windows
and the model's path: each task reads its own pixels, normalises them, runs the model
(loaded once per worker process and cached there) and returns the class codes of its
tiles' *cores*. Each tile is predicted on its read window (core plus ``overlap`` pixels of
context on every side) and cropped to its core, so every output pixel is predicted with
at least ``overlap`` pixels of context and tiles never need each other's results; see
benchmarks/bench_seams.py for why cropping was chosen over blending.

Each finished tile is written at once, window by window, into the class COG's stage file,
and to a tile store (one small ``.npz`` per tile beside the output), which makes
``resume`` exact: a rerun predicts only the missing tiles and writes the stored ones from
the store. Nothing holds the whole raster."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from geoseg import __version__
from geoseg.cluster import close_client
from geoseg.errors import (
    GeosegError,
    ModelError,
    OutputError,
    SchedulerError,
    missing_extra,
)
from geoseg.files import check_writable
from geoseg.inference._cluster import (
    _ClusterStart,
    _here,
    _on_cluster,
    connect,
    may_fork,
    resolve_on_workers,
    warm_workers,
)
from geoseg.inference._domain import check_inputs
from geoseg.inference._options import PredictOptions, PredictResult
from geoseg.inference._store import TileStore
from geoseg.inference._tasks import _model_record
from geoseg.progress import Progress, report
from geoseg.raster import (
    Grid,
    RasterWriter,
    Tile,
    batch_tiles,
    class_map_writer,
    open_region,
)

log = logging.getLogger(__name__)


def predict(
    images: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    model: str | os.PathLike[str],
    out: str | os.PathLike[str],
    options: PredictOptions | None = None,
    *,
    client: Any = None,
    progress: Progress | None = None,
    tags: dict[str, str] | None = None,
    **keywords: Any,
) -> PredictResult:
    """Predict a class COG for one scene or a mosaic of adjacent scenes (``geoseg predict``).

    Parameters
    ----------
    images
        One image (a path, a GDAL name or a catalog scene) or several adjacent ones.
    model
        A checkpoint path or a catalog model name.
    out
        The class COG to write.
    options
        The prediction's options (:class:`PredictOptions`); ``keywords`` are the same
        options by name (``tile_size=256``) and override it.
    client
        A Dask client to run on instead of the options' workers or scheduler.
    progress
        Called with ``(tiles done, tiles in all, rate)`` as tiles finish.
    tags
        Added to the COG's metadata (e.g. a workflow's provenance record).

    Returns
    -------
    PredictResult
        The output's path and grid, the tile counts and the time taken.
    """
    try:
        return _predict(images, model, out, options, client, progress, tags, keywords)
    except ModuleNotFoundError as exc:  # the models' libraries: geoseg[predict]
        missing = missing_extra(exc, "predicting")
        if missing is None:
            raise
        raise missing from exc


def _predict(
    images: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    model: str | os.PathLike[str],
    out: str | os.PathLike[str],
    options: PredictOptions | None,
    client: Any,
    progress: Progress | None,
    tags: dict[str, str] | None,
    keywords: dict[str, Any],
) -> PredictResult:
    from geoseg.files import file_sha256
    from geoseg.inference._model import read_spec, resolve_model_path

    t0 = time.perf_counter()
    opts = PredictOptions.build({**(options.model_dump() if options else {}), **keywords})
    if isinstance(images, (str, os.PathLike)):
        images = [images]
    images = [_image_path(i) for i in images]  # the inputs first: what a user most often mistypes
    model_path = resolve_model_path(model).resolve()
    spec = read_spec(model_path)
    if opts.zoom is None:
        opts = opts.replace(zoom=spec.zoom)  # the model's own
    workers, scheduler = opts.workers, opts.scheduler
    own_client = client is None
    # --workers 0: no Dask; this process reads and predicts the tiles itself (a debugger,
    # a one-core machine, a small scene without the cluster's start-up)
    in_process = own_client and not scheduler and workers == 0
    local = own_client and not scheduler and not in_process
    # Forked local workers start in ~0.1 s, from this thread (which does the GDAL work,
    # so no other thread is inside GDAL at the fork); a bad input then closes them again
    # (~0.02 s). Spawned ones take ~0.6 s: they start in a thread, beside the checks and
    # the planning. A remote scheduler is reached after the checks, before any wait for
    # the network. The workers of a client in hand now (forked, or the caller's, e.g. a
    # workflow step's) load the model while the checks and the planning run here.
    fork = local and may_fork()
    warm: list[Any] = []  # held until the run ends: a released future's task is dropped
    if fork:
        file_sha256(model_path)  # remembered (0.07 s for 45 MB): the forked workers inherit it
        client = connect(None, workers, opts.threads, fork=True)
    if client is not None:
        try:
            warm = warm_workers(client, model_path, opts)
        except BaseException:
            if own_client:
                close_client(client)
            raise
    starting = _ClusterStart(workers, opts.threads) if local and not fork else None
    try:
        return _plan_and_run(
            images, model_path, spec, opts.bands, out, opts.probabilities, opts, scheduler, workers, client,
            own_client, starting, in_process, opts.resume, progress, tags or {}, t0,
        )  # fmt: skip
    finally:
        if starting is not None:
            starting.close()
        warm.clear()


def _plan_and_run(
    images: Sequence[str | os.PathLike[str]],
    model_path: Path,
    spec: Any,
    bands: Sequence[str | int] | None,
    out: str | os.PathLike[str],
    probabilities: str | os.PathLike[str] | None,
    opts: PredictOptions,
    scheduler: str | None,
    workers: int | None,
    client: Any,
    own_client: bool,
    starting: _ClusterStart | None,
    in_process: bool,
    resume: bool,
    progress: Progress | None,
    extra_tags: dict[str, str],
    t0: float,
) -> PredictResult:
    """``predict`` after its first checks: the rest of the checks, the tiles, the run."""
    from dask.base import tokenize

    from geoseg.files import file_sha256

    closed = False  # the run's own client closed (or closing) already
    try:
        source = open_region(images, bands=bands if bands is not None else _default_bands(images, spec))
        if source.count != len(spec.bands):
            raise ModelError(
                f"{model_path.name} expects {len(spec.bands)} bands ({', '.join(spec.bands)}) but "
                f"{_label(images)} has {source.count} ({', '.join(source.band_names)}); select bands with --bands"
            )
        # the input's values and pixel size against what the model was trained on: an input
        # on another scale is refused here, before a plausible-looking wrong map is made
        domain_warnings = check_inputs(
            source, spec, model_path.name, _label(images), opts.zoom or 1.0, opts.input_scale
        )
        out_path = check_writable(out, images)
        prob_path = check_writable(probabilities, images) if probabilities else None
        if prob_path is not None and prob_path.resolve() == out_path.resolve():
            raise OutputError(
                "is both --out and --probabilities; give the probabilities another path", out_path
            )
        if client is None and starting is None and not in_process:
            client = connect(scheduler, workers, opts.threads)
        if own_client and not scheduler:
            dev, be, n = opts.resolve()
        else:
            # a remote cluster (or the caller's client): its workers, not this process,
            # decide what ``auto`` means
            dev, be, n = resolve_on_workers(client, opts, scheduler or str(client.scheduler.address))
        if be == "onnx":
            be = _ensure_onnx_export(model_path, opts.backend)  # once here, not racing in every worker
        grid = source.grid
        tiles = grid.tiles(opts.tile_size, opts.overlap)
        token = tokenize(
            source,
            str(model_path),
            file_sha256(model_path),
            opts.tile_size,
            opts.overlap,
            be,
            bool(prob_path),
            opts.tta,
            opts.zoom,
            opts.input_scale,
        )
        store = TileStore(out_path, token, resume)
        done = store.done() & {t.key for t in tiles}
        todo = [t for t in tiles if t.key not in done]

        params: dict[str, Any] = {
            "tile_size": opts.tile_size,
            "overlap": opts.overlap,
            "backend": be,
            "tta": opts.tta,
            "zoom": opts.zoom,
        }
        if opts.input_scale is not None:
            params["input_scale"] = opts.input_scale
        tags = {
            "GEOSEG_VERSION": __version__,
            "GEOSEG_MODEL": model_path.name,
            "GEOSEG_MODEL_SHA256": file_sha256(model_path),
            "GEOSEG_INPUTS": json.dumps([str(Path(p)) for p in images]),
            "GEOSEG_PARAMS": json.dumps(params),
            **({"GEOSEG_WARNINGS": json.dumps(domain_warnings)} if domain_warnings else {}),
            **extra_tags,
        }
        by_key = {t.key: t for t in tiles}
        # The COG's stage file fills window by window while tiles finish; the tile store
        # beside it is the resume record (a stage file cut off by SIGKILL is not trusted).
        writer = _Outputs(out_path, grid, spec, tags, prob_path)
        skipped = predicted = 0
        try:
            for key in sorted(done):
                classes, probs = store.get(key)
                writer.write(by_key[key], classes, probs)
            if starting is not None:
                client = starting.client()
            task_args = (
                str(model_path), dev, be, opts.threads, prob_path is not None, opts.tta, opts.zoom,
                opts.input_scale,
            )  # fmt: skip
            try:
                # one lane per worker thread: each walks down its own strip of batches
                lanes = max(1, sum(client.nthreads().values())) if client is not None else 1
                batches = batch_tiles(todo, n, lanes)
                results = (
                    _on_cluster(client, source, batches, task_args, token)
                    if client is not None
                    else _here(source, batches, task_args)
                )
                skipped, predicted = _collect(results, store, writer, by_key, len(done), len(tiles), progress)
            except GeosegError:
                raise  # e.g. an OutputError (an OSError too) when the COG cannot be written
            except OSError as exc:
                if client is None:
                    raise
                raise SchedulerError(f"lost the Dask cluster during prediction ({exc})") from exc
            # The cluster's shutdown (0.1-0.16 s, mostly waiting for the workers to exit)
            # runs beside the COG copy instead of before it: 0.45 -> 0.37 s for both at 4096^2.
            with ThreadPoolExecutor(1, thread_name_prefix="geoseg-close") as pool:
                closing = pool.submit(close_client, client) if own_client and client is not None else None
                closed = True
                writer.finish()
                if closing is not None:
                    closing.result()
        except BaseException as exc:
            writer.abort()
            # An interrupted run (Ctrl-C, a lost cluster, an output that could not be
            # written: a full disk) keeps its finished tiles for --resume; a run that
            # failed on its input (or on a missing library, or a bug) leaves nothing.
            if not isinstance(exc, (KeyboardInterrupt, SchedulerError, OutputError)):
                store.remove()
            raise
    except BaseException:
        if own_client and client is not None and not closed:
            close_client(client)  # a local cluster nobody took yet is closed by _ClusterStart
        raise
    store.remove()
    return PredictResult(
        out_path,
        grid,
        len(tiles),
        predicted,
        skipped,
        len(done),
        time.perf_counter() - t0,
        prob_path,
    )


def _collect(
    results: Iterator[list[tuple[str, np.ndarray | None, np.ndarray | None]]],
    store: TileStore,
    writer: _Outputs,
    by_key: dict[str, Tile],
    finished: int,
    total: int,
    progress: Progress | None,
) -> tuple[int, int]:
    """Store and write each tile as its batch arrives -> ``(skipped, predicted)``."""
    skipped = predicted = pixels = 0
    t_start = time.perf_counter()
    for tiles in results:
        for key, classes, probs in tiles:
            store.put(key, classes, probs)
            writer.write(by_key[key], classes, probs)
            finished += 1
            if classes is None:
                skipped += 1
            else:
                predicted += 1
                pixels += classes.size
        rate = pixels / 1e6 / max(time.perf_counter() - t_start, 1e-9)
        report(progress, finished, total, f"{rate:.2f} MP/s")
    return skipped, predicted


class _Outputs:
    """The class COG's writer and, when asked for, the probabilities COG's."""

    def __init__(
        self, out: Path, grid: Grid, spec: Any, tags: dict[str, str], prob_path: Path | None
    ) -> None:
        self.classes = class_map_writer(out, grid, spec.classes, tags)
        self.probs: RasterWriter | None = None
        if prob_path is not None:
            try:
                self.probs = RasterWriter(
                    prob_path,
                    grid,
                    count=spec.n_classes,
                    dtype="uint8",
                    nodata=255,
                    resampling="AVERAGE",
                    band_descriptions=[c.name for c in spec.classes],
                    tags={**tags, "GEOSEG_SCALE": "probability = value / 254"},
                )
            except BaseException:
                self.classes.abort()
                raise

    def write(self, tile: Tile, classes: np.ndarray | None, probs: np.ndarray | None) -> None:
        for writer, data in ((self.classes, classes), (self.probs, probs)):
            if writer is None or data is None:
                continue
            try:
                writer.write(tile.core, data)
            except OSError as exc:  # a full disk, a vanished folder: the output's fault
                raise OutputError(f"cannot be written ({exc})", writer.path) from exc

    def finish(self) -> None:
        self.classes.finish()
        if self.probs is not None:
            self.probs.finish()

    def abort(self) -> None:
        self.classes.abort()
        if self.probs is not None:
            self.probs.abort()


def _ensure_onnx_export(model_path: Path, asked: str = "onnx") -> str:
    """The backend the tasks run: ``onnx`` once the checkpoint's export is in the cache,
    ``torch`` when it cannot be exported and ``asked`` is ``auto`` (a BackendWarning says so)."""
    from geoseg.inference._onnx import onnx_or_torch

    return onnx_or_torch(_model_record(model_path), asked)


def _image_path(image: str | os.PathLike[str]) -> str | os.PathLike[str]:
    """An input as given when it is a file (or a GDAL /vsi path), else the catalog scene it names."""
    from geoseg.data import resolve

    found = resolve(image, "image")
    return image if found.kind in ("file", "gdal") else found.image()


def _default_bands(images: Sequence[Any], spec: Any) -> list[str] | None:
    """Select the model's bands by name when the image names its bands the same way."""
    from geoseg.raster import open_raster

    names = {n.lower() for n in open_raster(images[0]).band_names}
    if all(b.lower() in names for b in spec.bands):
        return list(spec.bands)
    return None


def _label(images: Sequence[Any]) -> str:
    return str(images[0]) if len(images) == 1 else f"{images[0]} (+{len(images) - 1} more)"
