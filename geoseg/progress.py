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


class Parts:
    """One progress callback over a run made of parts, each reporting its own (done, total).

    Two ways to add the parts up:

    - counted (no ``weights``): the parts' counts are summed, e.g. the tiles of several
      maps predicted side by side. ``totals`` gives each part's count up front, so the
      whole's total is right from the first report on, whichever part reports first.
    - weighted (``weights``, one share per part): the parts are phases run one after
      another on one 0..100 % scale, e.g. a change's block pass then its polygons. A phase
      that reports stands at its share's start plus its own fraction: the phases before
      it count as done (also one that had nothing to do and never reported), the phases
      after it as not begun.

    Parts may report from different threads (maps predicted at once); the callback hears
    one report at a time.

    Parameters
    ----------
    progress
        The callback to drive; None makes every part a no-op.
    totals
        Counted parts: each part's count of work, known before it starts (0 when unknown).
    weights
        Weighted parts: each phase's share of the run (any positive numbers).
    """

    SCALE = 100

    def __init__(
        self,
        progress: Progress | None,
        totals: Sequence[int] | None = None,
        *,
        weights: Sequence[float] | None = None,
    ) -> None:

        if (totals is None) == (weights is None):
            raise ValueError("give either totals (counted parts) or weights (phases), not both")
        self.progress = progress
        n = len(weights) if weights is not None else len(totals or ())
        self._done = [0] * n
        self._total = list(totals) if totals is not None else [0] * n
        self._starts: np.ndarray | None = None
        if weights is not None:
            self._starts = np.concatenate([[0.0], np.cumsum(weights)]) / float(sum(weights)) * self.SCALE
        self._lock = threading.Lock()

    def part(self, k: int, label: str = "") -> Progress:
        """The callback of part ``k``; ``label`` is shown when the part gives no postfix."""

        def update(done: int, total: int, postfix: str = "") -> None:
            with self._lock:  # one report at a time, and the sums read consistently
                self._done[k], self._total[k] = done, total
                if self._starts is None:
                    report(self.progress, sum(self._done), sum(self._total), postfix or label)
                else:
                    lo, hi = float(self._starts[k]), float(self._starts[k + 1])
                    frac = min(done, total) / total if total else 1.0
                    report(self.progress, round(lo + (hi - lo) * frac), self.SCALE, postfix or label)

        return update
