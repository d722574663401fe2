"""GPU throughput: the bare model, geoseg's inference path, and the input read, side by side.

Made for the device machine (torch there, not the geospatial stack): it imports only
numpy, torch, segmentation-models-pytorch and ``geoseg.inference``,
which need no GDAL. Reading is timed only where rasterio imports. Per model and batch size:

- ``bare``: the torch module on tensors already on the device (channels_last, autocast
  in bf16 where supported, else fp16, as ``inference.Predictor`` sets it up), synchronised;
  the ceiling for anything that feeds the GPU from the host.
- ``logits``: ``Predictor.logits`` on a host float32 batch, the call a pipeline task makes:
  pinned copy in, forward, float32 scores back to the host.
- ``classes``: ``logits`` plus the host-side argmax to class ids (what a task keeps).
- ``read``: rasterio reading the tiles' windows of a synthetic uint16 GeoTIFF of the same
  band count (one process), if rasterio is there.

Megapixels count tile *cores* (``--tile``), the pixels a map gets, as in ``geoseg predict``;
a tile's forward covers its core plus ``--overlap`` on each side.

    python benchmarks/bench_gpu.py --json gpu.json            # on the GPU machine
    python benchmarks/bench_gpu.py --device cpu --batches 1 --seconds 2   # a dry run here
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from geoseg.inference import LoadedModel, Predictor, build_model, load_checkpoint, make_spec, zoomed_size

REPO = Path(__file__).resolve().parents[1]


def _models(names: list[str]) -> dict[str, LoadedModel]:
    out = {}
    for name in names:
        if name == "forest-s2-rgb":  # the shipped model (Unet-mobilenet_v2 + scSE, 3 bands)
            out[name] = load_checkpoint(REPO / "geoseg" / "models" / "forest-s2-rgb.safetensors")
        elif name == "unet-resnet18":  # bench_predict.py's overhead model, 4 bands
            spec = make_spec("Unet", "resnet18", 4, 6)
            out[name] = LoadedModel(spec, build_model(spec), Path(name), "")
        else:
            raise SystemExit(f"bench_gpu.py: unknown model {name!r} (forest-s2-rgb, unet-resnet18)")
    return out


def _rate(fn: Callable[[], Any], pixels: int, seconds: float, sync: Callable[[], None]) -> float:
    """Megapixels per second of ``fn`` (``pixels`` per call), after two warm-up calls."""
    for _ in range(2):
        fn()
    sync()
    calls, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds or calls < 3:
        fn()
        calls += 1
    sync()
    return calls * pixels / 1e6 / (time.perf_counter() - t0)


def _read_rate(bands: int, tile: int, overlap: int, seconds: float) -> float | None:
    try:
        import rasterio
        from rasterio.windows import Window as RioWindow
    except ImportError:
        return None
    import tempfile

    size = 4096
    path = Path(tempfile.mkdtemp()) / "scene.tif"
    rng = np.random.default_rng(0)
    profile = {"driver": "GTiff", "width": size, "height": size, "count": bands, "dtype": "uint16",
               "tiled": True, "blockxsize": 512, "blockysize": 512, "compress": "deflate"}  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        for r in range(0, size, 512):
            dst.write(
                rng.integers(0, 4000, (bands, 512, size), dtype=np.uint16), window=RioWindow(0, r, size, 512)
            )
    read = tile + 2 * overlap
    starts = [(r, c) for r in range(0, size - read + 1, tile) for c in range(0, size - read + 1, tile)]
    with rasterio.open(path) as src:
        k = iter(range(1 << 30))

        def one() -> None:
            r, c = starts[next(k) % len(starts)]
            src.read(window=RioWindow(c, r, read, read))

        return _rate(one, tile * tile, seconds, lambda: None)


def _measure(
    predictor: Predictor, n: int, read: int, core: int, seconds: float, sync: Callable[[], None]
) -> dict[str, Any]:
    """The three rates of one model at batch ``n`` (tiles of ``read`` px, ``core`` px kept)."""
    import torch

    module, dtype, device = predictor.model.module, predictor._amp_dtype, predictor.device
    cuda = device.startswith("cuda")
    host = np.random.default_rng(0).normal(size=(n, len(predictor.spec.bands), read, read)).astype(np.float32)
    # the bare model sees what Predictor feeds it: the tile resampled by the model's zoom
    seen = torch.from_numpy(host).to(device)
    if predictor.spec.zoom != 1:
        size = zoomed_size((read, read), predictor.spec.zoom)
        seen = torch.nn.functional.interpolate(seen, size=size, mode="bilinear", align_corners=False)
    x = seen.contiguous(memory_format=torch.channels_last)

    def bare() -> None:
        with torch.inference_mode(), torch.autocast("cuda", dtype=dtype, enabled=cuda and dtype is not None):
            module(x)

    row: dict[str, Any] = {
        "amp": str(dtype).replace("torch.", "") if dtype else "fp32",
        "zoom": predictor.spec.zoom,
    }
    row["bare_mps"] = _rate(bare, n * core, seconds, sync)
    row["logits_mps"] = _rate(lambda: predictor.logits(host), n * core, seconds, sync)
    row["classes_mps"] = _rate(lambda: predictor.classes(predictor.logits(host)), n * core, seconds, sync)
    if cuda:
        row["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
        torch.cuda.reset_peak_memory_stats()
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--models", default="forest-s2-rgb,unet-resnet18")
    ap.add_argument("--tile", type=int, default=512)
    ap.add_argument("--overlap", type=int, default=64)
    ap.add_argument("--batches", default="4,8,16,32", help="batch sizes (tiles)")
    ap.add_argument("--seconds", type=float, default=5.0, help="time per measurement")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    import torch

    cuda = args.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        raise SystemExit("bench_gpu.py: no CUDA device here; --device cpu for a dry run")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    read = args.tile + 2 * args.overlap
    core = args.tile * args.tile
    rows: list[dict[str, Any]] = []
    info = {"device": torch.cuda.get_device_name() if cuda else "cpu", "torch": torch.__version__,
            "tile": args.tile, "overlap": args.overlap}  # fmt: skip
    for name, model in _models(args.models.split(",")).items():
        predictor = Predictor(model, device=args.device, backend="torch")
        for n in [int(b) for b in args.batches.split(",")]:
            row = {"model": name, "batch": n, **_measure(predictor, n, read, core, args.seconds, sync)}
            rows.append(row)
            print(json.dumps(row), flush=True)
        bands = len(model.spec.bands)
        info[f"read_mps_{bands}band"] = _read_rate(bands, args.tile, args.overlap, args.seconds)
    print(f"\n{info}")
    print("| model | batch | amp | bare MP/s | Predictor.logits MP/s | + argmax MP/s |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['model']} | {r['batch']} | {r['amp']} | {r['bare_mps']:.2f} | {r['logits_mps']:.2f} | {r['classes_mps']:.2f} |"
        )
    if args.json:
        args.json.write_text(json.dumps({"info": info, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
