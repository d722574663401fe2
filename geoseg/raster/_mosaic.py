"""Several adjacent scenes read as one region on a common grid.

Scenes must share a CRS (up to notation), a pixel size and a pixel lattice, and have the
same band layout; the region's grid is the union of their extents. Where scenes overlap
the first one given wins, which keeps the result independent of tiling order."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from affine import Affine

from geoseg.errors import BadRasterError, GridMismatchError
from geoseg.raster._grid import Grid, PixelWindow, crs_equal
from geoseg.raster._read import RasterSource, open_raster


@dataclass(frozen=True)
class Mosaic:
    """A picklable region of scenes; reads like a ``RasterSource``."""

    scenes: tuple[RasterSource, ...]
    offsets: tuple[tuple[int, int], ...]  # (row, col) of each scene's origin in the region
    grid: Grid

    @property
    def count(self) -> int:
        return self.scenes[0].count

    @property
    def band_names(self) -> tuple[str, ...]:
        return self.scenes[0].band_names

    @property
    def dtype(self) -> str:
        return self.scenes[0].dtype

    @property
    def nodata(self) -> float | None:
        return self.scenes[0].nodata

    @property
    def paths(self) -> tuple[str, ...]:
        return tuple(p for s in self.scenes for p in s.paths)

    def read(
        self, window: PixelWindow | None = None, keep_open: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        window = window if window is not None else self.grid.window
        fill = self.nodata if self.nodata is not None and not np.isnan(self.nodata) else 0
        out = np.full((self.count, window.height, window.width), fill, dtype=self.dtype)
        valid = np.zeros(window.shape, dtype=bool)
        for scene, (r, c) in zip(self.scenes, self.offsets, strict=True):
            local = window.shifted(-r, -c)
            if local.intersection(scene.grid.window) is None:
                continue
            pixels, ok = scene.read(local, keep_open)
            take = ok & ~valid
            out[:, take] = pixels[:, take]
            valid |= take
        return out, valid


def open_region(
    images: Sequence[str | os.PathLike[str]], bands: Sequence[str | int] | None = None
) -> RasterSource | Mosaic:
    """One scene as a ``RasterSource``, several as a ``Mosaic`` on their common grid."""
    scenes = [open_raster(p, bands=bands) for p in images]
    if len(scenes) == 1:
        return scenes[0]
    first = scenes[0]
    for path, s in zip(images[1:], scenes[1:], strict=True):
        if s.band_names != first.band_names or s.dtype != first.dtype:
            raise BadRasterError(
                f"band layout {list(s.band_names)} ({s.dtype}) differs from {images[0]}'s "
                f"{list(first.band_names)} ({first.dtype}); adjacent scenes must have the same bands",
                path,
            )
        if not crs_equal(s.grid.crs, first.grid.crs):
            raise GridMismatchError(
                f"CRS differs from {images[0]}'s; reproject the scenes to one CRS first", path
            )
        if not np.allclose(s.grid.res, first.grid.res, rtol=1e-9):
            raise GridMismatchError(
                f"pixel size {s.grid.res} differs from {images[0]}'s {first.grid.res}", path
            )
    t0 = first.grid.transform
    rx, ry = first.grid.res
    offsets = []
    for path, s in zip(images, scenes, strict=True):
        col = (s.grid.transform.c - t0.c) / rx
        row = (t0.f - s.grid.transform.f) / ry
        if abs(col - round(col)) > 1e-3 or abs(row - round(row)) > 1e-3:
            raise GridMismatchError(
                "is not on the same pixel lattice as the first scene; resample it first", path
            )
        offsets.append((round(row), round(col)))
    r_min = min(r for r, _ in offsets)
    c_min = min(c for _, c in offsets)
    r_max = max(r + s.grid.height for (r, _), s in zip(offsets, scenes, strict=True))
    c_max = max(c + s.grid.width for (_, c), s in zip(offsets, scenes, strict=True))
    transform = t0 @ Affine.translation(c_min, r_min)
    grid = Grid((math.ceil(r_max - r_min), math.ceil(c_max - c_min)), transform, first.grid.crs)
    shifted = tuple((r - r_min, c - c_min) for r, c in offsets)
    return Mosaic(tuple(scenes), shifted, grid)
