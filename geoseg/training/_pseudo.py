"""Self-training: pseudo-labels from a teacher model on a label set's unlabelled images.

A label set's validation tiles can come from places its training tiles do not show (the
Amazon set's weak tiles are secondary vegetation and pasture mosaics). Its unlabelled
split often does show them. A teacher trained on the labelled split predicts those images
(mean of the 8 rotations/flips); the pixels it is confident about become labels, the rest
are ignored, and the student trains on both. Validation images are never pseudo-labelled,
and an unlabelled image byte-identical to a labelled one is left out (the Amazon
``test/0.tiff`` is a training tile). Measured on the Amazon set, it did not help (model
card of ``forest-s2-rgb``): the teacher's errors there are the bias it was meant to fix."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from geoseg.errors import ConfigError
from geoseg.files import file_sha256
from geoseg.options import Options, option

IGNORE = 255


class PseudoLabelConfig(Options):
    """The ``pseudo_labels`` section of a training config."""

    what: ClassVar[str] = "pseudo_labels"

    teacher: str = option(
        help="The teacher: a checkpoint path or catalog model name, trained without the validation split."
    )
    split: str = option("test", "An image-only split of the same label set.")
    confidence: float = option(0.9, "Pixels whose teacher probability is below are ignored.", ge=0.5, lt=1)
    tta: bool = option(True, "The teacher predicts the mean of the 8 rotations/flips.")


def teacher_labels(
    teacher: Any, image: np.ndarray, valid: np.ndarray, confidence: float, tta: bool
) -> np.ndarray:
    """Class indices where the teacher's probability reaches ``confidence``, 255 elsewhere.

    ``teacher``: a loaded checkpoint; it labels at its own zoom, as it predicts.
    """
    from geoseg.inference import module_logits, softmax

    prob = softmax(module_logits(teacher.module, image, valid, teacher.spec, tta), axis=0)
    labels = prob.argmax(0).astype(np.uint8)
    labels[(prob.max(0) < confidence) | ~valid] = IGNORE
    return labels


def pseudo_samples(
    cfg: PseudoLabelConfig,
    images: list[Path],
    labelled: list[Path],
    n_classes: int,
    band_names: list[str] | None,
    bands: Sequence[str] | None,
) -> tuple[list[Any], dict[str, Any]]:
    """Training samples from ``images`` labelled by the teacher, and their provenance.

    ``labelled``: the label set's labelled images (training and validation); unlabelled
    images with the same bytes are skipped.
    """
    from geoseg.inference import load_checkpoint
    from geoseg.raster import open_raster
    from geoseg.training._samples import Sample

    teacher = load_checkpoint(cfg.teacher)
    if teacher.spec.n_classes != n_classes:
        raise ConfigError(
            f"{teacher.path.name}: the teacher predicts {teacher.spec.n_classes} classes, the label set has {n_classes}"
        )
    known = {file_sha256(p) for p in labelled}
    samples, skipped, kept, total = [], [], 0, 0
    for path in images:
        if file_sha256(path) in known:
            skipped.append(path.name)
            continue
        src = open_raster(path, band_names=band_names, bands=bands, require_crs=False)
        if len(src.band_names) != len(teacher.spec.bands):
            raise ConfigError(
                f"{path}: {len(src.band_names)} bands, but the teacher {teacher.path.name} expects {len(teacher.spec.bands)}"
            )
        pixels, valid = src.read()
        image = pixels.astype(np.float32)
        labels = teacher_labels(teacher, image, valid, cfg.confidence, cfg.tta)
        kept += int((labels != IGNORE).sum())
        total += int(valid.sum())
        samples.append(Sample(image, valid, labels, f"pseudo:{path.name}"))
    if not samples:
        raise ConfigError(f"pseudo_labels: split {cfg.split!r} has no image that is not also labelled")
    provenance = {
        "teacher": teacher.path.name, "teacher_sha256": teacher.sha256, "split": cfg.split,
        "confidence": cfg.confidence, "tta": cfg.tta, "images": len(samples), "skipped_duplicates": skipped,
        "labelled_fraction": round(kept / max(total, 1), 4),
    }  # fmt: skip
    return samples, provenance
