"""Every architecture geoseg names builds, runs and round-trips through a checkpoint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from geoseg.inference import ARCHITECTURES, Predictor, init_checkpoint, load_checkpoint, make_spec


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_architecture_builds_and_predicts(tmp_path: Path, arch: str) -> None:
    spec = make_spec(arch, "resnet18", 5, 3)  # any band count, any class count
    path = init_checkpoint(tmp_path / f"{arch}.safetensors", spec, seed=1)
    predictor = Predictor(load_checkpoint(path), device="cpu", backend="torch", threads=1)
    probs = predictor.probabilities(np.zeros((1, 5, 130, 150), np.float32))  # padded to /32 inside
    assert probs.shape == (1, 3, 130, 150)
    assert np.allclose(probs.sum(axis=1), 1, atol=1e-4)


def test_hrnet_encoder_through_timm(tmp_path: Path) -> None:
    path = init_checkpoint(tmp_path / "hrnet.safetensors", make_spec("Unet", "tu-hrnet_w18_small", 3, 2))
    probs = Predictor(load_checkpoint(path), device="cpu", backend="torch").probabilities(
        np.zeros((1, 3, 64, 64), np.float32)
    )
    assert probs.shape == (1, 2, 64, 64)


def test_auto_batch_size_follows_the_tile_on_cpu() -> None:
    from geoseg.inference import auto_batch_size

    assert auto_batch_size("cpu", 640 * 640) == 4  # tile 512 + overlap 64: the measured default
    assert auto_batch_size("cpu", 384 * 384) == 11  # smaller tiles, more per batch
    assert auto_batch_size("cpu", 64 * 64) == 16  # capped
    assert auto_batch_size("cpu", 4096 * 4096) == 1  # never zero


def test_cpu_client_decides_auto_device_without_importing_torch() -> None:
    import os
    import subprocess
    import sys

    code = (
        "import sys; from geoseg.inference import no_gpu_here, resolve_device; "
        "print(no_gpu_here(), resolve_device('auto'), 'torch' in sys.modules)"
    )
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # hides any GPU, as CUDA itself would
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.split() == ["True", "cpu", "False"]


def test_dihedral_mean_is_equivariant_and_exact_for_an_equivariant_model() -> None:
    from geoseg.inference import dihedral_mean

    x = np.random.default_rng(0).normal(size=(2, 3, 64, 96)).astype(np.float32)
    np.testing.assert_allclose(dihedral_mean(lambda a: a * 2, x), x * 2, rtol=1e-6)  # no view is lost

    def one_way(a: np.ndarray) -> np.ndarray:  # a "model" that knows left from right
        return np.cumsum(a, axis=3)

    y = dihedral_mean(one_way, x)
    assert not np.allclose(y, one_way(x))
    # whatever way round the image comes, the averaged answer turns with it
    np.testing.assert_allclose(
        dihedral_mean(one_way, np.rot90(x, 1, axes=(2, 3))), np.rot90(y, 1, axes=(2, 3)), atol=1e-4
    )
    np.testing.assert_allclose(dihedral_mean(one_way, x[..., ::-1]), y[..., ::-1], atol=1e-4)


def test_a_model_that_builds_but_cannot_run_is_refused_before_it_is_written(tmp_path: Path) -> None:
    from geoseg.errors import ModelError

    # smp builds scse attention on an 8-channel decoder stage (8 // 16 = 0 channels) and
    # fails only in the first forward pass
    spec = make_spec(
        "Unet", "mobilenet_v2", 3, 2, decoder_channels=[32, 16, 16, 8, 8], decoder_attention_type="scse"
    )
    with pytest.raises(ModelError, match="builds but cannot run"):
        init_checkpoint(tmp_path / "m.safetensors", spec)
    assert not list(tmp_path.iterdir())
    ok = make_spec(
        "Unet", "mobilenet_v2", 3, 2, decoder_channels=[32, 16, 16, 16, 16], decoder_attention_type="scse"
    )
    assert load_checkpoint(init_checkpoint(tmp_path / "ok.safetensors", ok)).spec.kwargs == ok.kwargs


def test_resize_bilinear_is_torch_interpolate_in_numpy() -> None:
    import torch
    import torch.nn.functional as F

    from geoseg.inference import resize_bilinear

    rng = np.random.default_rng(0)
    for shape, size in [
        ((2, 3, 37, 53), (64, 96)),  # up, odd sizes
        ((1, 2, 160, 160), (200, 200)),  # the 1.25 zoom of a tile
        ((1, 2, 200, 200), (160, 160)),  # and back
        ((1, 1, 9, 7), (3, 2)),  # down by uneven factors
        ((1, 1, 1, 1), (4, 4)),  # a single pixel spreads
    ]:
        x = rng.random(shape, dtype=np.float32)
        ours = resize_bilinear(x, *size)
        ref = F.interpolate(torch.from_numpy(x), size=size, mode="bilinear", align_corners=False).numpy()
        assert ours.shape == ref.shape and ours.dtype == np.float32 and ours.flags.c_contiguous
        np.testing.assert_allclose(ours, ref, atol=1e-4)  # torch finds positions in float32
    x = rng.random((1, 2, 8, 8), dtype=np.float32)
    np.testing.assert_array_equal(resize_bilinear(x, 8, 8), x)


def test_zoomed_forward_runs_the_model_on_a_resampled_batch_and_returns_its_grid() -> None:
    from geoseg.inference import zoomed

    seen: list[tuple[int, ...]] = []

    def model(a: np.ndarray) -> np.ndarray:  # "scores" = the first two bands, as it saw them
        seen.append(a.shape)
        return a[:, :2] * 1.0

    assert zoomed(model, 1.0) is model
    rows, cols = np.mgrid[0:64, 0:96].astype(np.float32)
    x = np.stack([rows, cols, rows + cols])[None].repeat(2, axis=0)
    y = zoomed(model, 2.0)(x)
    assert seen == [(2, 3, 128, 192)] and y.shape == (2, 2, 64, 96)
    # bilinear resampling is exact on a linear ramp, so the scores land back on the pixels
    # they came from (away from the edge pixels, where resampling clamps)
    np.testing.assert_allclose(y[..., 1:-1, 1:-1], x[:, :2, 1:-1, 1:-1], atol=1e-4)
    zoomed(model, 1.3)(x)
    assert seen[-1] == (2, 3, 96, 128)  # 83.2 x 124.8 rounded to whole strides of 32


def test_zoom_travels_in_the_checkpoint(tmp_path: Path) -> None:
    import json
    from dataclasses import replace

    from geoseg.errors import ModelError
    from geoseg.inference import ModelSpec, read_spec, save_checkpoint

    spec = make_spec("Unet", "resnet18", 3, 2, encoder_depth=3, decoder_channels=[16, 8, 8])
    assert spec.zoom == 1.0
    loaded = load_checkpoint(init_checkpoint(tmp_path / "a.safetensors", spec))
    path = save_checkpoint(tmp_path / "z.safetensors", replace(loaded.spec, zoom=1.5), loaded.module)
    assert read_spec(path).zoom == 1.5
    before_zoom = json.loads(spec.to_json())
    del before_zoom["zoom"]  # a checkpoint written before zoom existed
    assert ModelSpec.from_json(json.dumps(before_zoom)).zoom == 1.0
    for bad in (0.0, -1.0, 9.0):
        with pytest.raises(ModelError, match="zoom must be in"):
            replace(spec, zoom=bad)
