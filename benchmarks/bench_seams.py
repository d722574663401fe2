"""Seams: tiled prediction against one whole-image forward pass of the same trained model.

DESIGN.md's seam test, measured on a synthetic 1024 x 1024 scene (geoseg.data.write_scene) with a
U-Net (resnet18) trained here for a few minutes on chips of another synthetic scene:

* crop: ``geoseg.predict`` as shipped (each tile predicted on its read window,
  core plus ``overlap`` px of halo, and cropped to its core), tile 256, overlap 0/32/64;
* hann: the same tiles, but each tile's class probabilities over its whole read window are
  weighted by a 2-D Hann window and the weighted sums are normalised by the summed weights
  over the whole image (held in memory, fine at 1024^2), then argmax.

Reported for each: agreement with the whole-image map overall, within 2 px of tile edges
and elsewhere; how often the class changes across tile lines compared with the whole-image
map across the same lines (seam ratio; DESIGN.md asks <= 1.5); accuracy against the truth.

    .venv/bin/python benchmarks/bench_seams.py            # trains (~3-6 min on 2 cores), then ~1 min
    .venv/bin/python benchmarks/bench_seams.py --quick    # fewer training steps

The trained checkpoint is cached in ``--workdir`` (keyed by the training settings), so a
rerun goes straight to the measurements.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

NODATA = 255


def say(*parts: Any) -> None:
    print(*parts, flush=True)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [
        [f"{c:.4f}" if isinstance(c, float) else str(c) for c in r] for r in rows
    ]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


# --------------------------------------------------------------------------------------
# Scenes and training


def scene(workdir: Path, size: int, seed: int) -> tuple[Path, Path]:
    """A synthetic 4-band scene and its truth class map, cached in workdir."""
    from geoseg.data import SceneSpec, write_scene

    img, truth = workdir / f"seams-scene-{size}-{seed}.tif", workdir / f"seams-truth-{size}-{seed}.tif"
    if not (img.exists() and truth.exists()):
        write_scene(SceneSpec(size, size, seed=seed), img, truth)
    return img, truth


def read_pair(img: Path, truth: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pixels (4, h, w), valid (h, w), truth classes (h, w)) of a scene."""
    import rasterio

    from geoseg.raster import open_raster

    pixels, valid = open_raster(img).read()
    with rasterio.open(truth) as ds:
        labels = ds.read(1)
    return pixels, valid & (labels != NODATA), labels


def train(args: argparse.Namespace) -> Path:
    """Train Unet-resnet18 on random chips of a synthetic scene; returns the checkpoint."""
    import torch

    from geoseg.data import BAND_NAMES, CLASSES
    from geoseg.inference import build_model, make_spec, save_checkpoint

    key = f"{args.train_size}-{args.train_seed}-{args.steps}-{args.chip}-{args.train_batch}-{args.lr}"
    path = args.workdir / f"seams-unet-resnet18-{key}.safetensors"
    if path.exists() and not args.retrain:
        say(f"trained model: {path} (cached)")
        return path
    img, truth = scene(args.workdir, args.train_size, args.train_seed)
    pixels, valid, labels = read_pair(img, truth)
    mean = [float(pixels[b][valid].mean()) for b in range(pixels.shape[0])]
    std = [float(pixels[b][valid].std()) for b in range(pixels.shape[0])]
    spec = make_spec("Unet", "resnet18", list(BAND_NAMES[:4]), list(CLASSES), mean=mean, std=std)
    x_all = (pixels.astype(np.float32) - np.array(mean, np.float32)[:, None, None]) / np.array(
        std, np.float32
    )[:, None, None]
    x_all[:, ~valid] = 0.0
    y_all = np.where(valid, labels, NODATA).astype(np.int64)

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    model = build_model(spec)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.steps, pct_start=0.15)
    h, w = labels.shape
    c = args.chip
    t0 = time.perf_counter()
    losses = []
    for step in range(args.steps):
        xs, ys = [], []
        while len(xs) < args.train_batch:
            r, q = int(rng.integers(0, h - c + 1)), int(rng.integers(0, w - c + 1))
            y = y_all[r : r + c, q : q + c]
            if (y == NODATA).mean() > 0.5:
                continue
            x = x_all[:, r : r + c, q : q + c]
            k = int(rng.integers(0, 4))  # rot90 and flips: a land-cover map has no "up"
            x, y = np.rot90(x, k, axes=(1, 2)), np.rot90(y, k)
            if rng.random() < 0.5:
                x, y = x[:, :, ::-1], y[:, ::-1]
            xs.append(np.ascontiguousarray(x))
            ys.append(np.ascontiguousarray(y))
        logits = model(torch.from_numpy(np.stack(xs)))
        loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(np.stack(ys)), ignore_index=NODATA)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        if (step + 1) % 25 == 0 or step == 0:
            say(
                f"  step {step + 1}/{args.steps}: loss {np.mean(losses[-25:]):.3f}, "
                f"{(time.perf_counter() - t0) / (step + 1):.2f} s/step"
            )
    model.eval()
    seconds = time.perf_counter() - t0
    spec = replace(
        spec,
        provenance={
            "trained": True,
            "data": f"geoseg.synthetic SceneSpec({args.train_size}, {args.train_size}, seed={args.train_seed})",
            "recipe": f"{args.steps} steps, batch {args.train_batch} x {c}^2 chips, AdamW lr {args.lr} one-cycle, CE, rot90/flip",
            "seconds": round(seconds, 1),
            "final_loss": round(float(np.mean(losses[-25:])), 4),
        },
    )
    save_checkpoint(path, spec, model)
    say(f"trained {args.steps} steps in {seconds:.0f} s, final loss {np.mean(losses[-25:]):.3f}: {path}")
    return path


