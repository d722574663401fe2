"""The prediction's Dask cluster: started (forked or spawned) beside the checks, workers warmed with the model."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from geoseg.cluster import close_client, fork_is_safe, open_client
from geoseg.errors import ModelError, SchedulerError
from geoseg.inference._options import PredictOptions
from geoseg.inference._tasks import _PREDICTORS, _warm, predict_tiles
from geoseg.raster import (
    Tile,
)

log = logging.getLogger(__name__)


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


def may_fork() -> bool:
    """Whether this process may fork model workers now: no torch and no session of ours."""
    return fork_is_safe(models=True) and not _PREDICTORS


def connect(scheduler: str | None, workers: int | None, threads: int, fork: bool | None = None) -> Any:
    """A dask.distributed client: to ``scheduler`` if given, else a new LocalCluster.

    ``fork``: fork the local workers; None decides by :func:`may_fork`. Call it from the
    thread that does this process's GDAL work (no other thread may be in GDAL at a fork).
    """
    # One task per worker thread at a time. Dask's default (10 % more) gives each
    # single-threaded worker a second task in advance, so which worker gets which batch
    # drifts with the finishing order; one at a time, the workers take batches strictly
    # in turn, each walks down its own strip (grid.batch_tiles) and finds the block rows
    # it shares with its previous batch still decoded: reads 0.07 -> 0.05 s per batch
    # (4096^2 run, 2 workers). A task lasts seconds, the scheduler's round trip ~1 ms.
    return open_client(
        workers or None, scheduler, threads=threads, fork=may_fork() if fork is None else fork,
        config={"distributed.scheduler.worker-saturation": 1.0},
    )  # fmt: skip


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
