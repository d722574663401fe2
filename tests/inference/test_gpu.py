"""The CUDA paths: mixed-precision inference, the pipeline on a GPU, training with ``device: auto``.

They run wherever torch sees a CUDA GPU and are skipped (with the reason) everywhere else:
the CPU paths they are compared with are tested on every machine. Their references are
computed here, on the CPU in float32, from the shipped forest model and the real
Sentinel-2 validation tiles, so a GPU run checks itself against what this machine knows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import torch

from geoseg.inference import (
    Predictor,
    auto_batch_size,
    load_checkpoint,
    normalise,
    predict,
    read_spec,
    resolve_backend,
    resolve_device,
    resolve_model_path,
)

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")

#: bf16 keeps 8 bits of mantissa: the argmax may flip where two classes score nearly alike
AGREE = 0.995


@pytest.fixture(scope="module")
def tiles(shared_data: Path) -> list[Path]:
    found = sorted((shared_data / "amazon-s2-rgb" / "validation" / "images").glob("*.tif*"))[:4]
    assert len(found) == 4, "the Amazon validation tiles are missing from shared/data"
    return found


def _batch(paths: list[Path], spec: Any) -> np.ndarray:
    out = []
    for p in paths:
        with rasterio.open(p) as ds:
            pixels = ds.read().astype(np.float32)
        valid = np.ones(pixels.shape[1:], dtype=bool)
        out.append(normalise(pixels, valid, spec))
    return np.stack(out)


def test_auto_means_cuda_and_torch_with_mixed_precision() -> None:
    assert resolve_device("auto") == "cuda"
    assert resolve_backend("auto", "cuda") == "torch"
    p = Predictor(load_checkpoint(resolve_model_path("forest-s2-rgb")), device="auto", backend="auto")
    assert p.device == "cuda" and p.backend == "torch"
    assert p._amp_dtype in (torch.bfloat16, torch.float16)
    weight = next(p.model.module.parameters())
    assert weight.is_cuda
    # batches are sized to the device's free memory, at least one 640^2 tile
    assert 1 <= auto_batch_size("cuda", 640 * 640) <= 32


@pytest.mark.parametrize("zoom", [1.0, 1.25])
def test_cuda_logits_agree_with_the_cpu_in_float32(tiles: list[Path], zoom: float) -> None:
    path = resolve_model_path("forest-s2-rgb")
    cpu = Predictor(load_checkpoint(path), device="cpu", backend="torch")
    gpu = Predictor(load_checkpoint(path), device="cuda", backend="torch")
    batch = _batch(tiles, cpu.spec)
    want = cpu.logits(batch, zoom=zoom)
    got = gpu.logits(batch, zoom=zoom)
    assert got.dtype == np.float32 and got.shape == want.shape
    assert np.isfinite(got).all()
    agree = (cpu.classes(want) == gpu.classes(got)).mean()
    assert agree >= AGREE, f"CUDA argmax equals the CPU's on {agree:.4%} of pixels"
    # the scores themselves are close, not only their argmax
    assert np.median(np.abs(got - want)) < 0.05 * np.abs(want).std()


def test_predict_on_cuda_writes_the_cpu_map(tmp_path: Path, tiles: list[Path]) -> None:
    image = tiles[0]
    cpu = predict([image], "forest-s2-rgb", tmp_path / "cpu.tif", tile_size=256, overlap=32,
                  device="cpu", backend="torch", workers=1)  # fmt: skip
    gpu = predict([image], "forest-s2-rgb", tmp_path / "gpu.tif", tile_size=256, overlap=32,
                  device="cuda", workers=1)  # fmt: skip
    assert gpu.tiles_predicted == cpu.tiles_predicted > 0
    with rasterio.open(cpu.out) as a, rasterio.open(gpu.out) as b, rasterio.open(image) as src:
        assert b.transform == a.transform == src.transform and b.crs == src.crs
        agree = (a.read(1) == b.read(1)).mean()
        assert b.tags()["GEOSEG_PARAMS"] == a.tags()["GEOSEG_PARAMS"]  # both torch, tile 256 + 32
    assert agree >= AGREE, f"the CUDA map equals the CPU's on {agree:.4%} of pixels"


def test_training_auto_runs_on_cuda_and_writes_a_cpu_loadable_checkpoint(
    tmp_path: Path, shared_data: Path
) -> None:
    from geoseg.training import TrainConfig, Trainer, load_labelset

    settings = {
        "out": str(tmp_path / "m.safetensors"), "dataset": "amazon-s2-rgb", "arch": "Unet",
        "encoder": "mobilenet_v2", "model_kwargs": {"decoder_channels": [32, 16, 16, 8, 8]},
        "chip_size": 64, "batch_size": 4, "epochs": 3, "steps_per_epoch": 4, "lr": 0.01, "seed": 0,
    }  # fmt: skip
    cfg = TrainConfig.from_dict(settings)
    data = load_labelset("amazon-s2-rgb", cfg)
    data.val = data.val[:2]
    result = Trainer(cfg, data).fit()
    losses = [h["loss"] for h in result.history]
    assert losses[-1] < losses[0]
    provenance = read_spec(result.out).provenance
    assert provenance["config"]["device"] == "auto" and provenance["trained_on"].startswith("cuda:")
    model = load_checkpoint(result.out)  # saved from the GPU, read on the CPU
    assert all(not p.is_cuda for p in model.module.parameters())
