"""Prediction: checkpoints and models, inference on arrays (torch CPU/CUDA, ONNX Runtime), the tiled Dask pipeline."""

from __future__ import annotations

from geoseg.inference._cluster import connect
from geoseg.inference._device import auto_batch_size, no_gpu_here, resolve_backend, resolve_device
from geoseg.inference._model import (
    ARCHITECTURES,
    LoadedModel,
    ModelSpec,
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
    save_checkpoint,
)
from geoseg.inference._onnx import cpu_fingerprint, export_onnx, onnx_cache_path
from geoseg.inference._options import PredictOptions, PredictResult, PredictSettings
from geoseg.inference._pipeline import predict
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
from geoseg.inference._store import TileStore
from geoseg.inference._tasks import read_tiles
from geoseg.inference._xr import open_scene, predict_xr, write_classmap

__all__ = [
    "ARCHITECTURES",
    "LoadedModel",
    "ModelSpec",
    "PredictOptions",
    "PredictResult",
    "PredictSettings",
    "Predictor",
    "TileStore",
    "auto_batch_size",
    "build_model",
    "canonical_arch",
    "check_encoder",
    "check_runs",
    "check_zoom",
    "connect",
    "cpu_fingerprint",
    "describe",
    "dihedral_mean",
    "export_onnx",
    "init_checkpoint",
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
    "save_checkpoint",
    "softmax",
    "write_classmap",
    "zoomed",
    "zoomed_size",
]
