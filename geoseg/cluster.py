"""How geoseg runs on Dask: a local cluster or a remote scheduler, and a bounded submit loop.

Every parallel pass (prediction, vectorising, change and track) gets its client here, and
all but prediction (which submits its strips of batches at once, :mod:`geoseg.pipeline`)
feed their blocks through :func:`run_tasks`, so they share one policy:

- **Local workers are processes with one thread each.** GDAL polygonising, shapely and
  the models' pre- and post-processing hold the GIL for long stretches.
- **Forked where that is safe.** A forked worker inherits the modules this process has
  imported (distributed, numpy, rasterio, geoseg) and is ready in ~0.1 s; a spawned one
  starts a fresh interpreter and imports them again (~0.5 s on 2 cores, plus ~0.15 s to
  shut down). For a run of seconds that is a tenth of its time. Forking is safe when no
  other thread of this process is inside GDAL at that moment (callers start the cluster
  from the thread that does their GDAL work, so the fork happens while it waits) and
  when nothing that breaks across a fork is live: torch (CUDA cannot be used in a forked
  child, and an OpenMP pool the parent has used hangs it) or an ONNX Runtime session
  (its thread pool does not exist in the child; :mod:`geoseg.pipeline`, which owns the
  sessions, checks that part). Otherwise, and off
  Linux, workers are spawned. A program whose other threads may be inside GDAL when it
  calls geoseg sets ``GEOSEG_START_METHOD=spawn``.
- **A few tasks in flight.** ``run_tasks`` keeps ``2 x threads + 2`` tasks submitted:
  enough to keep every worker busy, while results wait on the client only briefly and
  memory holds a few blocks, never the map.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from geoseg.errors import SchedulerError, first_line
from geoseg.options import Options, option

log = logging.getLogger(__name__)

SCHEDULER_TIMEOUT_S = 5
#: ``spawn`` here never forks workers (for programs that run GDAL in other threads)
START_METHOD_ENV = "GEOSEG_START_METHOD"


class DaskOptions(Options):
    """Where a parallel pass runs: a local cluster of worker processes, or a running one."""

    workers: int | None = option(
        None,
        "Local Dask worker processes [default: one per core; 0: no Dask, this process does the work].",
        ge=0,
    )
    scheduler: str | None = option(None, "Address of an existing Dask scheduler (tcp://HOST:PORT).")


def fork_is_safe(models: bool = False) -> bool:
    """Whether local workers may be forked from this process now (see the module doc).

    ``models``: the workers will run models, so torch must not be loaded here; workers
    that only read and write rasters do not care what torch did in this process.
    """
    if not sys.platform.startswith("linux") or os.environ.get(START_METHOD_ENV) == "spawn":
        return False
    if busy_threads():
        return False
    return not models or "torch" not in sys.modules


#: threads that hold no lock a forked child could need: a thread pool's idle workers wait
#: on its queue (dask's offload pool)
_IDLE_THREADS = ("Dask-Offload",)


def busy_threads() -> list[str]:
    """The other threads of this process that could be inside a lock at a fork.

    A forked child inherits every lock in the state it had at the fork, and only the
    thread that forked: a lock another thread held then (a log stream's buffer, GDAL's
    cache, an event loop's) is held for ever in the child, which hangs on first use.
    Seen here: a worker forked from a process whose dask IO loop thread was writing a log
    line hung in ``StreamHandler.flush``. So local workers are forked only when no such
    thread runs; otherwise they are spawned (~0.5 s more to start).
    """
    me = threading.get_ident()
    return [
        t.name
        for t in threading.enumerate()
        if t.ident != me and t.is_alive() and not t.name.startswith(_IDLE_THREADS)
    ]


def local_client(n: int, *, fork: bool, config: dict[str, Any] | None = None) -> Any:
    """A client of a new LocalCluster of ``n`` one-thread worker processes.

    ``fork``: fork the workers (only when :func:`fork_is_safe` and no other thread of
    this process runs GDAL now) instead of spawning them. ``config``: Dask settings the
    cluster starts with (e.g. the scheduler's worker saturation).
    """
    import dask
    from distributed import Client, LocalCluster

    settings = {"distributed.worker.multiprocessing-method": "fork" if fork else "spawn", **(config or {})}
    log.debug("local cluster: %d workers (%s)", n, settings["distributed.worker.multiprocessing-method"])
    with dask.config.set(settings):
        cluster = LocalCluster(
            n_workers=n,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",  # any free port: the scheduler starts its HTTP server anyway
            # our tasks hold a few blocks each; the nanny's memory monitor would only pause
            # or restart workers on a machine that has the memory
            memory_limit=0,
            silence_logs=logging.ERROR,
        )
    try:
        return Client(cluster)
    except BaseException:
        cluster.close()
        raise


def remote_client(address: str) -> Any:
    """A client of the running Dask scheduler at ``address``; unreachable fails in seconds."""
    from distributed import Client

    try:
        return Client(address, timeout=f"{SCHEDULER_TIMEOUT_S}s")
    except (OSError, TimeoutError, ValueError) as exc:
        raise SchedulerError(
            f"cannot reach the Dask scheduler at {address} within {SCHEDULER_TIMEOUT_S} s "
            f"({first_line(exc)}); check the address and that `dask scheduler` runs there, "
            "or leave out --scheduler to run locally"
        ) from exc


def open_client(
    workers: int | None = None,
    scheduler: str | None = None,
    *,
    threads: int = 1,
    fork: bool | None = None,
    config: dict[str, Any] | None = None,
) -> Any:
    """The one way geoseg gets a Dask client: ``scheduler``'s, or a new LocalCluster.

    A local cluster has ``workers`` one-thread processes (default: one per core, divided
    by the model ``threads`` each will run); ``workers=0`` means no Dask at all, and gives
    None (the caller runs everything in this process). ``fork`` forks the local workers
    (default: when :func:`fork_is_safe`; callers that run models decide themselves);
    ``config`` are Dask settings the cluster starts with.
    """
    if scheduler:
        return remote_client(scheduler)
    n = max(1, (os.cpu_count() or 1) // max(threads, 1)) if workers is None else workers
    if n <= 0:
        return None
    return local_client(n, fork=fork_is_safe() if fork is None else fork, config=config)


@contextmanager
def dask_client(
    workers: int | None = None,
    scheduler: str | None = None,
    *,
    threads: int = 1,
    fork: bool | None = None,
    config: dict[str, Any] | None = None,
) -> Iterator[Any]:
    """:func:`open_client` for the ``with`` block, closed after it (with its local cluster)."""
    client = open_client(workers, scheduler, threads=threads, fork=fork, config=config)
    try:
        yield client
    finally:
        if client is not None:
            close_client(client)


def close_client(client: Any) -> None:
    """Close a client and, when it owns one, its local cluster."""
    cluster = client.cluster
    client.close()
    if cluster is not None:
        cluster.close()


def run_tasks(
    client: Any,
    fn: Callable[[Any], Any],
    tasks: Sequence[Any],
    key: Callable[[int], str],
    ordered: bool = False,
) -> Iterator[tuple[int, Any]]:
    """``(index, fn(task))`` for every task: in finishing order, or in task order if ``ordered``.

    ``client`` None runs them here, in order. ``key(i)`` names task ``i`` on the cluster
    (deterministic, e.g. a tokenize of what it reads). With ``ordered`` the finished
    results that wait for an earlier one count against the tasks in flight, so a slow
    first block never lets the buffer grow.
    """
    if client is None:
        for i, t in enumerate(tasks):
            yield i, fn(t)
        return
    from distributed import as_completed

    try:
        threads = max(1, sum(client.nthreads().values()))
    except Exception:  # a scheduler that cannot say: one thread is the safe guess
        threads = 1
    limit = 2 * threads + 2
    queue = as_completed()
    index: dict[str, int] = {}
    live: dict[str, Any] = {}
    held: dict[int, Any] = {}  # finished out of order, waiting for an earlier task (ordered)
    submitted = handed = 0
    try:
        while handed < len(tasks):
            while submitted < len(tasks) and submitted - handed < limit:
                fut = client.submit(fn, tasks[submitted], key=key(submitted), pure=False)
                index[fut.key] = submitted
                live[fut.key] = fut
                queue.add(fut)
                submitted += 1
            fut = next(queue)
            result = fut.result()
            i = index.pop(fut.key)
            del live[fut.key]
            fut.release()
            if not ordered:
                handed += 1
                yield i, result
                continue
            held[i] = result
            while handed in held:
                yield handed, held.pop(handed)
                handed += 1
    finally:
        if live:
            client.cancel(list(live.values()))
