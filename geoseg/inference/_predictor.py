"""Inference on arrays: normalise, pad, zoom, TTA and a model's logits (torch on CPU/CUDA or ONNX Runtime). No file I/O."""

from __future__ import annotations

import functools
import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from geoseg.errors import BackendWarning, ExportError, ModelError
from geoseg.inference._device import resolve_backend, resolve_device
from geoseg.inference._model import LoadedModel, ModelSpec
from geoseg.inference._onnx import _onnx_session

log = logging.getLogger(__name__)


# smp encoders downsample by 32; inputs are padded up to a multiple of this.
STRIDE = 32


def normalise(
    pixels: np.ndarray,
    valid: np.ndarray,
    spec: ModelSpec,
    out: np.ndarray | None = None,
    scale: float | None = None,
) -> np.ndarray:
    """``(bands, h, w)`` raw pixels -> float32 ``(x - mean) / std``; invalid pixels 0 (the mean).

    ``out`` (float32, same shape) receives the result, e.g. a slot of a preallocated batch:
    normalising in place saves two full-size temporaries per tile and the batch copy.
    ``scale`` first multiplies the pixels (an input on another scale than the model's).
    """
    mean = np.asarray(spec.mean, dtype=np.float32)[:, None, None]
    std = np.asarray(spec.std, dtype=np.float32)[:, None, None]
    if out is None:
        out = np.empty(pixels.shape, dtype=np.float32)
    # the same float32 arithmetic as (pixels.astype(float32) - mean) / std, bit for bit
    if scale is not None:
        np.multiply(pixels, np.float32(scale), out=out, dtype=np.float32)
        np.subtract(out, mean, out=out)
    else:
        np.subtract(pixels, mean, out=out, dtype=np.float32)
    np.divide(out, std, out=out)
    out[:, ~valid] = 0.0
    return out


def pad_to_stride(batch: np.ndarray, stride: int = STRIDE) -> tuple[np.ndarray, int, int]:
    """Reflect-pad ``(n, c, h, w)`` so h and w are multiples of ``stride``."""
    _, _, h, w = batch.shape
    ph, pw = (-h) % stride, (-w) % stride
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "edge"
        batch = np.pad(batch, [(0, 0), (0, 0), (0, int(ph)), (0, int(pw))], mode=mode)  # type: ignore[call-overload]
    return batch, h, w


