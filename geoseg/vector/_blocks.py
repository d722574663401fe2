"""Blocks of a class raster as units of work: the task, reading one, running them in order.

Both passes of vectorising use these (the minimum mapping unit's first pass in
:mod:`geoseg.sieve`, the polygonising pass in :mod:`geoseg.vectorize`), which is why they
live apart from either.

- **Tasks carry paths and windows, never pixels.** Each Dask task gets the source and a
  window and reads its own block on the worker, so the graph stays small and no pixels
  travel through the scheduler. Task keys come from ``dask.base.tokenize`` of what the
  task reads and does, never from uuids.
- **Order.** Results are handed back in task (row-major) order whatever order Dask
  finishes them in, through a small reorder buffer with a few blocks in flight: the
  client holds a few blocks' results, not the map, and what comes out does not depend on
  the worker count."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from geoseg.cluster import run_tasks
from geoseg.errors import BadRasterError
from geoseg.raster import PixelWindow, RasterSource, read_window
from geoseg.vector._areas import AreaModel

_INT32 = np.iinfo(np.int32)


# Here rather than in geoseg.sieve: every task carries one, and geoseg.sieve imports the task.
@dataclass(frozen=True)
class _Sieve:
    """Minimum mapping unit for one block: threshold and the client's decisions."""

    threshold: float  # in AreaModel.pixel_weights units
    labels: np.ndarray  # int32 piece labels (pass-1 labelling) decided by the client
    values: np.ndarray  # int64 new class of each
    dropped: np.ndarray  # bool: piece becomes nodata


@dataclass(frozen=True)
class _BlockTask:
    source: RasterSource
    index: int
    window: PixelWindow
    internal: tuple[bool, bool, bool, bool]  # TOP, BOTTOM, LEFT, RIGHT are seams (not the raster edge)
    connectivity: int
    area: AreaModel
    simplify_px: float | None = None
    sieve: _Sieve | None = None


def _read_block(source: RasterSource, window: PixelWindow) -> tuple[np.ndarray, np.ndarray]:
    """Class values (an integer dtype GDAL can polygonise) and the valid mask."""
    data, valid = read_window(source, window)
    band = data[0]
    path = source.paths[0]
    if band.dtype.kind == "f":
        vals = band[valid]
        whole = np.floor(vals) == vals
        if not whole.all():
            bad = vals[~whole][0]
            raise BadRasterError(
                f"holds the non-whole value {bad:g}; a class map holds whole class ids "
                "(round or reclassify it, or declare that value as nodata)",
                path,
            )
    if band.dtype in (np.uint8, np.uint16, np.int16):
        return band, valid
    vals = band[valid]
    if vals.size and (vals.min() < _INT32.min or vals.max() > _INT32.max):
        raise BadRasterError("holds class values outside the 32-bit integer range", path)
    return np.where(valid, band, 0).astype(np.int32), valid


def _run_ordered(client: Any, fn: Callable[[Any], Any], tasks: Sequence[Any], name: str) -> Iterator[Any]:
    """Results of ``fn`` over ``tasks`` in task order; at most a few blocks ahead in flight."""
    from dask.base import tokenize

    def key(i: int) -> str:
        return f"geoseg-{name}-{i}-{tokenize(_task_token(tasks[i]))}"

    for _, result in run_tasks(client, fn, tasks, key, ordered=True):
        yield result


def _task_token(task: _BlockTask) -> tuple[Any, ...]:
    w = task.window
    s = task.sieve
    sieve = None if s is None else (s.threshold, s.labels.tobytes(), s.values.tobytes(), s.dropped.tobytes())
    return (task.source.paths, task.source.nodata, (w.row_off, w.col_off, w.height, w.width),
            task.connectivity, task.simplify_px, sieve)  # fmt: skip
