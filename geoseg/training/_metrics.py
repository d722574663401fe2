"""Segmentation metrics from a confusion matrix.

Everything derives from one integer confusion matrix (rows: truth, columns: prediction),
accumulated over tiles, so pooled metrics over a whole split never hold all pixels. The
per-tile "paper" metric of John & Zhang (2022), used for the Amazon benchmark, is kept
separate because it averages per tile instead of pooling."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


def confusion(truth: np.ndarray, pred: np.ndarray, n: int, ignore: int = 255) -> np.ndarray:
    """``n x n`` counts of (truth, prediction) over pixels whose truth and prediction are valid."""
    t = np.asarray(truth).ravel()
    p = np.asarray(pred).ravel()
    keep = (t != ignore) & (p != ignore) & (t < n) & (p < n)
    idx = t[keep].astype(np.int64) * n + p[keep].astype(np.int64)
    return np.bincount(idx, minlength=n * n).reshape(n, n)


@dataclass
class Scores:
    """Per-class and overall scores from a confusion matrix."""

    matrix: np.ndarray
    names: list[str] = field(default_factory=list)

    def _safe(self, num: np.ndarray, den: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)

    @property
    def tp(self) -> np.ndarray:
        return np.diag(self.matrix).astype(float)

    @property
    def iou(self) -> np.ndarray:
        m = self.matrix
        return self._safe(self.tp, m.sum(0) + m.sum(1) - self.tp)

    @property
    def precision(self) -> np.ndarray:
        return self._safe(self.tp, self.matrix.sum(0).astype(float))

    @property
    def recall(self) -> np.ndarray:
        return self._safe(self.tp, self.matrix.sum(1).astype(float))

    @property
    def f1(self) -> np.ndarray:
        p, r = self.precision, self.recall
        return self._safe(2 * p * r, p + r)

    @property
    def miou(self) -> float:
        """Mean IoU over classes present in the truth or the prediction."""
        return float(np.nanmean(self.iou)) if np.isfinite(self.iou).any() else float("nan")

    @property
    def accuracy(self) -> float:
        total = self.matrix.sum()
        return float(self.tp.sum() / total) if total else float("nan")

    @property
    def kappa(self) -> float:
        """Cohen's kappa: agreement beyond what the class frequencies give by chance."""
        total = self.matrix.sum()
        if not total:
            return float("nan")
        po = self.tp.sum() / total
        pe = float((self.matrix.sum(0) * self.matrix.sum(1)).sum()) / float(total) ** 2
        return float((po - pe) / (1 - pe)) if pe < 1 else 1.0

    def as_dict(self) -> dict[str, Any]:
        names = self.names or [str(i) for i in range(len(self.matrix))]

        def clean(v: float) -> float | None:
            return None if not np.isfinite(v) else round(float(v), 6)

        return {
            "accuracy": clean(self.accuracy),
            "miou": clean(self.miou),
            "kappa": clean(self.kappa),
            "per_class": {
                n: {
                    "iou": clean(self.iou[i]),
                    "precision": clean(self.precision[i]),
                    "recall": clean(self.recall[i]),
                    "f1": clean(self.f1[i]),
                    "pixels": int(self.matrix[i].sum()),
                }
                for i, n in enumerate(names)
            },
            "confusion": self.matrix.tolist(),
        }

    def table(self) -> str:
        names = self.names or [str(i) for i in range(len(self.matrix))]
        w = max(10, *(len(n) for n in names))
        lines = [f"{'class':<{w}}  {'IoU':>6}  {'prec':>6}  {'recall':>6}  {'F1':>6}  {'pixels':>10}"]
        for i, n in enumerate(names):
            lines.append(
                f"{n:<{w}}  {self.iou[i]:6.3f}  {self.precision[i]:6.3f}  {self.recall[i]:6.3f}  "
                f"{self.f1[i]:6.3f}  {int(self.matrix[i].sum()):>10}"
            )
        lines.append(f"overall accuracy {self.accuracy:.4f}   mIoU {self.miou:.4f}   kappa {self.kappa:.4f}")
        return "\n".join(lines)


@dataclass
class PaperMetric:
    """John & Zhang (2022): per-tile accuracy and weighted precision/recall, averaged over
    tiles; F1 = 2PR/(P+R) of the averages (scikit-learn ``average='weighted'`` per tile)."""

    accuracies: list[float] = field(default_factory=list)
    precisions: list[float] = field(default_factory=list)
    recalls: list[float] = field(default_factory=list)

    def add(self, matrix: np.ndarray) -> None:
        s = Scores(matrix)
        support = matrix.sum(1).astype(float)
        weights = support / support.sum() if support.sum() else support
        # scikit-learn sets an ill-defined precision (class never predicted) to 0
        self.precisions.append(float(np.nansum(np.nan_to_num(s.precision) * weights)))
        self.recalls.append(float(np.nansum(np.nan_to_num(s.recall) * weights)))
        self.accuracies.append(s.accuracy)

    def as_dict(self) -> dict[str, float]:
        p, r = float(np.mean(self.precisions)), float(np.mean(self.recalls))
        return {
            "accuracy": round(float(np.mean(self.accuracies)), 6),
            "precision": round(p, 6),
            "recall": round(r, 6),
            "f1": round(2 * p * r / (p + r), 6) if p + r else 0.0,
            "tiles": len(self.accuracies),
        }
