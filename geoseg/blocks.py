"""Block-parallel passes over a reference grid, shared by change and track.

The reference grid is cut into ``block_size`` squares; each Dask task gets paths and a
window (never pixels), reads every date itself and returns the block's codes and its
small partial sums. The client writes the codes into the output rasters as blocks
arrive, and adds the partial sums in block order at the end, so totals are the same
bytes whatever order the workers finish in. Memory holds a few blocks, never the map.

Areas are in square metres on the ellipsoid, through :mod:`geoseg.areas` (the same
measure the polygons get): one pixel area for low-distortion projections (UTM: exactly
pixel width x height), one area per row for geographic grids (exact for a
latitude/longitude cell, via an authalic cylindrical equal-area projection), a per-pixel
area otherwise. Tables are in hectares.

The underscored helpers are internal to geoseg (used by :mod:`geoseg.change` and
:mod:`geoseg.track`), not a public API.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from geoseg.areas import AreaModel
from geoseg.errors import ConfigError
from geoseg.grid import Grid, Window, iter_tiles
from geoseg.progress import Progress, report

DEFAULT_BLOCK = 1024


class _Phases:
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


def _pixel_areas(area: AreaModel, window: Window) -> np.ndarray:
    """m² of every pixel of ``window``, as a full array."""
    w = area.pixel_weights(window)
    if w is None:
        return np.full(window.shape, area.pixel_area_m2, dtype=np.float64)
    return np.broadcast_to(np.asarray(w, dtype=np.float64), window.shape)


def _windows(grid: Grid, block_size: int) -> list[Window]:
    if block_size < 16:
        raise ConfigError(f"block size must be at least 16 pixels, got {block_size}")
    return [t.core for t in iter_tiles(grid.shape, block_size)]


__all__ = ["DEFAULT_BLOCK"]
