"""A training config: the model, the data, the schedule; checked whole before any work.

:class:`TrainConfig` is an options model (:mod:`geoseg.options`): each key is declared once
with its default, range and help, unknown keys are refused (with the nearest known one
suggested) and a bad value is one line naming the key as the caller wrote it: the
keyword from Python, ``train.epochs`` with the file named from YAML (:func:`load_config`).
What needs more than one key or another package's rule (a data source, the architecture
and encoder, the zoom bound of the checkpoint format) is a validator of the same model,
so a typo is said before any data is read or model built.
"""

from __future__ import annotations

import inspect
import os
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, Field, ValidationInfo, field_validator

from geoseg.errors import ConfigError, GeosegError, first_line
from geoseg.options import KEYWORDS, Caller, InFile, Labels, Names, Options, option, suggest
from geoseg.training._losses import LOSSES
from geoseg.training._pseudo import PseudoLabelConfig


def _zoom(value: float) -> float:
    """A zoom factor within the checkpoint format's bound (``geoseg.inference.check_zoom``)."""
    from geoseg.inference import check_zoom

    # The bound is the checkpoint's (MAX_ZOOM in geoseg.inference): asked of check_zoom, not
    # copied here, so a training config, evaluate and predict refuse the same factors.
    try:
        return check_zoom(value, "")
    except GeosegError as exc:  # "must be in (0, 8], got 0": the caller puts its key first
        raise ValueError(str(exc).strip()) from None


#: A zoom factor: the model sees each image resampled by it.
Zoom = Annotated[float, AfterValidator(_zoom)]

Holdout = Literal["top-left", "top-right", "bottom-left", "bottom-right"]


class TrainConfig(Options):
    """One training run (``geoseg train FILE``, a workflow's train step, or Python).

    Build it with :meth:`build` (errors name the keyword), :func:`load_config` (a YAML
    file: errors name the file and key) or :meth:`from_dict`.
    """

    what: ClassVar[str] = "a training config"

    out: str = option(help="Where to write the checkpoint.")
    dataset: str | None = option(None, "A label set of the catalog (or give synthetic).")
    # validate_default: the dataset-or-synthetic rule below runs when neither is given too
    synthetic: Annotated[dict[str, Any] | None, Field(validate_default=True)] = option(
        None,
        "Or a synthetic scene: SceneSpec fields (height, width, seed, bands...); its "
        "bottom-right quarter validates.",
    )
    arch: str = option("Unet", "smp architecture (Unet, FPN, DeepLabV3Plus...).")
    encoder: str = option("resnet18", "smp encoder, or tu-NAME for timm.")
    model_kwargs: dict[str, Any] = option(
        {},
        "Passed to smp, e.g. decoder_channels, decoder_attention_type: scse; a model that "
        "builds but cannot run is refused before training.",
    )
    bands: Labels | None = option(None, "Band names or 1-based indices to train on [default: all].")
    chip_size: int = option(256, "Training chip size in pixels.", ge=16)
    batch_size: int = option(8, "Chips per training step.", ge=1)
    epochs: int = option(20, "Epochs; validation runs after each.", ge=1)
    steps_per_epoch: int = option(15, "Training steps per epoch.", ge=1)
    lr: float = option(1e-3, "Peak learning rate of the one-cycle schedule (AdamW).", gt=0)
    weight_decay: float = option(1e-4, "AdamW weight decay.", ge=0)
    loss: Names = option(("ce", "dice"), f"Losses, summed: any of {', '.join(LOSSES)}.")
    class_weights: Literal["balanced"] | list[float] | None = option(
        None,
        "Class weights: balanced (inverse square root of each class's frequency) or a list "
        "of numbers; with ce, weighted cross-entropy.",
    )
    flips: bool = option(True, "Augment with flips and 90-degree rotations.")
    brightness: float = option(0.0, "Relative brightness jitter (+-).", ge=0, le=1)
    # Scenes of one label set differ in radiometry (sun, haze, soil colour); a model that
    # saw each band shifted on its own relies less on one scene's colour balance.
    colour: float = option(0.0, "Per-band gain and offset jitter (+-, in standard deviations).", ge=0)
    scale: float = option(0.0, "Relative zoom jitter of the chips (+-).", ge=0, le=0.9)
    holdout: Holdout = option("bottom-right", "Single scenes: which quarter validates.")
    zoom: Zoom = option(
        1.0,
        "The zoom the checkpoint is made with: validation and predict resample each image by "
        "it; training chips stay at the images' own pixels.",
    )
    patience: int = option(6, "Epochs without a better validation mIoU before training stops.", ge=1)
    # It smooths the epoch-to-epoch swings of validation that a high one-cycle rate causes on
    # small label sets.
    ema: float = option(
        0.0,
        "Exponential moving average of the weights (e.g. 0.99 per step), validated and saved "
        "instead of the raw weights; 0 turns it off.",
        ge=0,
        lt=1,
    )
    # numpy's seeds are unsigned 32-bit numbers
    seed: int = option(0, "Random seed of the chips, the augmentation and the weights.", ge=0, le=2**32 - 1)
    threads: int | None = option(None, "CPU threads for torch [default: torch's].", ge=1)
    # auto trains in float32 on a GPU too, so a run is the same recipe as on the CPU (not
    # the same bits)
    device: str = option("auto", "auto (a CUDA GPU when there is one, else the CPU), cpu or cuda[:N].")
    half: bool = option(True, "Store the weights as float16 (half the file, same predictions in practice).")
    split_train: str = option("training", "The label set's split that trains.")
    split_val: str = option("validation", "The label set's split that validates.")
    pseudo_labels: PseudoLabelConfig | None = option(
        None,
        "Self-training on an image-only split: teacher, split, confidence, tta; the teacher's "
        "confident pixels become labels.",
    )

    @field_validator("out")
    @classmethod
    def _not_shipped(cls, value: str) -> str:
        from geoseg.training._ship import is_shipped, models_dir

        if is_shipped(value):
            raise ValueError(
                f"must not be inside the shipped models ({models_dir()}), got {value}; train into an "
                "output folder, then ship the checkpoint with `geoseg model ship CHECKPOINT NAME`"
            )
        return value

    @field_validator("synthetic")
    @classmethod
    def _one_source(cls, value: dict[str, Any] | None, info: ValidationInfo) -> dict[str, Any] | None:
        if "dataset" in info.data:  # absent: dataset itself was refused, said first
            if value is None and info.data["dataset"] is None:
                raise ValueError("or dataset must be given: a synthetic scene or a label set of the catalog")
            if value is not None and info.data["dataset"] is not None:
                raise ValueError(
                    "and dataset are both given; give one: a synthetic scene or a catalog label set"
                )
        if value is not None:
            _check_scene(value)
        return value

    @field_validator("arch")
    @classmethod
    def _known_arch(cls, value: str) -> str:
        from geoseg.inference import ARCHITECTURES, canonical_arch

        try:
            canonical_arch(value)  # "unet" is Unet; the value is kept as written
        except GeosegError:
            raise ValueError(f"must be one of {', '.join(ARCHITECTURES)}, got {value!r}") from None
        return value

    @field_validator("encoder")
    @classmethod
    def _known_encoder(cls, value: str) -> str:
        from geoseg.inference import check_encoder

        try:
            check_encoder(value)  # imports smp (seconds), still well before the data is read
        except GeosegError as exc:
            raise ValueError(f"must name a known encoder: {exc}") from None
        return value

    @field_validator("loss")
    @classmethod
    def _known_losses(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [n for n in value if n not in LOSSES]
        if unknown or not value:
            got = unknown[0] if unknown else ""
            raise ValueError(
                f"must be a list of {', '.join(LOSSES)} (summed), got {got!r}{suggest(got, LOSSES)}"
            )
        return value

    @field_validator("class_weights", mode="before")
    @classmethod
    def _weights(cls, value: Any) -> Any:
        # said in one line here: the union's own errors would be one per branch
        numbers = isinstance(value, list) and all(
            isinstance(w, int | float) and not isinstance(w, bool) for w in value
        )
        if value is None or value == "balanced" or numbers:
            return value
        raise ValueError(f"must be null, 'balanced' or a list of numbers, got {value!r}")

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str | os.PathLike[str] | None = None) -> TrainConfig:
        """The config from a mapping; errors start with ``source`` (a file, or a file and
        a step) when it is given, else name the keys as Python keywords."""
        return cls.build(d, InFile(source) if source is not None else KEYWORDS)


