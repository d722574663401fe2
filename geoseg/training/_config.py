"""A training config: the model, the data, the schedule; checked whole before any work."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from geoseg.errors import (
    ConfigError,
    ModelError,
    refuse_unknown_keys,
)
from geoseg.inference import check_zoom
from geoseg.training._pseudo import PseudoLabelConfig


@dataclass(frozen=True)
class TrainConfig:
    """One training run. Built from YAML with ``from_dict``: unknown keys are refused."""

    out: str
    dataset: str | None = None  # a labelset of the catalog
    synthetic: dict[str, Any] | None = None  # or a synthetic scene: SceneSpec fields
    arch: str = "Unet"
    encoder: str = "resnet18"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    bands: list[str] | None = None
    chip_size: int = 256
    batch_size: int = 8
    epochs: int = 20
    steps_per_epoch: int = 15
    lr: float = 1e-3
    weight_decay: float = 1e-4
    loss: list[str] = field(default_factory=lambda: ["ce", "dice"])
    class_weights: str | list[float] | None = None  # None, "balanced" or a list
    flips: bool = True
    brightness: float = 0.0  # +- relative brightness jitter
    # +- per-band gain and offset (in standard deviations) jitter: scenes of one label set
    # differ in radiometry (sun, haze, soil colour), and a model that saw each band shifted
    # on its own relies less on one scene's colour balance
    colour: float = 0.0
    scale: float = 0.0  # +- relative zoom jitter
    holdout: str = "bottom-right"  # single scenes: which quarter validates
    # the zoom the checkpoint is made with (ModelSpec.zoom): validation and predict resample
    # each image by it; training chips stay at the images' own pixels
    zoom: float = 1.0
    patience: int = 6
    # Exponential moving average of the weights (e.g. 0.99 per step), validated and saved
    # instead of the raw weights: it smooths the epoch-to-epoch swings of validation that a
    # high one-cycle rate causes on small label sets. 0 turns it off.
    ema: float = 0.0
    seed: int = 0
    threads: int | None = None
    # auto: a CUDA GPU when there is one (float32, so a run is the same recipe as on the
    # CPU, not the same bits), else the CPU
    device: str = "auto"
    half: bool = True  # store weights as float16 (half the file, same predictions in practice)
    split_train: str = "training"
    split_val: str = "validation"
    # self-training on an image-only split: {teacher, split, confidence, tta} (geoseg.pseudo)
    pseudo_labels: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        # checked with the rest of the config, before any data is read or model built
        for key, (kind, low, high) in _SETTINGS.items():
            _check_setting(key, getattr(self, key), kind, low, high)
        if self.pseudo_labels is not None:
            PseudoLabelConfig.from_dict(self.pseudo_labels)
        if not 0.0 <= self.ema < 1.0:  # an open upper bound, which the table does not express
            raise ConfigError(f"ema must be in [0, 1), got {self.ema}")
        try:
            check_zoom(self.zoom)  # the checkpoint's rule, raised as the config's error
        except ModelError as exc:
            raise ConfigError(str(exc)) from exc

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "config") -> TrainConfig:
        refuse_unknown_keys(d, (f.name for f in fields(cls)), source)
        if "out" not in d:
            raise ConfigError(f"{source}: missing key 'out' (where to write the checkpoint)")
        if (d.get("dataset") is None) == (d.get("synthetic") is None):
            raise ConfigError(f"{source}: give exactly one of 'dataset' (a catalog label set) or 'synthetic'")
        if d.get("pseudo_labels") is not None:
            PseudoLabelConfig.from_dict(d["pseudo_labels"], source)  # names the file in the error
        try:
            return cls(**d)
        except (TypeError, ConfigError) as exc:  # a setting's type or range: said with the file
            raise ConfigError(f"{source}: {exc}") from exc


# key: (type, lowest, highest); None: no bound. Keys left out are checked where they are used
# (arch and encoder by smp, loss and class_weights by the loss, holdout by the split); ema's
# open upper bound and zoom's range by TrainConfig.__post_init__.
_SETTINGS: dict[str, tuple[type, float | None, float | None]] = {
    "out": (str, None, None), "dataset": (str, None, None), "arch": (str, None, None),
    "encoder": (str, None, None), "chip_size": (int, 16, None), "batch_size": (int, 1, None),
    "epochs": (int, 1, None), "steps_per_epoch": (int, 1, None), "lr": (float, 1e-12, None),
    "weight_decay": (float, 0, None), "flips": (bool, None, None), "brightness": (float, 0, 1),
    "colour": (float, 0, None), "scale": (float, 0, 0.9), "holdout": (str, None, None),
    "zoom": (float, None, None), "patience": (int, 1, None), "ema": (float, None, None), "seed": (int, None, None),
    "threads": (int, 1, None), "device": (str, None, None), "half": (bool, None, None),
    "split_train": (str, None, None), "split_val": (str, None, None),
}  # fmt: skip


_OPTIONAL = {"dataset", "threads"}  # None: a synthetic scene; torch's own thread count


def _check_setting(key: str, value: Any, kind: type, low: float | None, high: float | None) -> None:
    """One training setting's type and range (None: the default, where a key may be left out)."""
    if value is None:
        if key in _OPTIONAL:
            return
        raise ConfigError(f"{key} must be given a value")
    names = {int: "a whole number", float: "a number", bool: "true or false", str: "a string"}
    ok = (
        isinstance(value, bool)
        if kind is bool
        else isinstance(value, kind if kind is not float else (int, float)) and not isinstance(value, bool)
    )
    if not ok:
        raise ConfigError(f"{key} must be {names[kind]}, got {value!r}")
    if low is not None and value < low:
        raise ConfigError(f"{key} must be at least {low:g}, got {value!r}")
    if high is not None and value > high:
        raise ConfigError(f"{key} must be at most {high:g}, got {value!r}")


def load_config(path: str | os.PathLike[str]) -> TrainConfig:
    """A training config from YAML (a workflow file's ``train`` section, or the whole file)."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: no such config file")
    try:
        doc = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML ({exc})") from exc
    if not isinstance(doc, dict):
        raise ConfigError(f"{p}: expected a mapping of settings")
    body = doc.get("train", doc)
    body = {k: v for k, v in body.items() if k not in ("kind", "description")}
    return TrainConfig.from_dict(body, str(p))
