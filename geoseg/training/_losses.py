"""Segmentation losses that ignore nodata labels (255): CE, Dice, focal, Tversky and sums."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from geoseg.errors import ConfigError

IGNORE = 255


LOSSES = ("ce", "dice", "focal", "tversky")


def _soft_counts(logits: Any, target: Any) -> tuple[Any, Any, Any]:
    """Per-class soft true positives, false positives and false negatives over valid pixels."""
    import torch

    probs = torch.softmax(logits, dim=1)
    valid = (target != IGNORE).unsqueeze(1)
    onehot = torch.nn.functional.one_hot(target.clamp(max=logits.shape[1] - 1), logits.shape[1])
    onehot = onehot.permute(0, 3, 1, 2).to(probs.dtype) * valid
    probs = probs * valid
    dims = (0, 2, 3)
    tp = (probs * onehot).sum(dims)
    fp = (probs * (1 - onehot)).sum(dims)
    fn = ((1 - probs) * onehot).sum(dims)
    return tp, fp, fn


def make_loss(names: Sequence[str], class_weights: Sequence[float] | None = None) -> Any:
    """A callable ``loss(logits, target)`` summing the named losses."""
    import torch

    unknown = [n for n in names if n not in LOSSES]
    if unknown or not names:
        raise ConfigError(
            f"unknown loss {unknown or names}; choose from {', '.join(LOSSES)} (a list sums them)"
        )
    weight = torch.tensor(class_weights, dtype=torch.float32) if class_weights is not None else None

    def loss(logits: Any, target: Any) -> Any:
        total = logits.new_zeros(())
        w = weight.to(logits.device) if weight is not None else None
        for name in names:
            if name == "ce":
                total = total + torch.nn.functional.cross_entropy(
                    logits, target, weight=w, ignore_index=IGNORE
                )
            elif name == "focal":
                ce = torch.nn.functional.cross_entropy(
                    logits, target, weight=w, ignore_index=IGNORE, reduction="none"
                )
                pt = torch.exp(-ce)
                valid = target != IGNORE
                total = total + ((1 - pt) ** 2 * ce)[valid].mean() if valid.any() else total
            else:
                tp, fp, fn = _soft_counts(logits, target)
                a, b = (0.5, 0.5) if name == "dice" else (0.3, 0.7)  # Tversky: recall-leaning
                score = (tp + 1.0) / (tp + a * fp + b * fn + 1.0)
                total = total + (1 - score).mean()
        return total

    return loss
