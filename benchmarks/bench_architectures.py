"""Architectures of the field on the Amazon forest tiles, trained the same way.

Every architecture gets the same encoder, chips, epochs, steps, learning-rate schedule,
loss and seed, so the table compares what the decoders (or their absence, for FCN) buy
under one small budget; it is not each architecture's best result. Prints validation
pooled mIoU / accuracy, the paper's per-tile F1, seconds per epoch and parameters.

    python benchmarks/bench_architectures.py [--epochs 8] [--steps 15] [--chip 256]   # ~13 min on 2 cores
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from geoseg.training import TrainConfig, Trainer, load_labelset

ARCHS = ["Unet", "DeepLabV3Plus", "FPN", "Segformer", "FCN", "UnetPlusPlus", "PSPNet", "Linknet"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--archs", default=",".join(ARCHS[:5]))
    ap.add_argument("--encoder", default="mobilenet_v2")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--steps", type=int, default=15)
    ap.add_argument("--chip", type=int, default=256)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    base = TrainConfig(
        out="-", dataset="amazon-s2-rgb", encoder=args.encoder, chip_size=args.chip, batch_size=args.batch,
        epochs=args.epochs, steps_per_epoch=args.steps, lr=0.002, loss=["ce", "dice"], patience=args.epochs,
        seed=0, threads=2,
    )  # fmt: skip
    data = load_labelset("amazon-s2-rgb", base)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for arch in args.archs.split(","):
            cfg = base.replace(arch=arch, out=str(Path(tmp) / f"{arch}.safetensors"))
            trainer = Trainer(cfg, data)
            t0 = time.perf_counter()
            result = trainer.fit()
            minutes = (time.perf_counter() - t0) / 60
            _, model = trainer.configure_model()
            params = sum(p.numel() for p in model.parameters()) / 1e6
            paper = result.provenance["metrics"]["paper"]
            per_epoch = sum(h["seconds"] for h in result.history) / len(result.history)
            rows.append({"arch": arch, "encoder": args.encoder, "params_M": round(params, 2),
                         "miou": round(result.scores.miou, 4), "accuracy": round(result.scores.accuracy, 4),
                         "paper_f1": paper["f1"], "s_per_epoch": round(per_epoch, 1), "minutes": round(minutes, 1)})  # fmt: skip
            print(json.dumps(rows[-1]), flush=True)
    print(
        f"\n{args.epochs} epochs x {args.steps} steps, batch {args.batch}, chips {args.chip}, encoder {args.encoder}"
    )
    print(f"{'arch':<14} {'params':>7} {'mIoU':>7} {'acc':>7} {'paperF1':>8} {'s/epoch':>8}")
    for r in rows:
        print(
            f"{r['arch']:<14} {r['params_M']:>6.2f}M {r['miou']:>7.4f} {r['accuracy']:>7.4f} {r['paper_f1']:>8.4f} {r['s_per_epoch']:>8.1f}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
