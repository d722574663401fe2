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
the store. Nothing holds the whole raster.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio

from geoseg import __version__
from geoseg.cluster import close_client, fork_is_safe, local_client, remote_client
from geoseg.errors import GeosegError, MissingFileError, ModelError, OutputError, SchedulerError
from geoseg.grid import MAX_TILE, Grid, Tile, Window, batch_tiles
from geoseg.io import CLASS_NODATA, RasterSource, RasterWriter, check_writable, class_map_writer
from geoseg.model import check_zoom
from geoseg.mosaic import open_region
from geoseg.progress import Progress, report

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PredictOptions:
    tile_size: int = 512
    overlap: int = 64
    batch_size: int | None = None  # None: sized to the tile and device (inference.auto_batch_size)
    device: str = "auto"
    backend: str = "auto"
    threads: int = 1  # torch/ONNX threads per worker; one per core keeps results reproducible
    tta: bool = False  # mean over the 8 rotations/flips of each tile (inference.dihedral_mean)
    zoom: float = 1.0  # the model sees each tile resampled by this factor (inference.zoomed)

    def __post_init__(self) -> None:
        if not 16 <= self.tile_size <= MAX_TILE:
            raise GeosegError(
                f"--tile-size must be in 16..{MAX_TILE}, got {self.tile_size} (a model's working memory "
                "grows with the tile; --overlap gives it context)"
            )
        if self.overlap < 0 or self.overlap >= self.tile_size:
            raise GeosegError(f"--overlap must be in 0..{self.tile_size - 1}, got {self.overlap}")
        if self.batch_size is not None and self.batch_size < 1:
            raise GeosegError(f"--batch-size must be at least 1, got {self.batch_size}")
        check_zoom(self.zoom, "--zoom")

    def batch_for(self, device: str) -> int:
        """Tiles per batch on ``device`` (a resolved device name)."""
        from geoseg.inference import auto_batch_size

        if self.batch_size is not None:
            return self.batch_size
        # the pixels the model sees: a zoomed tile costs zoom^2 as much memory
        return auto_batch_size(device, round((self.zoom * (self.tile_size + 2 * self.overlap)) ** 2))

    def resolve(self) -> tuple[str, str, int]:
        """``(device, backend, tiles per batch)`` for the machine this runs on."""
        from geoseg.inference import resolve_backend, resolve_device

        dev = resolve_device(self.device)
        return dev, resolve_backend(self.backend, dev), self.batch_for(dev)


def resolve_on_workers(client: Any, opts: PredictOptions, address: str) -> tuple[str, str, int]:
    """``PredictOptions.resolve`` asked of every worker of a remote cluster.

    The client may be a laptop without a GPU in front of GPU workers: ``auto`` means
    what the workers have, and a batch must fit the worker with the least GPU memory.
    Workers that disagree on device or backend (a mixed cluster) need them given.
    """
    answers = client.run(opts.resolve)
    if not answers:
        raise SchedulerError(f"the Dask cluster at {address} has no workers; start `dask worker {address}`")
    kinds = {(dev, be) for dev, be, _ in answers.values()}
    if len(kinds) > 1:
        seen = ", ".join(f"{dev}/{be}" for dev, be in sorted(kinds))
        raise ModelError(
            f"the workers at {address} differ in device/backend ({seen}); choose one with --device and --backend"
        )
    dev, be = kinds.pop()
    return dev, be, min(n for _, _, n in answers.values())


@dataclass
class PredictResult:
    out: Path
    grid: Grid
    tiles: int
    tiles_predicted: int
    tiles_skipped: int
    tiles_resumed: int
    seconds: float
    probabilities: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def megapixels(self) -> float:
        return self.grid.height * self.grid.width / 1e6

    def summary(self) -> str:
        mp = self.megapixels
        return (
            f"{self.out}: {self.grid.width} x {self.grid.height} px ({mp:.1f} MP), "
            f"{self.tiles} tile{'' if self.tiles == 1 else 's'} "
            f"({self.tiles_predicted} predicted, {self.tiles_skipped} all-nodata skipped, "
            f"{self.tiles_resumed} resumed) in {self.seconds:.1f} s, {mp / max(self.seconds, 1e-9):.2f} MP/s"
        )


# --------------------------------------------------------------------------------------
# What runs inside a task (on a worker)

_PREDICTORS: dict[tuple[str, str, str, int], Any] = {}


