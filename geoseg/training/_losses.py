"""Segmentation losses that ignore nodata labels (255): CE, Dice, focal, Tversky and sums."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from geoseg.errors import ConfigError

IGNORE = 255


LOSSES = ("ce", "dice", "focal", "tversky")

# Why these are not segmentation_models_pytorch.losses (0.6; tests/training/test_losses.py compares
# each on the same logits, a target with ignored pixels and class weights):
# - ce: torch's own cross_entropy. smp's SoftCrossEntropyLoss averages over every pixel,
#   ignored ones counted as zero (ours: over valid pixels only), and takes no class weights.
# - dice, tversky: equal to smp's DiceLoss(smooth=1) and TverskyLoss(alpha=0.3, beta=0.7,
#   smooth=1) (to float rounding) only while every class occurs in the batch: smp sets an
#   absent class's term to zero, ours keeps it (a prediction of an absent class still
#   costs), and random crops often miss a class. Swapping would change every trained model.
# - focal: smp's FocalLoss is one-vs-rest (a sigmoid per class), ours the softmax focal loss
#   on the cross entropy. smp's private softmax_focal_loss_with_logits gives ours bit for
#   bit without class weights, but has no ignore index, no weights, and is not public API.


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
                # with class weights the modulating factor is (1 - p**w)**2: pt comes from the
                # weighted cross entropy (kept: trained models depend on it)
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
