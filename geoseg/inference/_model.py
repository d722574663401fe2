"""Segmentation models from a spec, and geoseg's checkpoint format.

A checkpoint is one ``.safetensors`` file: the weights, plus a JSON ``ModelSpec`` in the
file's string metadata (architecture, encoder, band names, per-band normalisation,
classes with names and colours, provenance). safetensors holds plain tensors only, so
loading a checkpoint never unpickles anything and cannot run code."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from geoseg import __version__
from geoseg.classes import ClassInfo, default_colour
from geoseg.errors import MissingFileError, ModelError, first_line
from geoseg.files import file_sha256

FORMAT = "geoseg-checkpoint/1"


ARCHITECTURES = (
    "Unet",
    "UnetPlusPlus",
    "FPN",
    "PSPNet",
    "DeepLabV3",
    "DeepLabV3Plus",
    "Linknet",
    "MAnet",
    "PAN",
    "UPerNet",
    "Segformer",
    "FCN",  # geoseg.fcn: the plain FCN-8s head of Long et al. on an smp encoder
)


@dataclass(frozen=True)
class ValueDomain:
    """The input values a model was trained on, so an input on another scale is caught.

    ``dtype`` is the training rasters' data type; ``low``/``high`` are robust per-band
    percentiles (1st and 99th) of their valid pixels, in the rasters' own units;
    ``scale``/``offset`` convert those units to physical values (``value * scale +
    offset``, e.g. 0.0001 for Sentinel-2 reflectance x 10000) when the rasters say so;
    ``pixel_size_m`` is the training pixels' size in metres.
    """

    dtype: str
    low: tuple[float, ...]
    high: tuple[float, ...]
    pixel_size_m: float | None = None
    scale: float | None = None
    offset: float | None = None

    def describe(self) -> str:
        """One line: ``uint8, 1st-99th percentiles 12..240 (per band: ...), 10 m pixels``."""
        lo, hi = min(self.low), max(self.high)
        px = f", {self.pixel_size_m:.3g} m pixels" if self.pixel_size_m else ""
        sc = f", value x {self.scale:g} + {self.offset or 0:g} = physical" if self.scale else ""
        return f"{self.dtype} values, 1st-99th percentiles {lo:.4g}..{hi:.4g}{sc}{px}"


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild a model and feed it pixels the way it was trained."""

    arch: str
    encoder: str
    bands: tuple[str, ...]
    classes: tuple[ClassInfo, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)  # extra smp constructor arguments
    provenance: dict[str, Any] = field(default_factory=dict)
    # Inputs are resampled by this factor before the model and its scores back after it
    # (inference.zoomed): the scale the model maps best at, or the ratio of its training
    # resolution to a coarser image's. 1 = the image's own pixels.
    zoom: float = 1.0
    # What the training inputs were (dtype, value range, pixel size); None: not recorded
    # (checkpoints made before it was), the "domain unknown" that predict cannot check
    domain: ValueDomain | None = None

    def __post_init__(self) -> None:
        n = len(self.bands)
        if n == 0:
            raise ModelError("a model needs at least one band")
        if len(self.mean) != n or len(self.std) != n:
            raise ModelError(
                f"normalisation has {len(self.mean)} means and {len(self.std)} stds for {n} bands"
            )
        if any(s <= 0 for s in self.std):
            raise ModelError("normalisation std must be positive")
        check_zoom(self.zoom)
        if self.domain is not None and not len(self.domain.low) == len(self.domain.high) == n:
            raise ModelError(f"value domain has {len(self.domain.low)} bands for {n} bands")
        if len(self.classes) < 2:
            raise ModelError("a segmentation model needs at least 2 classes")
        ids = [c.id for c in self.classes]
        if len(set(ids)) != len(ids) or not all(0 <= i < 255 for i in ids):
            raise ModelError(f"class ids must be unique and in 0..254, got {ids}")

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def class_ids(self) -> np.ndarray:
        """Output channel k of the model is class ``class_ids[k]``."""
        return np.array([c.id for c in self.classes], dtype=np.uint8)

    def to_json(self) -> str:
        d = asdict(self)
        d["classes"] = [{"id": c.id, "name": c.name, "colour": list(c.colour)} for c in self.classes]
        return json.dumps(d, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelSpec:
        d = json.loads(text)
        d["classes"] = tuple(
            ClassInfo(int(c["id"]), str(c["name"]), tuple(c["colour"])) for c in d["classes"]
        )
        for key in ("bands", "mean", "std"):
            d[key] = tuple(d[key])
        if "zoom" in d:  # absent from checkpoints made before zoom existed: 1
            d["zoom"] = float(d["zoom"])
        dom = d.get("domain")  # absent from checkpoints made before it existed: unknown
        if dom is not None:
            d["domain"] = ValueDomain(**{**dom, "low": tuple(dom["low"]), "high": tuple(dom["high"])})
        return cls(**d)


MAX_ZOOM = 8.0


def check_zoom(zoom: float, what: str = "zoom") -> float:
    """``zoom`` if it is a positive factor of at most ``MAX_ZOOM`` (64x the pixels)."""
    if not 0 < zoom <= MAX_ZOOM:
        raise ModelError(f"{what} must be in (0, {MAX_ZOOM:g}], got {zoom}")
    return float(zoom)


def canonical_arch(arch: str) -> str:
    """``"unet"`` -> ``"Unet"``; unknown names raise a ModelError listing the known ones."""
    for name in ARCHITECTURES:
        if name.lower() == arch.lower().replace("-", "").replace("_", ""):
            return name
    raise ModelError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}")


