"""ONNX Runtime, the default backend on CPU: every architecture exports, a model that cannot falls
back to torch in one line, and the export cache stays within its cap."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from geoseg.cli import main
from geoseg.errors import BackendWarning, ExportError
from geoseg.inference import (
    ARCHITECTURES,
    LoadedModel,
    Predictor,
    export_onnx,
    init_checkpoint,
    load_checkpoint,
    make_spec,
    predict,
    resolve_backend,
    resolve_device,
)
from geoseg.inference._onnx import adaptive_avg_pool2d_traceable
from tests.conftest import WriteTif

#: The smallest settings of each architecture that smp builds (decoders of a few channels,
#: three encoder stages where it may choose): the export's time is the tracing's, per module.
TINY: dict[str, dict[str, object]] = {
    "Unet": {"encoder_depth": 3, "decoder_channels": [16, 8, 4]},
    "UnetPlusPlus": {"encoder_depth": 3, "decoder_channels": [16, 8, 4]},
    "FPN": {"encoder_depth": 3, "decoder_pyramid_channels": 16, "decoder_segmentation_channels": 32},
    "PSPNet": {"encoder_depth": 3, "psp_out_channels": 16},
    "DeepLabV3": {"encoder_depth": 3, "decoder_channels": 16},
    "DeepLabV3Plus": {"encoder_depth": 4, "decoder_channels": 16},
    "Linknet": {"encoder_depth": 3},
    "MAnet": {"encoder_depth": 3, "decoder_channels": [16, 8, 4], "decoder_pab_channels": 8},
    "PAN": {"decoder_channels": 16},
    "UPerNet": {"decoder_channels": 16},
    "Segformer": {"decoder_segmentation_channels": 16},
    "FCN": {"encoder_depth": 3},
}

RGB = ["red", "green", "blue"]


def rgb_scene(write_tif: WriteTif, height: int = 288, width: int = 320) -> Path:
    """A 3-band uint8 scene with structure at several scales (fields, a gradient, noise)."""
    rng = np.random.default_rng(4)
    yy, xx = np.mgrid[0:height, 0:width]
    base = 120 + 60 * np.sin(yy / 17.0) * np.cos(xx / 29.0) + 0.2 * xx + rng.normal(0, 8, (height, width))
    bands = np.stack([base, base * 0.8 + 30, 255 - base])
    return write_tif("rgb.tif", np.clip(bands, 0, 255).astype("uint8"), descriptions=RGB)


def tiny_checkpoint(tmp_path: Path, arch: str = "Unet") -> Path:
    spec = make_spec(arch, "resnet18", RGB, 3, mean=[120.0] * 3, std=[50.0] * 3, **TINY[arch])
    return init_checkpoint(tmp_path / f"{arch}.safetensors", spec, seed=1)


def test_tiny_settings_cover_every_architecture() -> None:
    assert set(TINY) == set(ARCHITECTURES)  # a new architecture gets its own tiny settings here


@pytest.mark.slow
@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_every_architecture_predicts_with_the_default_backend(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write_tif: WriteTif, arch: str
) -> None:
    """``geoseg predict``'s defaults with every architecture ``geoseg model init`` offers:
    ONNX Runtime on a CPU, no fallback, and the torch backend's probabilities."""
    monkeypatch.setenv("GEOSEG_CACHE", str(tmp_path / "cache"))
    model, image = tiny_checkpoint(tmp_path, arch), rgb_scene(write_tif)
    probs: dict[str, np.ndarray] = {}
    for backend in ("auto", "torch"):
        out, prob = tmp_path / f"{backend}.tif", tmp_path / f"{backend}-probs.tif"
        with warnings.catch_warnings():
            warnings.simplefilter("error", BackendWarning)
            predict(image, model, out, workers=0, probabilities=prob, backend=backend)
        with rasterio.open(out) as ds:
            used = json.loads(ds.tags()["GEOSEG_PARAMS"])["backend"]
        assert used == resolve_backend(backend, resolve_device("auto"))  # auto: onnx on a CPU
        with rasterio.open(prob) as ds:
            probs[backend] = ds.read().astype(np.int16)
    assert probs["auto"].shape == (3, 288, 320)
    assert np.abs(probs["auto"] - probs["torch"]).max() <= 1  # float rounding, nothing more
    assert probs["torch"].std() > 1  # scores that vary over the scene: the comparison says something


@pytest.mark.parametrize("size", [(1, 1), (2, 2), (3, 3), (6, 6), (2, 5), (None, 3), 4])
def test_traceable_pooling_is_adaptive_average_pooling(size: object) -> None:
    x = torch.randn(2, 3, 37, 23)
    for h, w in [(37, 23), (6, 6), (7, 19), (13, 12)]:
        part = x[:, :, :h, :w]
        want = F.adaptive_avg_pool2d(part, size)  # type: ignore[arg-type]
        got = adaptive_avg_pool2d_traceable(part, (size, size) if isinstance(size, int) else size)
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)