@dataclass
class Predictor:
    """A loaded model ready to turn normalised batches into class probabilities."""

    model: LoadedModel
    device: str = "cpu"
    backend: str = "torch"
    amp: bool = True
    threads: int | None = None
    _session: Any = None
    _amp_dtype: Any = None

    def __post_init__(self) -> None:
        asked = self.backend
        self.device = resolve_device(self.device)
        self.backend = resolve_backend(self.backend, self.device)
        if self.backend == "onnx":
            try:
                self._session = _onnx_session(self.model, self.device, self.threads)
                return
            except ExportError as exc:
                if asked == "onnx":
                    raise
                warnings.warn(f"{exc}; predicting with torch instead", BackendWarning, stacklevel=3)
                self.backend = "torch"
        import torch

        if self.model.module is None:  # a record without its module (a worker's, for ONNX)
            from geoseg.inference._model import load_checkpoint

            self.model = load_checkpoint(self.model.path)

        if self.threads:
            torch.set_num_threads(self.threads)
        module = self.model.module.to(self.device).eval()
        if self.device.startswith("cuda"):
            # channels_last lets cuDNN pick tensor-core kernels for the convolutions
            module = module.to(memory_format=torch.channels_last)
            if self.amp:
                self._amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        self.model.module = module

    @property
    def spec(self) -> ModelSpec:
        return self.model.spec

    def logits(self, batch: np.ndarray, tta: bool = False, zoom: float | None = None) -> np.ndarray:
        """``(n, bands, h, w)`` float32 -> ``(n, classes, h, w)`` float32 raw class scores.

        ``tta``: the mean over the 8 rotations and flips of the batch (``dihedral_mean``).
        ``zoom``: resample the batch by this factor for the model (``zoomed``); None: the
        model's own (``ModelSpec.zoom``).
        """
        if batch.ndim != 4 or batch.shape[1] != len(self.spec.bands):
            raise ModelError(f"batch of shape {batch.shape} does not fit a {len(self.spec.bands)}-band model")
        padded, h, w = pad_to_stride(np.ascontiguousarray(batch, dtype=np.float32))
        z = self.spec.zoom if zoom is None else zoom
        forward: Callable[[np.ndarray], np.ndarray]
        if self.backend == "onnx":
            forward = zoomed(self._onnx_logits, z)  # resampled in NumPy: ONNX workers have no torch
        else:
            # resampled by torch where the model runs: on a GPU, the host's NumPy would
            # take longer over a batch than the model
            forward = functools.partial(self._torch_logits, zoom=z)
        out = dihedral_mean(forward, padded) if tta else forward(padded)
        return out[:, :, :h, :w]

    def _onnx_logits(self, padded: np.ndarray) -> np.ndarray:
        return self._session.run(None, {"input": padded})[0]

    def probabilities(self, batch: np.ndarray, tta: bool = False, zoom: float | None = None) -> np.ndarray:
        """``(n, bands, h, w)`` float32 -> ``(n, classes, h, w)`` float32 softmax scores."""
        return softmax(self.logits(batch, tta, zoom))

    def _torch_logits(self, padded: np.ndarray, zoom: float = 1.0) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        x = torch.from_numpy(padded)
        size = tuple(padded.shape[2:])
        with torch.inference_mode():
            cuda = self.device.startswith("cuda")
            if cuda:
                x = x.pin_memory().to(self.device, non_blocking=True)
            if zoom != 1:
                x = F.interpolate(x, size=zoomed_size(size, zoom), mode="bilinear", align_corners=False)
            if cuda:
                x = x.contiguous(memory_format=torch.channels_last)
                with torch.autocast("cuda", dtype=self._amp_dtype, enabled=self._amp_dtype is not None):
                    logits = self.model.module(x).float()
            else:
                logits = self.model.module(x)
            if zoom != 1:
                logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
            return logits.cpu().numpy()

    def classes(self, scores: np.ndarray, axis: int = 1) -> np.ndarray:
        """Argmax over the class axis of logits or probabilities, as the spec's class ids (uint8).

        Softmax keeps the order of the scores, so the pipeline takes the argmax of the
        logits and computes probabilities only when they are asked for.
        """
        return self.spec.class_ids[np.argmax(scores, axis=axis)]