def _model_record(model_path: str | Path) -> Any:
    """The checkpoint's spec and sha256 without its torch module (enough to find its ONNX export)."""
    from geoseg.model import LoadedModel, file_sha256, read_spec

    return LoadedModel(read_spec(model_path), None, Path(model_path), file_sha256(model_path))


def _predictor(model_path: str, device: str, backend: str, threads: int) -> Any:
    """The worker process's predictor for this model: loaded once, reused by every task."""
    key = (model_path, device, backend, threads)
    if key not in _PREDICTORS:
        from geoseg.inference import Predictor, onnx_cache_path
        from geoseg.model import load_checkpoint

        # With a cached ONNX export the worker needs no torch module: skipping torch and
        # smp imports and the model build saves ~5 s and ~300 MB per worker.
        model = _model_record(model_path)
        if backend != "onnx" or not onnx_cache_path(model).exists():
            model = load_checkpoint(model_path)
        _PREDICTORS[key] = Predictor(model, device=device, backend=backend, threads=threads)
    return _PREDICTORS[key]


def _warm(model_path: str, opts: PredictOptions) -> None:
    """Load the model into this worker: the first task's start-up, paid while the client plans."""
    from geoseg.inference import onnx_cache_path

    try:
        dev, be, _ = opts.resolve()
        if be == "onnx" and not onnx_cache_path(_model_record(model_path)).exists():
            return  # the client exports it first; building the torch model here costs seconds
        _predictor(model_path, dev, be, opts.threads)
        log.debug("worker %d: %s loaded before the first task", os.getpid(), Path(model_path).name)
    except Exception:  # the tasks meet the same error and report it properly
        log.debug("warming %s failed", model_path, exc_info=True)


def read_tiles(source: RasterSource | Any, tiles: Sequence[Tile]) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(pixels, valid)`` of each tile's read window, in order.

    Neighbouring tiles of one tile row (consecutive in a batch) have overlapping read
    windows on the same file blocks, so they are read together, one window over their
    union, and sliced: each compressed block is then decoded once per batch instead of
    once per tile. The files stay open in the worker with a block cache that holds about
    two batches' blocks, so the batch below (``batch_tiles`` sends a worker down its strip)
    finds the rows it shares with this one decoded: a tile at 512 + 2 x 64 on 512-pixel
    blocks touches 3 block rows, and 2 of them are the previous batch's. The values are
    exactly those of separate reads.
    """
    groups: list[tuple[Window, list[Tile]]] = []
    i = 0
    while i < len(tiles):
        first = tiles[i].read
        j, end = i + 1, first.col_end
        while (
            j < len(tiles)
            and tiles[j].read.row_off == first.row_off
            and tiles[j].read.height == first.height
            and first.col_off <= tiles[j].read.col_off <= end  # touching or overlapping: no gap
        ):
            end = max(end, tiles[j].read.col_end)
            j += 1
        groups.append(
            (Window(first.row_off, first.col_off, first.height, end - first.col_off), list(tiles[i:j]))
        )
        i = j
    out: list[tuple[np.ndarray, np.ndarray]] = []
    largest = max((u for u, _ in groups), key=lambda w: w.height * w.width, default=None)
    with rasterio.Env(GDAL_CACHEMAX=read_cache_bytes(source, largest) if largest else READ_CACHE_MIN):
        for union, group in groups:
            pixels, valid = source.read(union, keep_open=True)
            for tile in group:
                cols = slice(tile.read.col_off - union.col_off, tile.read.col_end - union.col_off)
                out.append((pixels[:, :, cols], valid[:, cols]))
    return out


READ_CACHE_MIN = 96 << 20  # bytes: rasterio passes GDAL_CACHEMAX to GDAL in bytes


def read_cache_bytes(source: RasterSource | Any, union: Window) -> int:
    """GDAL block cache for a worker's reads: two batches' blocks and the rows between.

    A union read touches its rows plus up to a block above and below, and as many
    columns plus a block each side; six times its own size covers that for blocks up to
    a tile's size, and what the next batch reads besides. At least 96 MiB, at most 1 GiB:
    bounded per worker whatever the scene's size.
    """
    size = union.height * union.width * source.count * np.dtype(source.dtype).itemsize
    return int(min(max(6 * size, READ_CACHE_MIN), 1 << 30))


def predict_tiles(
    source: RasterSource | Any,
    tiles: Sequence[Tile],
    model_path: str,
    device: str,
    backend: str,
    threads: int,
    with_probabilities: bool = False,
    tta: bool = False,
    zoom: float = 1.0,
) -> list[tuple[str, np.ndarray | None, np.ndarray | None]]:
    """Read, normalise and predict a batch of tiles -> ``(key, core classes, core probs)``.

    A tile whose core holds no valid pixel returns ``None`` and is never run through the
    model. Invalid pixels come out as nodata (255).
    """
    reads = read_tiles(source, tiles)
    return predict_reads(reads, tiles, model_path, device, backend, threads, with_probabilities, tta, zoom)


def predict_reads(
    reads: Sequence[tuple[np.ndarray, np.ndarray]],
    tiles: Sequence[Tile],
    model_path: str,
    device: str,
    backend: str,
    threads: int,
    with_probabilities: bool = False,
    tta: bool = False,
    zoom: float = 1.0,
) -> list[tuple[str, np.ndarray | None, np.ndarray | None]]:
    """``predict_tiles`` on pixels already read: ``reads[k]`` is tile k's ``(pixels, valid)``."""
    from geoseg.inference import normalise, softmax

    predictor = _predictor(model_path, device, backend, threads)
    spec = predictor.spec
    out: list[tuple[str, np.ndarray | None, np.ndarray | None]] = []
    todo: list[tuple[Tile, np.ndarray, np.ndarray]] = []
    for tile, (pixels, valid) in zip(tiles, reads, strict=True):
        if valid[tile.core_in_read.slices()].any():
            todo.append((tile, pixels, valid))
        else:
            out.append((tile.key, None, None))
    if not todo:
        return out
    # Normalised straight into the batch: no per-tile temporaries, no stacking copy.
    batch = np.empty((len(todo), *todo[0][1].shape), dtype=np.float32)
    for k, (_, pixels, valid) in enumerate(todo):
        normalise(pixels, valid, spec, out=batch[k])
    logits = predictor.logits(batch, tta, zoom)
    for k, (tile, _, valid) in enumerate(todo):
        core = tile.core_in_read.slices()
        scores = logits[k][(slice(None), *core)]  # only the core is kept: argmax nothing else
        cls = predictor.classes(scores, axis=0)
        invalid = ~valid[core]
        cls[invalid] = CLASS_NODATA
        p8 = None
        if with_probabilities:
            p8 = np.round(softmax(scores, axis=0) * 254).astype(np.uint8)
            p8[:, invalid] = 255
        out.append((tile.key, np.ascontiguousarray(cls), p8))
    return out