def check_encoder(encoder: str) -> None:
    from geoseg.inference._compat import import_smp

    smp = import_smp()

    if encoder.startswith("tu-"):
        import timm

        if not timm.list_models(encoder[3:]):
            raise ModelError(f"unknown timm encoder {encoder!r}")
        return
    names = smp.encoders.get_encoder_names()
    if encoder not in names:
        close = [n for n in names if n.split("_")[0].split("-")[0] in encoder] or names[:8]
        raise ModelError(
            f"unknown encoder {encoder!r}; e.g. {', '.join(close[:8])}, or a timm encoder as tu-NAME"
        )


def build_model(spec: ModelSpec) -> Any:
    """The torch module for ``spec`` with random weights (no download: encoder_weights=None)."""
    from geoseg.inference._compat import import_smp

    smp = import_smp()

    arch = canonical_arch(spec.arch)
    check_encoder(spec.encoder)
    if arch == "FCN":  # not in smp: geoseg's own head on an smp encoder
        from geoseg.inference._fcn import build_fcn

        try:
            return build_fcn(spec.encoder, len(spec.bands), spec.n_classes, **spec.kwargs)
        except (TypeError, ValueError) as exc:
            raise ModelError(f"cannot build FCN with encoder {spec.encoder}: {exc}") from exc
    try:
        return smp.create_model(
            arch,
            encoder_name=spec.encoder,
            encoder_weights=None,
            in_channels=len(spec.bands),
            classes=spec.n_classes,
            **spec.kwargs,
        )
    except (KeyError, ValueError, TypeError, RuntimeError) as exc:
        raise ModelError(f"cannot build {arch} with encoder {spec.encoder}: {exc}") from exc


def check_runs(module: Any, spec: ModelSpec, size: int = 256) -> None:
    """One forward pass of a small zero batch, before anything is trained or written.

    smp builds some settings it cannot run: an ``scse`` decoder attention on a decoder
    stage of under 16 channels has a zero-channel convolution and fails only at the
    first forward pass, as a traceback from deep inside torch. 256 px: PAN pools its
    1/32 feature map by 8 again and needs at least that.
    """
    import torch

    was_training = module.training
    module.eval()
    try:
        with torch.inference_mode():
            module(torch.zeros(1, len(spec.bands), size, size))
    except RuntimeError as exc:
        raise ModelError(
            f"{spec.arch}/{spec.encoder} with {spec.kwargs or 'default settings'} builds but cannot run ({first_line(exc)}); change the model settings"
        ) from exc
    finally:
        module.train(was_training)


def make_spec(
    arch: str = "Unet",
    encoder: str = "resnet18",
    bands: int | list[str] = 4,
    classes: int | list[ClassInfo] = 2,
    mean: list[float] | None = None,
    std: list[float] | None = None,
    **kwargs: Any,
) -> ModelSpec:
    """A spec with defaults: bands ``band1..N``, classes ``class0..K-1``, mean 0 / std 1."""
    band_names = [f"band{i + 1}" for i in range(bands)] if isinstance(bands, int) else list(bands)
    if isinstance(classes, int):
        class_list = [ClassInfo(i, f"class{i}", default_colour(i)) for i in range(classes)]
    else:
        class_list = list(classes)
    n = len(band_names)
    return ModelSpec(
        canonical_arch(arch),
        encoder,
        tuple(band_names),
        tuple(class_list),
        tuple(mean or [0.0] * n),
        tuple(std or [1.0] * n),
        dict(kwargs),
    )


def save_checkpoint(path: str | os.PathLike[str], spec: ModelSpec, model: Any, half: bool = False) -> Path:
    """Write weights + spec to one safetensors file (atomically).

    ``half`` stores floating-point weights as float16, halving the file (shipped models
    must stay small); loading casts them back to the model's float32 parameters.
    """
    import torch
    from safetensors.torch import save_file

    from geoseg.files import atomic_output

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if half:
        state = {k: v.half() if v.dtype == torch.float32 else v for k, v in state.items()}
    meta = {"format": FORMAT, "geoseg_version": __version__, "spec": spec.to_json()}
    with atomic_output(path) as tmp:
        save_file(state, str(tmp), metadata=meta)
    return Path(path)