def _check_scene(params: dict[str, Any]) -> None:
    """A synthetic scene's keys and values, as ``geoseg.data.SceneSpec`` takes them."""
    from geoseg.data import SceneSpec

    # its keys come from the class itself, so a new SceneSpec field needs no change here
    known = inspect.signature(SceneSpec).parameters
    for key in params:
        if key not in known:
            raise ValueError(
                f"has unknown key {key!r}{suggest(key, list(known))}; known keys: {', '.join(known)}"
            )
    for key, p in known.items():
        if p.default is inspect.Parameter.empty and key not in params:
            raise ValueError(f"is missing key {key!r}")
    try:
        SceneSpec(**params)  # its own rules (size, band count...), said as this key's problem
    except (TypeError, ValueError) as exc:
        raise ValueError(f"is not a valid scene: {first_line(exc)}") from None


def load_config(path: str | os.PathLike[str], base: str | os.PathLike[str] | None = None) -> TrainConfig:
    """A training config from YAML: a file's ``train`` section, or the whole file.

    Read by the one strict loader (``geoseg.yamlfile.read_yaml``: duplicate keys refused,
    merge keys work); errors name the file and the key (``train.epochs``). ``base``: the
    folder a relative ``out`` is in (a workflow's output folder); None: the current one.
    """
    from geoseg.yamlfile import read_yaml

    doc = read_yaml(path)
    if not isinstance(doc, dict):
        raise ConfigError("expected a mapping of training settings", path)
    caller: Caller = InFile(path, "train") if "train" in doc else InFile(path)
    body = doc.get("train", doc)
    if not isinstance(body, dict):
        raise ConfigError("train must be a mapping of training settings", path)
    # a workflow-style section may say what it is; neither key is a training setting
    body = {k: v for k, v in body.items() if k not in ("kind", "description")}
    return TrainConfig.build(in_folder(body, base), caller)


def in_folder(body: dict[str, Any], base: str | os.PathLike[str] | None) -> dict[str, Any]:
    """``body`` with a relative ``out`` put inside ``base`` (unchanged when base is None)."""
    out = body.get("out")
    if base is None or not isinstance(out, str) or os.path.isabs(os.path.expanduser(out)):
        return body
    return {**body, "out": os.path.join(os.fspath(base), out)}
