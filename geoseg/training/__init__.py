"""Training: label data, chips, losses, the trainer, metrics and evaluation."""

from __future__ import annotations

from geoseg.training._config import TrainConfig, Zoom, in_folder, load_config
from geoseg.training._data import (
    IGNORE,
    ChipSampler,
    Dataset,
    Sample,
    load_labelset,
    rasterise_polygons,
    read_mask,
)
from geoseg.training._domain import record_domain
from geoseg.training._evaluate import EvaluateOptions, evaluate
from geoseg.training._metrics import PaperMetric, Scores, confusion
from geoseg.training._pseudo import PseudoLabelConfig, pseudo_samples
from geoseg.training._ship import Shipped, is_shipped, models_dir, ship_model
from geoseg.training._trainer import Trainer, TrainResult, train

__all__ = [
    "IGNORE",
    "ChipSampler",
    "Dataset",
    "EvaluateOptions",
    "PaperMetric",
    "PseudoLabelConfig",
    "Sample",
    "Scores",
    "Shipped",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "Zoom",
    "confusion",
    "evaluate",
    "in_folder",
    "is_shipped",
    "load_config",
    "load_labelset",
    "models_dir",
    "pseudo_samples",
    "rasterise_polygons",
    "read_mask",
    "record_domain",
    "ship_model",
    "train",
]