# --------------------------------------------------------------------------------------
# Prediction variants


def whole_image(model: Any, pixels: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """One forward pass over the whole scene -> class ids (255 where invalid)."""
    from geoseg.inference import normalise

    x = normalise(pixels, valid, model.spec)[None]
    probs = model.probabilities(x)
    classes = model.classes(probs)[0]
    classes[~valid] = NODATA
    return classes


def hann_weights(n: int) -> np.ndarray:
    """2-D Hann window over ``n`` x ``n`` samples, sampled at pixel centres (never zero)."""
    w = np.sin(np.pi * (np.arange(n) + 0.5) / n) ** 2
    return np.outer(w, w).astype(np.float32)


def hann_blend(
    model: Any, source: Any, valid: np.ndarray, tile: int, overlap: int, batch: int = 4
) -> np.ndarray:
    """Tiles as the pipeline makes them; probabilities over whole read windows, Hann-blended."""
    from geoseg.inference import normalise

    grid = source.grid
    tiles = grid.tiles(tile, overlap)
    span = tile + 2 * overlap
    weight = hann_weights(span)
    acc = np.zeros((model.spec.n_classes, *grid.shape), np.float32)
    wsum = np.zeros(grid.shape, np.float32)
    for i in range(0, len(tiles), batch):
        group = tiles[i : i + batch]
        xs = [normalise(*source.read(t.read), model.spec) for t in group]
        probs = model.probabilities(np.stack(xs))
        for t, p in zip(group, probs, strict=True):
            inside = t.read.intersection(grid.window)
            assert inside is not None
            src = inside.relative_to(t.read).slices()
            dst = inside.slices()
            acc[(slice(None), *dst)] += p[(slice(None), *src)] * weight[src]
            wsum[dst] += weight[src]
    classes = model.spec.class_ids[np.argmax(acc / wsum, axis=0)]
    classes[~valid] = NODATA
    return classes


def crop_pipeline(
    img: Path, model_path: Path, out: Path, tile: int, overlap: int, workers: int
) -> np.ndarray:
    """geoseg.predict as shipped (crop to core), read back."""
    import rasterio

    from geoseg.inference import predict

    predict(
        [img],
        model_path,
        out,
        tile_size=tile,
        overlap=overlap,
        backend="torch",
        device="cpu",
        workers=workers,
    )
    with rasterio.open(out) as ds:
        return ds.read(1)


# --------------------------------------------------------------------------------------
# Metrics


@dataclass
class Metrics:
    agree: float
    agree_edges: float
    agree_inside: float
    seam_changes: float  # fraction of pixel pairs across tile lines with different classes
    whole_changes: float  # the same for the whole-image map along the same lines
    accuracy: float

    @property
    def seam_ratio(self) -> float:
        return self.seam_changes / self.whole_changes if self.whole_changes else float("nan")


def edge_mask(shape: tuple[int, int], tile: int, within: int = 2) -> np.ndarray:
    """Pixels within ``within`` px of an internal tile line (the first pixel each side is 1 px)."""
    mask = np.zeros(shape, bool)
    for axis, n in enumerate(shape):
        near = np.zeros(n, bool)
        for line in range(tile, n, tile):
            near[max(0, line - within) : line + within] = True
        if axis == 0:
            mask |= near[:, None]
        else:
            mask |= near[None, :]
    return mask


def line_pairs(classes: np.ndarray, valid: np.ndarray, lines: Sequence[int]) -> tuple[int, int]:
    """(pairs that differ, pairs) across the horizontal and vertical lines at ``lines``."""
    differ = total = 0
    for arr, ok in ((classes, valid), (classes.T, valid.T)):
        for line in lines:
            both = ok[line - 1] & ok[line]
            differ += int((arr[line - 1][both] != arr[line][both]).sum())
            total += int(both.sum())
    return differ, total


def metrics(tiled: np.ndarray, whole: np.ndarray, truth: np.ndarray, valid: np.ndarray, tile: int) -> Metrics:
    edges = edge_mask(valid.shape, tile)
    same = tiled == whole
    lines = list(range(tile, valid.shape[0], tile))
    d_tiled, n = line_pairs(tiled, valid, lines)
    d_whole, _ = line_pairs(whole, valid, lines)
    return Metrics(
        float(same[valid].mean()),
        float(same[valid & edges].mean()),
        float(same[valid & ~edges].mean()),
        d_tiled / n,
        d_whole / n,
        float((tiled == truth)[valid].mean()),
    )


# --------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=1024, help="evaluation scene size")
    p.add_argument("--seed", type=int, default=2, help="evaluation scene seed")
    p.add_argument("--tile", type=int, default=256)
    p.add_argument("--overlaps", type=int, nargs="+", default=[0, 32, 64])
    p.add_argument("--train-size", type=int, default=2048)
    p.add_argument("--train-seed", type=int, default=1)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--chip", type=int, default=128)
    p.add_argument("--train-batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--workers", type=int, default=1, help="dask workers for the crop (pipeline) runs")
    p.add_argument("--retrain", action="store_true")
    p.add_argument("--quick", action="store_true", help="60 training steps")
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--workdir", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "geoseg-bench")
    args = p.parse_args(argv)
    if args.quick:
        args.steps = min(args.steps, 60)
    args.workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    model_path = train(args)

    import torch

    from geoseg.inference import Predictor, load_checkpoint
    from geoseg.raster import open_raster

    torch.set_num_threads(args.threads)
    img, truth_path = scene(args.workdir, args.size, args.seed)
    pixels, valid, truth = read_pair(img, truth_path)
    source = open_raster(img)
    model = Predictor(load_checkpoint(model_path), device="cpu", backend="torch", threads=args.threads)
    whole = whole_image(model, pixels, valid)
    present = np.unique(whole[valid])
    say(
        f"\nseams: {args.size} x {args.size} synthetic scene (seed {args.seed}), tile {args.tile}, "
        f"Unet-resnet18 trained on seed {args.train_seed}; whole-image pass predicts classes "
        f"{present.tolist()}, accuracy {float((whole == truth)[valid].mean()):.4f}"
    )
    rows = []
    results: dict[str, Any] = {"whole_accuracy": float((whole == truth)[valid].mean())}
    for overlap in args.overlaps:
        variants = {
            "crop": crop_pipeline(
                img, model_path, args.workdir / f"seams-crop-{overlap}.tif", args.tile, overlap, args.workers
            ),
            "hann": hann_blend(model, source, valid, args.tile, overlap),
        }
        for name, tiled in variants.items():
            m = metrics(tiled, whole, truth, valid, args.tile)
            results[f"{name}-{overlap}"] = {**m.__dict__, "seam_ratio": m.seam_ratio}
            rows.append(
                [
                    name,
                    overlap,
                    m.agree,
                    m.agree_edges,
                    m.agree_inside,
                    m.seam_changes,
                    m.whole_changes,
                    m.seam_ratio,
                    m.accuracy,
                ]
            )
    say(
        table(
            [
                "variant",
                "overlap",
                "agree",
                "agree <=2px edge",
                "agree inside",
                "changes @lines",
                "whole @lines",
                "seam ratio",
                "accuracy",
            ],
            rows,
        )
    )
    say(
        "goal (DESIGN.md): seam ratio <= 1.5, agreement >= 0.98, accuracy not below the whole-image "
        f"pass ({results['whole_accuracy']:.4f})"
    )
    say(f"total {time.perf_counter() - t0:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
