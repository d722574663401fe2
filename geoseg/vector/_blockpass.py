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
:mod:`geoseg.track`), not a public API."""

from __future__ import annotations

import numpy as np

from geoseg.errors import ConfigError
from geoseg.raster import Grid, PixelWindow, iter_tiles
from geoseg.vector._areas import AreaModel


def pixel_areas(area: AreaModel, window: PixelWindow) -> np.ndarray:
    """m² of every pixel of ``window``, as a full array."""
    w = area.pixel_weights(window)
    if w is None:
        return np.full(window.shape, area.pixel_area_m2, dtype=np.float64)
    return np.broadcast_to(np.asarray(w, dtype=np.float64), window.shape)


def block_windows(grid: Grid, block_size: int) -> list[PixelWindow]:
    if block_size < 16:
        raise ConfigError(f"block size must be at least 16 pixels, got {block_size}")
    return [t.core for t in iter_tiles(grid.shape, block_size)]