def rewrite_spec(
    path: str | os.PathLike[str], spec: ModelSpec, out: str | os.PathLike[str] | None = None
) -> Path:
    """Write ``path``'s weights, byte for byte, with ``spec`` as their spec into ``out``
    (default: ``path`` itself, atomically): e.g. a value domain recorded after training."""
    from safetensors import safe_open
    from safetensors.numpy import save_file

    from geoseg.files import atomic_output

    read_spec(path)  # a geoseg checkpoint
    with safe_open(str(path), framework="np") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118  (safe_open is not a mapping)
        meta = dict(f.metadata() or {})
    meta["spec"] = spec.to_json()
    target = Path(out) if out is not None else Path(path)
    with atomic_output(target) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    return target


@dataclass
class LoadedModel:
    spec: ModelSpec
    module: Any
    path: Path
    sha256: str


def read_spec(path: str | os.PathLike[str]) -> ModelSpec:
    """The spec of a checkpoint, without loading the weights."""
    from safetensors import safe_open

    p = _existing(path)
    try:
        with safe_open(str(p), framework="np") as f:  # metadata only: no torch import
            meta = f.metadata() or {}
    except Exception as exc:  # safetensors raises its own SafetensorError and OSError
        raise ModelError(_not_a_checkpoint(p, exc)) from exc
    if meta.get("format") != FORMAT or "spec" not in meta:
        raise ModelError(
            f"{p}: a safetensors file but not a geoseg checkpoint (no geoseg spec in its metadata)"
        )
    try:
        return ModelSpec.from_json(meta["spec"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{p}: geoseg checkpoint with an invalid spec ({exc})") from exc


def load_checkpoint(path: str | os.PathLike[str]) -> LoadedModel:
    """Rebuild the model of a checkpoint and load its weights (no pickle involved)."""
    from safetensors.torch import load_file

    p = resolve_model_path(path)
    spec = read_spec(p)
    module = build_model(spec)
    state = load_file(str(p))
    missing, unexpected = module.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ModelError(
            f"{p}: weights do not fit {spec.arch}/{spec.encoder} (missing {len(missing)}, unexpected {len(unexpected)})"
        )
    module.eval()
    return LoadedModel(spec, module, p, file_sha256(p))


def _not_a_checkpoint(p: Path, exc: Exception) -> str:
    head = p.read_bytes()[:8] if p.is_file() else b""
    if head.startswith(b"PK") or head[:1] == b"\x80":
        return f"{p}: a pickled torch file; geoseg loads only safetensors checkpoints (no pickle). Convert it with `geoseg model init` + weights, or re-save with safetensors"
    return f"{p}: not a geoseg checkpoint ({exc})"


def _existing(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    if not p.is_file():
        raise MissingFileError("no such model file", p)
    return p


def resolve_model_path(name_or_path: str | os.PathLike[str]) -> Path:
    """A checkpoint path, or the name of a model entry of the catalog (e.g. ``forest-s2-rgb``)."""
    from geoseg.data import resolve

    return resolve(name_or_path, "model").path


def init_checkpoint(out: str | os.PathLike[str], spec: ModelSpec, seed: int = 0) -> Path:
    """An untrained checkpoint with seeded weights (tests, benchmarks, a starting point)."""
    import torch

    torch.manual_seed(seed)
    model = build_model(spec)
    check_runs(model, spec)
    spec = ModelSpec(**{**spec.__dict__, "provenance": {**spec.provenance, "trained": False, "seed": seed}})
    return save_checkpoint(out, spec, model)


def describe(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A summary of a checkpoint for ``geoseg model info``."""
    p = resolve_model_path(path)
    spec = read_spec(p)
    from safetensors import safe_open

    n_params = 0
    with safe_open(str(p), framework="np") as f:
        for k in f.keys():  # noqa: SIM118  (safe_open is not a mapping)
            n_params += int(np.prod(f.get_slice(k).get_shape()))
    return {
        "path": str(p),
        "sha256": file_sha256(p),
        "arch": spec.arch,
        "encoder": spec.encoder,
        "bands": list(spec.bands),
        "mean": list(spec.mean),
        "std": list(spec.std),
        "classes": [{"id": c.id, "name": c.name, "colour": list(c.colour)} for c in spec.classes],
        "parameters": n_params,
        "kwargs": spec.kwargs,
        "zoom": spec.zoom,
        "domain": asdict(spec.domain) if spec.domain is not None else None,
        "provenance": spec.provenance,
    }
