"""Make segmentation-models-pytorch importable with a CPU torch and a CUDA torchvision.

The registry only carries a CUDA build of torchvision 0.28.0. Next to the CPU build of
torch 2.13.0 its native library (``torchvision/_C.so``) fails to load, and torchvision's
import then dies in ``_meta_registrations`` with ``operator torchvision::nms does not
exist`` because it registers fake kernels for operators nobody defined. smp imports timm,
and timm imports torchvision, so smp is unusable.

geoseg never calls torchvision's detection operators, so the fix is to declare the two
operator *schemas* torchvision registers fake kernels for (``nms`` and ``qnms``) before
torchvision is imported. This only happens when the native library really fails to
load: where torchvision is healthy (a CUDA machine with CUDA torch) this module does
nothing. It must be imported before smp, timm or torchvision; ``geoseg.model`` does so."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

_LIBRARY: object | None = None  # keeps the torch.library.Library alive for the process


def _torchvision_native_loads() -> bool:
    import importlib.util

    import torch

    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return True  # no torchvision: nothing to patch
    folder = next(iter(spec.submodule_search_locations))
    for name in os.listdir(folder):
        if name.startswith("_C") and name.endswith((".so", ".pyd")):
            try:
                torch.ops.load_library(os.path.join(folder, name))
            except (OSError, RuntimeError):
                return False
            return True
    return False


def ensure_torchvision_importable() -> bool:
    """Declare the missing torchvision operator schemas when needed.

    Returns True when a patch was applied, False when torchvision was healthy already.
    """
    global _LIBRARY
    if _LIBRARY is not None:
        return True
    import sys

    if "torchvision" in sys.modules or _torchvision_native_loads():
        return False
    import torch

    lib = torch.library.Library("torchvision", "DEF")
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _LIBRARY = lib
    return True


ensure_torchvision_importable()


def import_smp() -> Any:
    """``segmentation_models_pytorch``, imported only after the patch above has run.

    Every geoseg module gets smp through here, so no import sorter can reorder the two.
    It is imported with the Hugging Face hub offline: geoseg builds every encoder without
    pretrained weights, and the machines it is built on have no hub access, so a mistaken
    download must fail at once rather than retry for 20 s. huggingface_hub reads the
    setting when it is first imported (smp and timm import it), so it holds for geoseg's
    model builds from then on, while the caller's own environment is left as it was.
    """
    ensure_torchvision_importable()
    with _hub_offline():
        import segmentation_models_pytorch

    return segmentation_models_pytorch


@contextlib.contextmanager
def _hub_offline() -> Iterator[None]:
    """``HF_HUB_OFFLINE=1`` for the block (unless the caller set it), then as it was."""
    before = os.environ.get("HF_HUB_OFFLINE")
    if before is None:
        os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