# --------------------------------------------------------------------------------------
# The client side


def _manifest_token(manifest: Path) -> str | None:
    """The run token a tile store was made for; None when absent or cut off."""
    try:
        token = json.loads(manifest.read_text()).get("token")
    except (OSError, ValueError):
        return None
    return token if isinstance(token, str) else None


class TileStore:
    """Finished tiles on disk beside the output, so an interrupted run can resume."""

    def __init__(self, out: Path, token: str, resume: bool) -> None:
        self.dir = out.with_name(f".{out.name}.tiles")
        manifest = self.dir / "manifest.json"
        if resume and _manifest_token(manifest) == token:
            # a tile that was being written when the run was killed is cut off: drop it
            for part in self.dir.glob("*.npz.part"):
                part.unlink()
            return
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True)
        manifest.write_text(json.dumps({"token": token, "geoseg": __version__}))

    def done(self) -> set[str]:
        return {p.name[: -len(".npz")] for p in self.dir.glob("*.npz")}

    def put(self, key: str, classes: np.ndarray | None, probs: np.ndarray | None) -> None:
        # not "*.npz": done() must never see a file that a SIGKILL may have cut off
        tmp = self.dir / f"{key}.npz.part"
        arrays = {} if classes is None else {"classes": classes}
        if probs is not None:
            arrays["probs"] = probs
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)  # type: ignore[arg-type]
        os.replace(tmp, self.dir / f"{key}.npz")  # a tile is either complete or absent

    def get(self, key: str) -> tuple[np.ndarray | None, np.ndarray | None]:
        with np.load(self.dir / f"{key}.npz") as z:
            return (
                z["classes"] if "classes" in z.files else None,
                z["probs"] if "probs" in z.files else None,
            )

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def may_fork() -> bool:
    """Whether this process may fork model workers now: no torch and no session of ours."""
    return fork_is_safe(models=True) and not _PREDICTORS


