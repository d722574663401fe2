"""A labelled image ready to train on, and a data set of them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from geoseg.classes import ClassInfo


@dataclass
class Sample:
    """An image in memory (raw values) with labels 0..K-1 and 255 where unknown."""

    image: np.ndarray  # (bands, h, w) float32, raw
    valid: np.ndarray  # (h, w) bool
    labels: np.ndarray  # (h, w) uint8
    name: str = ""
    forbidden: tuple[int, int, int, int] | None = None  # (r0, r1, c0, c1) chips must avoid


@dataclass
class Dataset:
    train: list[Sample]
    val: list[Sample]
    classes: list[ClassInfo]
    bands: list[str]
    provenance: dict[str, Any]
    #: what the images were before they became float32 samples: their data type, their
    #: pixel size in metres and the scale/offset to physical values they declare (the
    #: checkpoint records them as its value domain)
    dtype: str = "float32"
    pixel_size_m: float | None = None
    scale: float | None = None
    offset: float | None = None