def test_pyramid_pooling_exports_for_every_input_size(tmp_path: Path) -> None:
    """Adaptive pooling to 2, 3 and 6 bins (a module and ``interpolate(mode="area")``, PSPNet's
    two ways) has no size-free ONNX operator: the export computes the bins from the shape."""
    import onnxruntime as ort

    class Pyramid(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(2, 2, 3, padding=1)
            self.pool = torch.nn.AdaptiveAvgPool2d(6)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.conv(x)
            size = y.shape[2:]
            up = [F.interpolate(self.pool(y), size=size, mode="bilinear", align_corners=False)]
            for k in (2, 3):
                up.append(
                    F.interpolate(F.interpolate(y, size=(k, k), mode="area"), size=size, mode="nearest")
                )
            return torch.cat([y, *up], 1)

    module = Pyramid().eval()
    spec = make_spec("Unet", "resnet18", 2, 2)
    export_onnx(LoadedModel(spec, module, tmp_path / "pyramid.safetensors", "0" * 64), tmp_path / "p.onnx")
    session = ort.InferenceSession(str(tmp_path / "p.onnx"), providers=["CPUExecutionProvider"])
    for h, w in [(64, 64), (96, 160), (100, 37), (6, 6)]:  # also sizes no bin count divides
        x = np.random.default_rng(h).normal(size=(1, 2, h, w)).astype(np.float32)
        with torch.no_grad():
            want = module(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(session.run(None, {"input": x})[0], want, atol=1e-5)


def test_a_model_that_cannot_be_exported_is_one_line(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """A real operator the ONNX exporter lacks (cummax): one ExportError line, no file, and
    none of the traced graph torch prints on the way."""

    class RunningMax(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.cummax(x, dim=2).values

    spec = make_spec("Unet", "resnet18", 2, 2)
    model = LoadedModel(spec, RunningMax(), tmp_path / "cummax.safetensors", "0" * 64)
    print("before", flush=True)
    with pytest.raises(ExportError) as err:
        export_onnx(model, tmp_path / "m.onnx")
    print("after", flush=True)
    message = str(err.value)
    assert "\n" not in message and "cummax.safetensors (Unet/resnet18) cannot be exported to ONNX" in message
    assert "aten::cummax" in message
    assert not list(tmp_path.glob("*.onnx*")) and not list(tmp_path.glob(".*"))
    out, errs = capfd.readouterr()
    assert out == "before\nafter\n" and "graph" not in errs  # torch's dump held back


def test_an_export_that_cannot_be_kept_falls_back_to_torch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write_tif: WriteTif
) -> None:
    """Where the export cannot be made (here: the cache is not a folder), ``auto`` predicts with
    torch, says so once, and records it; ``onnx`` asked for is one error line, exit 2."""
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("GEOSEG_CACHE", str(tmp_path / "file" / "cache"))
    model, image = tiny_checkpoint(tmp_path), rgb_scene(write_tif)
    if resolve_backend("auto", resolve_device("auto")) != "onnx":
        pytest.skip("auto is torch on this machine (a GPU): no export to fall back from")
    out = tmp_path / "map.tif"
    r = CliRunner().invoke(
        main, ["predict", str(image), "--model", str(model), "--out", str(out), "--workers", "0"]
    )
    assert r.exit_code == 0, r.output
    warned = [line for line in r.output.splitlines() if line.startswith("geoseg: warning:")]
    assert len(warned) == 1 and "Traceback" not in r.output
    assert (
        "cannot keep the ONNX export of Unet.safetensors in " in warned[0]
        and "(Not a directory)" in warned[0]
    )
    assert warned[0].endswith("; predicting with torch instead")
    with rasterio.open(out) as ds:
        assert json.loads(ds.tags()["GEOSEG_PARAMS"])["backend"] == "torch"
        fallback = ds.read(1)
    ref = tmp_path / "torch.tif"
    predict(image, model, ref, workers=0, backend="torch")
    with rasterio.open(ref) as ds:
        assert (ds.read(1) == fallback).all()
    onnx = tmp_path / "onnx.tif"
    r = CliRunner().invoke(
        main,
        [
            "predict",
            str(image),
            "--model",
            str(model),
            "--out",
            str(onnx),
            "--workers",
            "0",
            "--backend",
            "onnx",
        ],
    )
    assert r.exit_code == 2 and r.output.count("\n") == 1 and "Traceback" not in r.output
    assert "cannot keep the ONNX export" in r.output and "use --backend torch" in r.output
    assert not onnx.exists()
    # a Predictor built by hand falls back the same way, with a warning to filter
    with pytest.warns(BackendWarning, match="predicting with torch instead"):
        predictor = Predictor(load_checkpoint(model), backend="auto", threads=1)
    assert predictor.backend == "torch"


def test_export_check_refuses_a_graph_that_kept_its_traced_size(tmp_path: Path) -> None:
    """A model whose traced graph bakes its input size in (here: a reshape to the traced
    shape) must not be kept: it would give other tile sizes wrong scores or fail."""

    class Baked(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            n, c, h, w = x.shape
            return (x.reshape(n, c, int(h) * int(w)).softmax(-1)).reshape(n, c, int(h), int(w))

    spec = make_spec("Unet", "resnet18", 2, 2)
    with pytest.raises(
        ExportError, match=r"export of baked.safetensors \(Unet/resnet18\) (fails|gives|computes)"
    ):
        export_onnx(LoadedModel(spec, Baked(), tmp_path / "baked.safetensors", "0" * 64), tmp_path / "b.onnx")
    assert not (tmp_path / "b.onnx").exists()
