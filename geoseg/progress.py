"""The progress callback the library calls; the CLI turns it into a bar.

The library never prints: long operations take ``progress: Progress | None`` and call it
with ``(done, total, postfix)`` as work completes.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Protocol

import numpy as np


class Progress(Protocol):
    def __call__(self, done: int, total: int, postfix: str = "") -> None: ...


def report(progress: Progress | None, done: int, total: int, postfix: str = "") -> None:
    """Call ``progress`` if there is one."""
    if progress is not None:
        progress(done, total, postfix)


class Phases:
    """One progress scale (0..100 %) over several phases of a run, each with its own share."""

    SCALE = 100

    def __init__(self, progress: Progress | None, shares: Sequence[float]) -> None:
        self.progress = progress
        total = float(sum(shares))
        self.starts = np.concatenate([[0.0], np.cumsum(shares)]) / total * self.SCALE

    def phase(self, k: int, label: str) -> Progress:
        lo, hi = float(self.starts[k]), float(self.starts[k + 1])

        def update(done: int, total: int, postfix: str = "") -> None:
            frac = min(done, total) / total if total else 1.0
            report(self.progress, round(lo + (hi - lo) * frac), self.SCALE, postfix or label)

        return update


class MapsProgress:
    """One progress callback over several maps predicted at once: tiles done of all maps
    (``totals``: each map's tile count)."""

    def __init__(self, progress: Progress | None, totals: Sequence[int]) -> None:
        self._progress = progress
        self._done = [0] * len(totals)
        self._total = list(totals)
        self._lock = threading.Lock()

    def part(self, k: int) -> Progress | None:
        if self._progress is None:
            return None

        def report(done: int, total: int, postfix: str = "") -> None:
            with self._lock:
                self._done[k], self._total[k] = done, total
                if self._progress is not None:  # the bar draws from one thread at a time
                    self._progress(sum(self._done), sum(self._total), postfix)

        return report
