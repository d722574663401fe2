"""Prediction: checkpoints and models, inference on arrays (torch CPU/CUDA, ONNX Runtime), the tiled Dask pipeline.

The checkpoint format and inference on arrays import without the geospatial stack (no
GDAL, no Dask): a GPU machine with torch alone runs them (``benchmarks/bench_gpu.py``).
The tiled pipeline, its options and the xarray interface load on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from geoseg.inference._device import auto_batch_size, no_gpu_here, resolve_backend, resolve_device
from geoseg.inference._model import (
    ARCHITECTURES,
    LoadedModel,
    ModelSpec,
    ValueDomain,
    build_model,
    canonical_arch,
    check_encoder,
    check_runs,
    check_zoom,
    describe,
    init_checkpoint,
    load_checkpoint,
    make_spec,
    read_spec,
    resolve_model_path,
    rewrite_spec,
    save_checkpoint,
)
from geoseg.inference._onnx import cpu_fingerprint, export_onnx, onnx_cache_path
from geoseg.inference._onnxcache import (
    CACHE_LIMIT_ENV,
    IN_USE_S,
    CacheClear,
    CacheEntry,
    CacheInfo,
    cache_info,
    clear_cache,
    limit_bytes,
    trim_cache,
)
from geoseg.inference._predictor import (
    Predictor,
    dihedral_mean,
    module_logits,
    normalise,
    pad_to_stride,
    resize_bilinear,
    softmax,
    zoomed,
    zoomed_size,
)

# name -> module, loaded on first use (they import rasterio, Dask or xarray)
_LAZY = {
    "connect": "geoseg.inference._cluster",
    "PredictOptions": "geoseg.inference._options",
    "PredictResult": "geoseg.inference._options",
    "PredictSettings": "geoseg.inference._options",
    "predict": "geoseg.inference._pipeline",
    "TileStore": "geoseg.inference._store",
    "read_tiles": "geoseg.inference._tasks",
    "open_scene": "geoseg.inference._xr",
    "predict_xr": "geoseg.inference._xr",
    "write_classmap": "geoseg.inference._xr",
}

if TYPE_CHECKING:
    from geoseg.inference._cluster import connect
    from geoseg.inference._options import PredictOptions, PredictResult, PredictSettings
    from geoseg.inference._pipeline import predict
    from geoseg.inference._store import TileStore
    from geoseg.inference._tasks import read_tiles
    from geoseg.inference._xr import open_scene, predict_xr, write_classmap


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'geoseg.inference' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "ARCHITECTURES",
    "CACHE_LIMIT_ENV",
    "IN_USE_S",
    "CacheClear",
    "CacheEntry",
    "CacheInfo",
    "LoadedModel",
    "ModelSpec",
    "PredictOptions",
    "PredictResult",
    "PredictSettings",
    "Predictor",
    "TileStore",
    "ValueDomain",
    "auto_batch_size",
    "build_model",
    "cache_info",
    "canonical_arch",
    "check_encoder",
    "check_runs",
    "check_zoom",
    "clear_cache",
    "connect",
    "cpu_fingerprint",
    "describe",
    "dihedral_mean",
    "export_onnx",
    "init_checkpoint",
    "limit_bytes",
    "load_checkpoint",
    "make_spec",
    "module_logits",
    "no_gpu_here",
    "normalise",
    "onnx_cache_path",
    "open_scene",
    "pad_to_stride",
    "predict",
    "predict_xr",
    "read_spec",
    "read_tiles",
    "resize_bilinear",
    "resolve_backend",
    "resolve_device",
    "resolve_model_path",
    "rewrite_spec",
    "save_checkpoint",
    "softmax",
    "trim_cache",
    "write_classmap",
    "zoomed",
    "zoomed_size",
]
