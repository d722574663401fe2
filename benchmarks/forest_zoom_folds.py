"""Choose the forest model's zoom without looking at the validation tiles.

The shipped forest model scored better on the validation tiles when each tile was
upsampled before the model (``--zoom``). Picking the zoom there would tune on the only
labelled test split the dataset has, so this script picks it on the *training* tiles
instead, by cross-validation:

    train   fold K: the shipped recipe (workflows/train_forest_amazon.yaml, seed, epochs,
            one thread) on the training tiles whose index (sorted by name) is not K mod 3,
            validating on the other third; ~75 min a fold on one core, two folds side by
            side on the 2-core CPU
    score   each fold model on its held-out third at each zoom: the paper's F1 and pooled
            mIoU per fold and over all held-out tiles together

    .venv/bin/python benchmarks/forest_zoom_folds.py train 0 --out /tmp/folds &
    .venv/bin/python benchmarks/forest_zoom_folds.py train 1 --out /tmp/folds &
    wait; .venv/bin/python benchmarks/forest_zoom_folds.py score 0 1 --out /tmp/folds

No validation tile is read by either subcommand.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import yaml

from geoseg.training import (
    Dataset,
    PaperMetric,
    Sample,
    Scores,
    TrainConfig,
    Trainer,
    confusion,
    load_labelset,
)

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "workflows" / "train_forest_amazon.yaml"
FOLDS = 3


def _recipe(out: Path) -> TrainConfig:
    d = yaml.safe_load(RECIPE.read_text())["train"]
    d.update(out=str(out), zoom=1.0, split_val="training")  # the folds never read validation
    return TrainConfig.from_dict(d, str(RECIPE))


def _split(cfg: TrainConfig, fold: int) -> Dataset:
    data = load_labelset(str(cfg.dataset), cfg)
    tiles = sorted(data.train, key=lambda s: s.name)
    keep = [s for i, s in enumerate(tiles) if i % FOLDS != fold]
    held = [s for i, s in enumerate(tiles) if i % FOLDS == fold]
    return Dataset(keep, held, data.classes, data.bands, {**data.provenance, "fold": fold, "folds": FOLDS})


def train(fold: int, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    cfg = _recipe(out / f"fold{fold}.safetensors")
    data = _split(cfg, fold)
    print(f"fold {fold}: {len(data.train)} tiles train, held out: {', '.join(s.name for s in data.val)}")
    t0 = time.perf_counter()
    result = Trainer(cfg, data).fit(None)
    print(f"fold {fold}: {(time.perf_counter() - t0) / 60:.1f} min, held-out mIoU {result.scores.miou:.4f}")


def _score(
    trainer: Trainer, module: object, spec: object, held: list[Sample]
) -> tuple[PaperMetric, np.ndarray]:
    pm, matrix = PaperMetric(), np.zeros((2, 2), np.int64)
    for s in held:
        c = confusion(s.labels, trainer._predict(module, spec, s), 2)
        pm.add(c)
        matrix += c
    return pm, matrix


def score(folds: list[int], out: Path, zooms: list[float], threads: int) -> dict[str, object]:
    import torch

    from geoseg.inference import load_checkpoint

    torch.set_num_threads(threads)
    rows: dict[str, object] = {}
    pooled = {z: ([], np.zeros((2, 2), np.int64)) for z in zooms}
    for fold in folds:
        loaded = load_checkpoint(out / f"fold{fold}.safetensors")
        cfg = _recipe(out / "unused.safetensors")
        data = _split(cfg, fold)
        trainer = Trainer.__new__(Trainer)
        trainer.cfg, trainer.data = cfg, data
        for z in zooms:
            pm, matrix = _score(trainer, loaded.module, replace(loaded.spec, zoom=z), data.val)
            pooled[z][0].append(pm)
            pooled[z][1][...] += matrix
            f1, miou = pm.as_dict()["f1"], Scores(matrix).miou
            rows[f"fold{fold} zoom {z:g}"] = {"f1": f1, "miou": miou}
            print(f"fold {fold}  zoom {z:<5g} paper F1 {f1:.4f}  mIoU {miou:.4f}", flush=True)
    for z in zooms:
        merged = PaperMetric()
        for pm in pooled[z][0]:
            merged.accuracies += pm.accuracies
            merged.precisions += pm.precisions
            merged.recalls += pm.recalls
        f1, miou = merged.as_dict()["f1"], Scores(pooled[z][1]).miou
        rows[f"all zoom {z:g}"] = {"f1": f1, "miou": miou, "tiles": len(merged.accuracies)}
        print(
            f"all held-out tiles ({len(merged.accuracies)})  zoom {z:<5g} paper F1 {f1:.4f}  mIoU {miou:.4f}"
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train one fold model (~75 min on one core)")
    t.add_argument("fold", type=int, choices=range(FOLDS))
    s = sub.add_parser("score", help="score fold models on their held-out tiles at each zoom")
    s.add_argument("folds", type=int, nargs="+", choices=range(FOLDS))
    s.add_argument("--zooms", default="1,1.25,1.5,1.75,2")
    s.add_argument("--threads", type=int, default=2)
    s.add_argument("--json", type=Path, default=None)
    for p in (t, s):
        p.add_argument("--out", type=Path, default=Path("/tmp/geoseg-folds"), help="fold checkpoints")
    args = ap.parse_args()
    if args.cmd == "train":
        train(args.fold, args.out)
        return
    rows = score(args.folds, args.out, [float(z) for z in args.zooms.split(",")], args.threads)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