def module_logits(
    module: Any, pixels: np.ndarray, valid: np.ndarray, spec: ModelSpec, tta: bool = False
) -> np.ndarray:
    """One image through a torch module the way ``Predictor`` feeds a tile: normalised by
    ``spec`` (invalid pixels at the mean), padded to the stride, resampled by ``spec.zoom``
    and, with ``tta``, averaged over the 8 views -> ``(classes, h, w)`` float32 logits.

    Runs where the module's weights are (a GPU during training, else the CPU): the
    validation of a training run and a self-training teacher score images with it.
    """
    import torch

    padded, h, w = pad_to_stride(normalise(pixels, valid, spec)[None])
    module.eval()
    device = next(module.parameters()).device

    def run(a: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return module(torch.from_numpy(a).to(device)).float().cpu().numpy()

    forward = zoomed(run, spec.zoom)
    logits = dihedral_mean(forward, padded) if tta else forward(padded)
    return logits[0, :, :h, :w]


def _linear_taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices and weights of linear resampling from ``n_in`` to ``n_out`` samples.

    Pixel centres map onto pixel centres (torch's ``align_corners=False``): output sample
    j reads input position (j + 0.5) * n_in / n_out - 0.5, clamped to the edge samples.
    """
    pos = np.maximum((np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5, 0.0)
    lo = np.minimum(np.floor(pos).astype(np.intp), n_in - 1)
    hi = np.minimum(lo + 1, n_in - 1)
    return lo, hi, (pos - lo).astype(np.float32)


def resize_bilinear(x: np.ndarray, height: int, width: int) -> np.ndarray:
    """``(n, c, h, w)`` -> ``(n, c, height, width)`` float32, bilinear, without antialiasing.

    The values of torch's ``F.interpolate(x, (height, width), mode="bilinear",
    align_corners=False)`` (to within 1e-4 of the inputs' range: torch computes the source
    positions in float32), in NumPy: ONNX Runtime workers have no torch. Each output reads
    two whole rows, then two whole columns of the transposed rows: gathering rows copies
    contiguous memory, gathering along the last axis does not (4 x 3 x 640^2 -> 800^2:
    0.08 s this way, 0.21 s gathering columns in place, 0.23 s as two matrix products).
    """
    if x.shape[2:] == (height, width):
        return np.asarray(x, dtype=np.float32)
    r0, r1, wr = _linear_taps(x.shape[2], height)
    c0, c1, wc = _linear_taps(x.shape[3], width)
    x = np.asarray(x, dtype=np.float32)
    rows = x[:, :, r0, :] * (1 - wr)[:, None] + x[:, :, r1, :] * wr[:, None]
    t = np.ascontiguousarray(rows.transpose(0, 1, 3, 2))
    cols = t[:, :, c0, :] * (1 - wc)[:, None] + t[:, :, c1, :] * wc[:, None]
    return np.ascontiguousarray(cols.transpose(0, 1, 3, 2))


def zoomed(
    forward: Callable[[np.ndarray], np.ndarray], zoom: float, stride: int = STRIDE
) -> Callable[[np.ndarray], np.ndarray]:
    """``forward`` on the batch resampled by ``zoom``, its scores resampled back.

    The zoomed size is rounded to a multiple of ``stride`` (so the model needs no
    padding; the scale is then ``zoom`` to within half a stride). Zoom 1 is ``forward``.
    """
    if zoom == 1:
        return forward

    def run(x: np.ndarray) -> np.ndarray:
        h, w = x.shape[2:]
        return resize_bilinear(forward(resize_bilinear(x, *zoomed_size((h, w), zoom, stride))), h, w)

    return run


def zoomed_size(size: tuple[int, ...], zoom: float, stride: int = STRIDE) -> tuple[int, int]:
    """``(h, w)`` scaled by ``zoom`` and rounded to whole multiples of ``stride``."""
    h, w = size
    return max(stride, round(h * zoom / stride) * stride), max(stride, round(w * zoom / stride) * stride)


# The 8 symmetries of the square: 4 rotations, each with and without a left-right flip.
DIHEDRAL = [(k, flip) for k in range(4) for flip in (False, True)]


def dihedral_mean(forward: Callable[[np.ndarray], np.ndarray], x: np.ndarray) -> np.ndarray:
    """Test-time augmentation: the mean of ``forward`` over the 8 rotations/flips of ``x``.

    Each view of ``(n, c, h, w)`` ``x`` is run and its output turned back before
    averaging. Land cover has no up or left, so the model should not either; the mean of
    the 8 views smooths what it learnt one way round (8x the cost; on the Amazon
    validation tiles +0.002 F1).
    """
    total: np.ndarray | None = None
    for k, flip in DIHEDRAL:
        view = np.rot90(x, k, axes=(2, 3))
        view = view[..., ::-1] if flip else view
        y = forward(np.ascontiguousarray(view))
        y = y[..., ::-1] if flip else y
        y = np.rot90(y, -k, axes=(2, 3))
        if total is None:
            total = np.array(y, dtype=np.float32)
        else:
            total += y
    assert total is not None
    total /= len(DIHEDRAL)
    return total


def softmax(logits: np.ndarray, axis: int = 1) -> np.ndarray:
    """Softmax over the class axis, float32."""
    z = logits - logits.max(axis=axis, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=axis, keepdims=True)
    return z.astype(np.float32, copy=False)
