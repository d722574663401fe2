"""What runs inside a prediction task on a worker: read a batch of tiles, normalise, predict, crop to the cores."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rasterio

from geoseg.classes import CLASS_NODATA
from geoseg.inference._options import PredictOptions
from geoseg.raster import (
    PixelWindow,
    RasterSource,
    Tile,
)

log = logging.getLogger(__name__)

_PREDICTORS: dict[tuple[str, str, str, int], Any] = {}


def _model_record(model_path: str | Path) -> Any:
    """The checkpoint's spec and sha256 without its torch module (enough to find its ONNX export)."""
    from geoseg.files import file_sha256
    from geoseg.inference._model import LoadedModel, read_spec

    return LoadedModel(read_spec(model_path), None, Path(model_path), file_sha256(model_path))


def _predictor(model_path: str, device: str, backend: str, threads: int) -> Any:
    """The worker process's predictor for this model: loaded once, reused by every task."""
    key = (model_path, device, backend, threads)
    if key not in _PREDICTORS:
        from geoseg.inference._model import load_checkpoint
        from geoseg.inference._onnx import onnx_cache_path
        from geoseg.inference._predictor import Predictor

        # With a cached ONNX export the worker needs no torch module: skipping torch and
        # smp imports and the model build saves ~5 s and ~300 MB per worker.
        model = _model_record(model_path)
        if backend != "onnx" or not onnx_cache_path(model).exists():
            model = load_checkpoint(model_path)
        _PREDICTORS[key] = Predictor(model, device=device, backend=backend, threads=threads)
    return _PREDICTORS[key]


def _warm(model_path: str, opts: PredictOptions) -> None:
    """Load the model into this worker: the first task's start-up, paid while the client plans."""
    from geoseg.inference._onnx import onnx_cache_path

    try:
        dev, be, _ = opts.resolve()
        if be == "onnx" and not onnx_cache_path(_model_record(model_path)).exists():
            return  # the client exports it first; building the torch model here costs seconds
        _predictor(model_path, dev, be, opts.threads)
        log.debug("worker %d: %s loaded before the first task", os.getpid(), Path(model_path).name)
    except Exception:  # the tasks meet the same error and report it properly
        log.debug("warming %s failed", model_path, exc_info=True)


def read_tiles(source: RasterSource | Any, tiles: Sequence[Tile]) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(pixels, valid)`` of each tile's read window, in order.

    Neighbouring tiles of one tile row (consecutive in a batch) have overlapping read
    windows on the same file blocks, so they are read together, one window over their
    union, and sliced: each compressed block is then decoded once per batch instead of
    once per tile. The files stay open in the worker with a block cache that holds about
    two batches' blocks, so the batch below (``batch_tiles`` sends a worker down its strip)
    finds the rows it shares with this one decoded: a tile at 512 + 2 x 64 on 512-pixel
    blocks touches 3 block rows, and 2 of them are the previous batch's. The values are
    exactly those of separate reads.
    """
    groups: list[tuple[PixelWindow, list[Tile]]] = []
    i = 0
    while i < len(tiles):
        first = tiles[i].read
        j, end = i + 1, first.col_end
        while (
            j < len(tiles)
            and tiles[j].read.row_off == first.row_off
            and tiles[j].read.height == first.height
            and first.col_off <= tiles[j].read.col_off <= end  # touching or overlapping: no gap
        ):
            end = max(end, tiles[j].read.col_end)
            j += 1
        groups.append(
            (PixelWindow(first.row_off, first.col_off, first.height, end - first.col_off), list(tiles[i:j]))
        )
        i = j
    out: list[tuple[np.ndarray, np.ndarray]] = []
    largest = max((u for u, _ in groups), key=lambda w: w.height * w.width, default=None)
    with rasterio.Env(GDAL_CACHEMAX=read_cache_bytes(source, largest) if largest else READ_CACHE_MIN):
        for union, group in groups:
            pixels, valid = source.read(union, keep_open=True)
            for tile in group:
                cols = slice(tile.read.col_off - union.col_off, tile.read.col_end - union.col_off)
                out.append((pixels[:, :, cols], valid[:, cols]))
    return out


READ_CACHE_MIN = 96 << 20  # bytes: rasterio passes GDAL_CACHEMAX to GDAL in bytes


def read_cache_bytes(source: RasterSource | Any, union: PixelWindow) -> int:
    """GDAL block cache for a worker's reads: two batches' blocks and the rows between.

    A union read touches its rows plus up to a block above and below, and as many
    columns plus a block each side; six times its own size covers that for blocks up to
    a tile's size, and what the next batch reads besides. At least 96 MiB, at most 1 GiB:
    bounded per worker whatever the scene's size.
    """
    size = union.height * union.width * source.count * np.dtype(source.dtype).itemsize
    return int(min(max(6 * size, READ_CACHE_MIN), 1 << 30))


def predict_tiles(
    source: RasterSource | Any,
    tiles: Sequence[Tile],
    model_path: str,
    device: str,
    backend: str,
    threads: int,
    with_probabilities: bool = False,
    tta: bool = False,
    zoom: float = 1.0,
    input_scale: float | None = None,
) -> list[tuple[str, np.ndarray | None, np.ndarray | None]]:
    """Read, normalise and predict a batch of tiles -> ``(key, core classes, core probs)``.

    A tile whose core holds no valid pixel returns ``None`` and is never run through the
    model. Invalid pixels come out as nodata (255).
    """
    reads = read_tiles(source, tiles)
    return predict_reads(
        reads, tiles, model_path, device, backend, threads, with_probabilities, tta, zoom, input_scale
    )


def predict_reads(
    reads: Sequence[tuple[np.ndarray, np.ndarray]],
    tiles: Sequence[Tile],
    model_path: str,
    device: str,
    backend: str,
    threads: int,
    with_probabilities: bool = False,
    tta: bool = False,
    zoom: float = 1.0,
    input_scale: float | None = None,
) -> list[tuple[str, np.ndarray | None, np.ndarray | None]]:
    """``predict_tiles`` on pixels already read: ``reads[k]`` is tile k's ``(pixels, valid)``."""
    from geoseg.inference._predictor import normalise, softmax

    predictor = _predictor(model_path, device, backend, threads)
    spec = predictor.spec
    out: list[tuple[str, np.ndarray | None, np.ndarray | None]] = []
    todo: list[tuple[Tile, np.ndarray, np.ndarray]] = []
    for tile, (pixels, valid) in zip(tiles, reads, strict=True):
        if valid[tile.core_in_read.slices()].any():
            todo.append((tile, pixels, valid))
        else:
            out.append((tile.key, None, None))
    if not todo:
        return out
    # Normalised straight into the batch: no per-tile temporaries, no stacking copy.
    batch = np.empty((len(todo), *todo[0][1].shape), dtype=np.float32)
    for k, (_, pixels, valid) in enumerate(todo):
        normalise(pixels, valid, spec, out=batch[k], scale=input_scale)
    logits = predictor.logits(batch, tta, zoom)
    for k, (tile, _, valid) in enumerate(todo):
        core = tile.core_in_read.slices()
        scores = logits[k][(slice(None), *core)]  # only the core is kept: argmax nothing else
        cls = predictor.classes(scores, axis=0)
        invalid = ~valid[core]
        cls[invalid] = CLASS_NODATA
        p8 = None
        if with_probabilities:
            p8 = np.round(softmax(scores, axis=0) * 254).astype(np.uint8)
            p8[:, invalid] = 255
        out.append((tile.key, np.ascontiguousarray(cls), p8))
    return out
