"""Progress bars for the CLI. The library reports progress through callbacks only."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from tqdm import tqdm

from geoseg.progress import Progress

# No monitor thread: tqdm's wakes every 10 s to fix stalled bars (ours update as work
# finishes), and another thread alive in this process makes forking local Dask workers
# unsafe (geoseg.cluster.busy_threads).
tqdm.monitor_interval = 0


@contextmanager
def progress_bar(description: str, unit: str = "tile", log_every: float | None = None) -> Iterator[Progress]:
    """Yield a ``Progress`` callback that drives a tqdm bar on stderr.

    When stderr is not a terminal (a log file, a batch job) there is no bar; with
    ``log_every`` set, a plain line is written instead at most every ``log_every`` seconds
    (0: at every update) and at the end, so a long job's log shows how far it got.
    """
    bar: tqdm | None = None
    piped = not sys.stderr.isatty()
    last = -float("inf")

    def update(done: int, total: int, postfix: str = "") -> None:
        nonlocal bar, last
        if piped and log_every is not None:
            now = time.monotonic()
            if now - last >= log_every or done >= total:
                last = now
                print(f"{description}: {done}/{total} {unit} {postfix}".rstrip(), file=sys.stderr, flush=True)
            return
        if bar is None:
            bar = tqdm(
                total=total,
                desc=description,
                unit=unit,
                file=sys.stderr,
                dynamic_ncols=True,
                disable=None,  # silent when stderr is not a terminal
            )
        bar.total = total
        bar.n = done
        if postfix:
            bar.set_postfix_str(postfix, refresh=False)
        bar.refresh()

    try:
        yield update
    finally:
        if bar is not None:
            bar.close()
