"""Training: labelled chips -> a geoseg checkpoint with its metrics and provenance.

The trainer fills small hooks in the torchgeo manner (``configure_model``,
``configure_loss``, ``configure_optimizer``) around a plain loop: random chips with
flips and 90-degree rotations (and optional brightness, per-band colour and scale
jitter), a sum of losses that ignore nodata, AdamW with a one-cycle schedule, an optional
moving average of the weights, validation mIoU every epoch, early stopping, and a resume
file written after every epoch.

Data stays in memory: the label sets geoseg trains on (tiles of a few hundred pixels,
scenes of a few megapixels) fit easily, and in-memory chips keep a 2-core CPU busy with
the model instead of with I/O. Validation pixels never touch a training chip: label sets
with their own validation split use it; single scenes hold out one block."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from geoseg import __version__
from geoseg.errors import GeosegError
from geoseg.progress import Progress, report
from geoseg.training._config import TrainConfig
from geoseg.training._data import (
    IGNORE,
    ChipSampler,
    Dataset,
    Sample,
    band_statistics,
    dataset_domain,
    load_labelset,
    load_synthetic,
)
from geoseg.training._metrics import PaperMetric, Scores, confusion

log = logging.getLogger(__name__)


class Trainer:
    """Hooks: ``configure_model``, ``configure_loss``, ``configure_optimizer``."""

    def __init__(self, cfg: TrainConfig, data: Dataset) -> None:
        self.cfg = cfg
        self.data = data
        self.mean, self.std = band_statistics(data.train)

    def configure_model(self) -> tuple[Any, Any]:
        from geoseg.inference import build_model, check_runs, make_spec

        spec = make_spec(self.cfg.arch, self.cfg.encoder, self.data.bands, self.data.classes,
                         self.mean, self.std, **self.cfg.model_kwargs)  # fmt: skip
        spec = replace(spec, zoom=self.cfg.zoom, domain=dataset_domain(self.data))
        model = build_model(spec)
        check_runs(model, spec)
        return spec, model

    def configure_loss(self) -> Any:
        from geoseg.training._losses import make_loss

        weights = self.cfg.class_weights
        if weights == "balanced":
            counts = np.zeros(len(self.data.classes))
            for s in self.data.train:
                counts += np.bincount(s.labels[s.labels != IGNORE], minlength=len(counts))[: len(counts)]
            freq = counts / max(counts.sum(), 1)
            weights = [float(1 / np.sqrt(f)) if f > 0 else 0.0 for f in freq]
            mean_w = float(np.mean([v for v in weights if v > 0]))
            weights = [w / mean_w for w in weights]
        return make_loss(self.cfg.loss, weights)

    def configure_optimizer(self, model: Any) -> tuple[Any, Any]:
        import torch

        opt = torch.optim.AdamW(model.parameters(), lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)
        total = self.cfg.epochs * self.cfg.steps_per_epoch
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=self.cfg.lr, total_steps=max(total, 1), pct_start=0.15
        )
        return opt, sched

    def fit(self, progress: Progress | None = None, resume: bool = False) -> TrainResult:
        import torch

        from geoseg.inference import resolve_device, save_checkpoint

        cfg = self.cfg
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        device = torch.device(resolve_device(cfg.device))
        spec, model = self.configure_model()
        model = model.to(device)
        loss_fn = self.configure_loss()
        opt, sched = self.configure_optimizer(model)
        sampler = ChipSampler(self.data.train, cfg.chip_size, self.mean, self.std, cfg)
        averaged = _averaged(model, cfg.ema) if cfg.ema else None
        scored = averaged.module if averaged is not None else model  # what validates and ships
        out = Path(cfg.out)
        state_path = out.with_name(out.name + ".resume.pt")
        start, best, best_state, history, stale = 0, -1.0, None, [], 0
        if resume and state_path.exists():
            st = torch.load(state_path, weights_only=True, map_location=device)
            model.load_state_dict(st["model"])
            if averaged is not None:
                averaged.load_state_dict(st["averaged"])
            opt.load_state_dict(st["optimizer"])
            sched.load_state_dict(st["scheduler"])
            sampler.rng = np.random.default_rng([cfg.seed, int(st["epoch"])])
            start, best, stale = int(st["epoch"]), float(st["best"]), int(st["stale"])
            best_state = st["best_model"]
            history = json.loads(st["history"])
            torch.manual_seed(cfg.seed + start)
        t0 = time.perf_counter()
        for epoch in range(start, cfg.epochs):
            model.train()
            te = time.perf_counter()
            losses = []
            for _ in range(cfg.steps_per_epoch):
                x, y = sampler.batch(cfg.batch_size)
                logits = model(torch.from_numpy(x).to(device))
                loss = loss_fn(logits, torch.from_numpy(y.astype(np.int64)).to(device))
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                if averaged is not None:
                    averaged.update_parameters(model)
                losses.append(loss.item())
            scores = self.validate(scored, spec)
            seconds = time.perf_counter() - te
            history.append({"epoch": epoch + 1, "loss": float(np.mean(losses)), "val_miou": scores.miou,
                            "val_accuracy": scores.accuracy, "seconds": round(seconds, 2)})  # fmt: skip
            if scores.miou > best:
                best, stale = scores.miou, 0
                best_state = {k: v.detach().clone() for k, v in scored.state_dict().items()}
            else:
                stale += 1
            # the resume file first: a progress callback may stop the run (Ctrl-C); written
            # aside and renamed, so a kill during the save never leaves a torn resume file
            partial = state_path.with_name(state_path.name + ".partial")
            torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                        "averaged": averaged.state_dict() if averaged is not None else {},
                        "epoch": epoch + 1, "best": best, "stale": stale, "best_model": best_state,
                        "history": json.dumps(history)}, partial)  # fmt: skip
            os.replace(partial, state_path)
            report(
                progress,
                epoch + 1,
                cfg.epochs,
                f"loss {np.mean(losses):.3f} mIoU {scores.miou:.3f} best {best:.3f}",
            )
            if stale >= cfg.patience:
                break
        assert best_state is not None
        model.load_state_dict(best_state)
        per_tile = self.tile_confusions(model, spec)
        final = self.scores(per_tile)
        metrics = {"val": final.as_dict()}
        if self.data.provenance.get("dataset") == "amazon-s2-rgb":
            metrics["paper"] = paper_metric(per_tile)
        provenance = {
            "trained": True, "geoseg_version": __version__, "data": self.data.provenance,
            "config": {k: v for k, v in cfg.model_dump(mode="json").items() if k != "out"}, "history": history,
            "metrics": metrics, "minutes": round((time.perf_counter() - t0) / 60, 2),
            "trained_on": _device_label(device),
        }  # fmt: skip
        spec = _with_provenance(spec, provenance)
        save_checkpoint(out, spec, model, half=cfg.half)
        state_path.unlink(missing_ok=True)
        return TrainResult(out, final, history, provenance)

    def _predict(self, model: Any, spec: Any, s: Sample, tta: bool = False) -> np.ndarray:
        from geoseg.inference import module_logits

        pred = module_logits(model, s.image, s.valid, spec, tta).argmax(0).astype(np.uint8)
        pred[~s.valid] = IGNORE
        return pred

    def tile_confusions(self, model: Any, spec: Any, tta: bool = False) -> list[np.ndarray]:
        """The confusion matrix of each validation sample: one pass of the model over them
        gives both the pooled scores and the paper's per-tile metric."""
        n = len(self.data.classes)
        return [confusion(s.labels, self._predict(model, spec, s, tta), n) for s in self.data.val]

    def scores(self, confusions: Sequence[np.ndarray]) -> Scores:
        """Pooled scores of per-sample confusion matrices."""
        n = len(self.data.classes)
        return Scores(sum(confusions, np.zeros((n, n), dtype=np.int64)), [c.name for c in self.data.classes])

    def validate(self, model: Any, spec: Any, tta: bool = False) -> Scores:
        return self.scores(self.tile_confusions(model, spec, tta))


