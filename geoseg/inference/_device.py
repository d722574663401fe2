"""Which device and backend a run uses, and how many tiles a batch holds there."""

from __future__ import annotations

import glob
import os
import sys

from geoseg.errors import ModelError


def no_gpu_here() -> bool:
    """True when this machine certainly has no usable CUDA GPU, decided without torch.

    On Linux the CUDA driver talks to the GPU through ``/dev/nvidia*`` device nodes
    (``/dev/dxg`` under WSL2); with none of them, or with ``CUDA_VISIBLE_DEVICES`` empty or
    -1, CUDA cannot run. Elsewhere nothing is certain and torch has to be asked.
    """
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return True
    if not sys.platform.startswith("linux"):
        return False
    return not (glob.glob("/dev/nvidia[0-9]*") or os.path.exists("/dev/dxg"))


def resolve_device(device: str = "auto") -> str:
    """``auto`` -> ``cuda`` when a CUDA GPU is present, else ``cpu``."""
    if device == "cpu" or (device == "auto" and no_gpu_here()):
        # no torch import: a CPU client or ONNX worker never needs torch (1-2 s, ~200 MB)
        return "cpu"
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError(f"device {device!r} asked for but no CUDA GPU is available; use --device cpu")
    if device not in ("cpu",) and not device.startswith("cuda"):
        raise ModelError(f"unknown device {device!r}; use auto, cpu or cuda[:N]")
    return device


def resolve_backend(backend: str, device: str) -> str:
    """``auto`` -> ONNX Runtime on CPU (measured faster, see benchmarks/), torch on CUDA."""
    if backend == "auto":
        if device == "cpu":
            try:
                import onnxruntime  # noqa: F401
            except ImportError:
                return "torch"
            return "onnx"
        return "torch"
    if backend not in ("torch", "onnx"):
        raise ModelError(f"unknown backend {backend!r}; use auto, torch or onnx")
    return backend


# Input pixels per batch on CPU: 4 tiles of 640 x 640 (tile 512, overlap 64). Larger
# batches run no faster on a CPU (each tile is already a big convolution) and only grow
# ONNX Runtime's arena; smaller tiles get proportionally more tiles per batch.
CPU_BATCH_PIXELS = 4 * 640 * 640


# Working memory a CUDA forward pass may need per input pixel in mixed precision (live
# activations, skips and cuDNN workspace); generous for the smp models (Unet-resnet18
# needs ~100 bytes), so a batch always fits in the quarter of free memory it may use.
CUDA_BYTES_PER_PIXEL = 2048


def auto_batch_size(device: str, read_pixels: int) -> int:
    """Tiles per batch for tiles of ``read_pixels`` input pixels each on ``device``."""
    if device.startswith("cuda"):
        import torch

        free, _ = torch.cuda.mem_get_info(torch.device(device))
        return int(max(1, min(32, free // 4 // (CUDA_BYTES_PER_PIXEL * read_pixels))))
    return int(max(1, min(16, round(CPU_BATCH_PIXELS / read_pixels))))
