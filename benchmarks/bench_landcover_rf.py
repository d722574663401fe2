"""Land cover on nc-landsat7: the trained U-Net against a per-pixel random forest.

Both see the same bands and the same spatial split (the bottom-right quarter of the scene
validates; the random forest trains on every labelled pixel outside it, the U-Net on
chips that never touch it). Prints pooled per-class IoU, mIoU, accuracy and kappa.

    python benchmarks/bench_landcover_rf.py [--model geoseg/models/landcover-nc-landsat7.safetensors]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from geoseg.training import IGNORE, Scores, TrainConfig, Trainer, confusion, load_labelset

BANDS = ["blue", "green", "red", "nir", "swir1"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="geoseg/models/landcover-nc-landsat7.safetensors")
    ap.add_argument("--trees", type=int, default=200)
    args = ap.parse_args()

    from sklearn.ensemble import RandomForestClassifier

    cfg = TrainConfig(out="-", dataset="nc-landsat7-labels", bands=BANDS, holdout="bottom-right")
    data = load_labelset("nc-landsat7-labels", cfg)
    n = len(data.classes)
    names = [c.name for c in data.classes]
    tr, va = data.train[0], data.val[0]
    keep = (tr.labels != IGNORE) & tr.valid
    x_train = tr.image[:, keep].T
    y_train = tr.labels[keep]
    t0 = time.perf_counter()
    rf = RandomForestClassifier(n_estimators=args.trees, n_jobs=2, random_state=0).fit(x_train, y_train)
    pred = np.full(va.labels.shape, IGNORE, np.uint8)
    pred[va.valid] = rf.predict(va.image[:, va.valid].T)
    rf_scores = Scores(confusion(va.labels, pred, n), names)
    print(
        f"random forest ({args.trees} trees, {keep.sum()} training pixels, {time.perf_counter() - t0:.1f} s)"
    )
    print(rf_scores.table())

    if Path(args.model).exists():
        from geoseg.inference import load_checkpoint

        loaded = load_checkpoint(args.model)
        trainer = Trainer.__new__(Trainer)
        trainer.cfg, trainer.data = cfg, data
        unet = trainer.validate(loaded.module, loaded.spec)
        print(f"\n{loaded.spec.arch}/{loaded.spec.encoder} ({args.model})")
        print(unet.table())
        print(
            f"\nU-Net minus random forest: mIoU {unet.miou - rf_scores.miou:+.4f}, "
            f"accuracy {unet.accuracy - rf_scores.accuracy:+.4f}"
        )


if __name__ == "__main__":
    main()