def paper_metric(confusions: Sequence[np.ndarray]) -> dict[str, float]:
    """The published table's metric (``PaperMetric``) over per-tile confusion matrices."""
    pm = PaperMetric()
    for m in confusions:
        pm.add(m)
    return pm.as_dict()


@dataclass
class TrainResult:
    out: Path
    scores: Scores
    history: list[dict[str, Any]]
    provenance: dict[str, Any]


def _averaged(model: Any, decay: float) -> Any:
    """An exponential moving average of ``model``'s weights and BatchNorm buffers."""
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    # use_buffers: the running BatchNorm statistics are averaged too, so the averaged
    # model needs no extra pass over the data to recompute them.
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def _device_label(device: Any) -> str:
    """``cpu`` or ``cuda:0 (NVIDIA H200)``: where a model was trained, for its card."""
    import torch

    if device.type != "cuda":
        return str(device.type)
    index = device.index if device.index is not None else torch.cuda.current_device()
    return f"cuda:{index} ({torch.cuda.get_device_name(index)})"


def _with_provenance(spec: Any, provenance: dict[str, Any]) -> Any:
    from geoseg.inference import ModelSpec

    return ModelSpec(**{**spec.__dict__, "provenance": provenance})


def train(cfg: TrainConfig, progress: Progress | None = None, resume: bool = False) -> TrainResult:
    """Train as ``cfg`` says and write the checkpoint (``geoseg train``)."""
    from geoseg.files import check_writable

    # arch, encoder and every other key were checked when cfg was built, before this
    check_writable(cfg.out)
    data = (
        load_synthetic(cfg.synthetic) if cfg.synthetic is not None else load_labelset(str(cfg.dataset), cfg)
    )
    if not data.val:
        raise GeosegError("the validation split is empty")
    return Trainer(cfg, data).fit(progress, resume=resume)
