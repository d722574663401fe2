"""Progress bars for the CLI. The library reports progress through callbacks only."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from tqdm import tqdm

from geoseg.progress import Progress


@contextmanager
def progress_bar(description: str, unit: str = "tile") -> Iterator[Progress]:
    """Yield a ``Progress`` callback that drives a tqdm bar on stderr."""
    bar: tqdm | None = None

    def update(done: int, total: int, postfix: str = "") -> None:
        nonlocal bar
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