def connect(scheduler: str | None, workers: int | None, threads: int, fork: bool | None = None) -> Any:
    """A dask.distributed client: to ``scheduler`` if given, else a new LocalCluster.

    ``fork``: fork the local workers; None decides by :func:`may_fork`. Call it from the
    thread that does this process's GDAL work (no other thread may be in GDAL at a fork).
    """
    if scheduler:
        return remote_client(scheduler)
    n = workers or max(1, (os.cpu_count() or 1) // max(threads, 1))
    # One task per worker thread at a time. Dask's default (10 % more) gives each
    # single-threaded worker a second task in advance, so which worker gets which batch
    # drifts with the finishing order; one at a time, the workers take batches strictly
    # in turn, each walks down its own strip (grid.batch_tiles) and finds the block rows
    # it shares with its previous batch still decoded: reads 0.07 -> 0.05 s per batch
    # (4096^2 run, 2 workers). A task lasts seconds, the scheduler's round trip ~1 ms.
    fork = may_fork() if fork is None else fork
    return local_client(n, fork=fork, config={"distributed.scheduler.worker-saturation": 1.0})


def warm_workers(client: Any, model_path: Path, opts: PredictOptions) -> list[Any]:
    """Start loading the model on every worker of ``client`` (``_warm``); keep the futures.

    Each worker's first task otherwise pays ~0.3 s (the model read and hashed, ONNX
    Runtime's session built) after the client's checks and planning instead of beside them.
    """
    from dask.base import tokenize

    workers = list(client.scheduler_info()["workers"])
    # keyed by model and options: runs sharing a client at once (a workflow's maps) warm
    # their own model, not each other's task under one key
    token = tokenize(str(model_path), opts)
    return [
        client.submit(
            _warm,
            str(model_path),
            opts,
            key=f"warm-{token}-{k}",
            workers=[w],
            allow_other_workers=False,
            pure=False,
        )
        for k, w in enumerate(workers)
    ]


class _ClusterStart:
    """A LocalCluster being started in a thread; ``client()`` waits for it."""

    def __init__(self, workers: int | None, threads: int) -> None:
        # dask's own modules first, here: this thread goes on to ``tokenize`` while the
        # other imports distributed, and two threads importing dask at once can meet a
        # half-initialised dask.base (an ImportError)
        import dask.base  # noqa: F401

        self._pool = ThreadPoolExecutor(1, thread_name_prefix="geoseg-cluster")
        self._future = self._pool.submit(connect, None, workers, threads)
        self._taken = False

    def client(self) -> Any:
        self._taken = True
        return self._future.result()

    def close(self) -> None:
        """Close the cluster if nobody took it (an error came first), and the thread."""
        if not self._taken:
            try:
                close_client(self._future.result())
            except Exception:  # a cluster that failed to start has nothing to close
                log.debug("local cluster did not start", exc_info=True)
        self._pool.shutdown()


def predict(
    images: Sequence[str | os.PathLike[str]],
    model: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    tile_size: int = 512,
    overlap: int = 64,
    batch_size: int | None = None,
    device: str = "auto",
    backend: str = "auto",
    workers: int | None = None,
    threads: int = 1,
    scheduler: str | None = None,
    client: Any = None,
    probabilities: str | os.PathLike[str] | None = None,
    resume: bool = False,
    bands: Sequence[str | int] | None = None,
    progress: Progress | None = None,
    tags: dict[str, str] | None = None,
    tta: bool = False,
    zoom: float | None = None,
) -> PredictResult:
    """Predict a class COG for one scene or a mosaic of adjacent scenes (see ``geoseg predict``).

    ``tags`` are added to the COG's metadata (e.g. a workflow's provenance record).
    ``tta`` averages the model over the 8 rotations and flips of each tile (8x the model
    time; ``inference.dihedral_mean``). ``zoom`` resamples each tile by this factor for
    the model and the scores back (``inference.zoomed``; zoom^2 the model time); None:
    the model's own (``ModelSpec.zoom``, 1 unless its card says otherwise).
    """
    from geoseg.model import file_sha256, read_spec, resolve_model_path

    t0 = time.perf_counter()
    images = [_image_path(i) for i in images]  # the inputs first: what a user most often mistypes
    model_path = resolve_model_path(model).resolve()
    spec = read_spec(model_path)
    opts = PredictOptions(
        tile_size, overlap, batch_size, device, backend, threads, tta, spec.zoom if zoom is None else zoom
    )
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
            images, model_path, spec, bands, out, probabilities, opts, scheduler, workers, client,
            own_client, starting, in_process, resume, progress, tags or {}, t0,
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

    from geoseg.model import file_sha256

    closed = False  # the run's own client closed (or closing) already
    try:
        source = open_region(images, bands=bands if bands is not None else _default_bands(images, spec))
        if source.count != len(spec.bands):
            raise ModelError(
                f"{model_path.name} expects {len(spec.bands)} bands ({', '.join(spec.bands)}) but "
                f"{_label(images)} has {source.count} ({', '.join(source.band_names)}); select bands with --bands"
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
            _ensure_onnx_export(model_path)  # once here, not racing in every worker
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
        )
        store = TileStore(out_path, token, resume)
        done = store.done() & {t.key for t in tiles}
        todo = [t for t in tiles if t.key not in done]

        tags = {
            "GEOSEG_VERSION": __version__,
            "GEOSEG_MODEL": model_path.name,
            "GEOSEG_MODEL_SHA256": file_sha256(model_path),
            "GEOSEG_INPUTS": json.dumps([str(Path(p)) for p in images]),
            "GEOSEG_PARAMS": json.dumps(
                {
                    "tile_size": opts.tile_size,
                    "overlap": opts.overlap,
                    "backend": be,
                    "tta": opts.tta,
                    "zoom": opts.zoom,
                }
            ),
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
            task_args = (str(model_path), dev, be, opts.threads, prob_path is not None, opts.tta, opts.zoom)
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
        except BaseException:
            writer.abort()
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


def _on_cluster(
    client: Any, source: Any, batches: Sequence[Sequence[Tile]], task_args: tuple[Any, ...], token: str
) -> Iterator[list[tuple[str, np.ndarray | None, np.ndarray | None]]]:
    """Each batch's tiles as a worker finishes it (``task_args`` follow the tiles in
    ``predict_tiles``'s arguments)."""
    from dask.base import tokenize
    from distributed import as_completed

    futures = [
        client.submit(
            predict_tiles,
            source,
            batch,
            *task_args,
            key=f"predict_tiles-{tokenize(token, [t.key for t in batch])}",
            pure=False,
        )
        for batch in batches
    ]
    for future in as_completed(futures):
        yield future.result()
        future.release()


def _here(
    source: Any, batches: Sequence[Sequence[Tile]], task_args: tuple[Any, ...]
) -> Iterator[list[tuple[str, np.ndarray | None, np.ndarray | None]]]:
    """``--workers 0``: the batches predicted in this process, one after another."""
    for batch in batches:
        yield predict_tiles(source, batch, *task_args)


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


_EXPORTING = threading.Lock()  # predict() calls of one process at once (a workflow's maps) export once


def _ensure_onnx_export(model_path: Path) -> None:
    from geoseg.inference import export_onnx, onnx_cache_path
    from geoseg.model import load_checkpoint

    cached = onnx_cache_path(_model_record(model_path))
    with _EXPORTING:
        if not cached.exists():  # loading the torch model only when there is something to export
            export_onnx(load_checkpoint(model_path), cached)


def _image_path(image: str | os.PathLike[str]) -> str | os.PathLike[str]:
    """An input as given when it is a file (or a GDAL /vsi path), else the catalog scene it names."""
    if Path(image).exists() or str(image).startswith("/vsi"):
        return image
    from geoseg.stack import catalog_image

    found = catalog_image(str(image)) if "/" not in str(image) and not Path(image).suffix else None
    if found is None:
        raise MissingFileError("no such file or catalog scene; check the path (`geoseg data list`)", image)
    return found


def _default_bands(images: Sequence[Any], spec: Any) -> list[str] | None:
    """Select the model's bands by name when the image names its bands the same way."""
    from geoseg.io import open_raster

    names = {n.lower() for n in open_raster(images[0]).band_names}
    if all(b.lower() in names for b in spec.bands):
        return list(spec.bands)
    return None


def _label(images: Sequence[Any]) -> str:
    return str(images[0]) if len(images) == 1 else f"{images[0]} (+{len(images) - 1} more)"
