"""The input's values against the model's: another scale refused before any tile runs, another
pixel size or value range warned and recorded; checkpoints record their value domain."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from geoseg.errors import ModelError
from geoseg.inference import ValueDomain, init_checkpoint, make_spec, predict, read_spec
from geoseg.training import record_domain

GEOSEG = str(Path(sys.executable).parent / "geoseg")
MODELS = Path(__file__).resolve().parents[2] / "geoseg" / "models"


@pytest.fixture(scope="module")
def tile(shared_data: Path) -> Path:
    return sorted((shared_data / "amazon-s2-rgb" / "validation" / "images").glob("*.tif*"))[0]


def rewrite(src: Path, dst: Path, scale: float, dtype: str, pixel_factor: float = 1.0) -> Path:
    """``src`` as another product would deliver it: values x ``scale`` as ``dtype``."""
    with rasterio.open(src) as ds:
        a = ds.read().astype(np.float64)
        profile = ds.profile
    t = profile["transform"]
    profile.update(dtype=dtype, transform=Affine(t.a * pixel_factor, t.b, t.c, t.d, t.e * pixel_factor, t.f))
    with rasterio.open(dst, "w", **profile) as out:
        out.write((a * scale).astype(dtype))
    return dst


def geoseg(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([GEOSEG, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_shipped_models_record_their_domain() -> None:
    forest = read_spec(MODELS / "forest-s2-rgb.safetensors")
    assert forest.domain is not None and forest.domain.dtype == "uint8"
    assert forest.domain.pixel_size_m == pytest.approx(10, rel=0.05)
    assert all(0 <= lo < hi <= 255 for lo, hi in zip(forest.domain.low, forest.domain.high, strict=True))
    nc = read_spec(MODELS / "landcover-nc-landsat7.safetensors")
    assert nc.domain is not None and nc.domain.pixel_size_m == pytest.approx(28.5)


def test_reflectance_into_an_8_bit_model_is_refused_and_the_scale_fixes_it(
    tile: Path, tmp_path: Path
) -> None:
    u16 = rewrite(tile, tmp_path / "refl.tif", 40, "uint16")  # 8-bit x 40: a uint16 product
    r = geoseg(
        "predict", str(u16), "--model", "forest-s2-rgb", "--out", "o.tif", "--workers", "0", cwd=tmp_path
    )
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert "uint16 values up to" in lines[0] and "trained on uint8 values" in lines[0]
    assert "--input-scale 0.02" in lines[0]  # about 1/40
    assert sorted(p.name for p in tmp_path.iterdir()) == ["refl.tif"]  # nothing written
    fixed = predict(u16, "forest-s2-rgb", tmp_path / "fixed.tif", workers=0, input_scale=1 / 40)
    plain = predict(tile, "forest-s2-rgb", tmp_path / "plain.tif", workers=0)
    with rasterio.open(fixed.out) as a, rasterio.open(plain.out) as b:
        assert np.array_equal(a.read(1), b.read(1))  # the same map as the 8-bit original
        assert json.loads(a.tags()["GEOSEG_PARAMS"])["input_scale"] == pytest.approx(0.025)


def test_reflectance_0_to_1_into_an_integer_model_is_refused(tile: Path, tmp_path: Path) -> None:
    f01 = rewrite(tile, tmp_path / "f01.tif", 1 / 255, "float32")
    with pytest.raises(
        ModelError, match=r"float32 values up to 0\.\d+, but .* uint8 .*input_scale of about 2\d\d"
    ):
        predict(f01, "forest-s2-rgb", tmp_path / "o.tif", workers=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f01.tif"]


def test_coarser_pixels_warn_and_the_warning_is_recorded(tile: Path, tmp_path: Path) -> None:
    coarse = rewrite(tile, tmp_path / "coarse.tif", 1, "uint8", pixel_factor=3)  # 30 m pixels
    with pytest.warns(UserWarning, match=r"30 m pixels .* trained on 10 m ones; zoom 3 would match them"):
        res = predict(coarse, "forest-s2-rgb", tmp_path / "o.tif", workers=0)
    with rasterio.open(res.out) as ds:
        assert "zoom 3 would match" in json.loads(ds.tags()["GEOSEG_WARNINGS"])[0]
    r = geoseg(
        "predict", str(coarse), "--model", "forest-s2-rgb", "--out", "c.tif", "--workers", "0", cwd=tmp_path
    )
    assert r.returncode == 0 and "geoseg: warning: " in r.stderr and "coarse.tif has 30 m pixels" in r.stderr


def test_a_checkpoint_without_a_domain_is_not_checked(tile: Path, tmp_path: Path) -> None:
    spec = make_spec("Unet", "resnet18", 3, 2, encoder_depth=3, decoder_channels=[16, 8, 8])
    old = init_checkpoint(tmp_path / "old.safetensors", spec)
    assert read_spec(old).domain is None
    u16 = rewrite(tile, tmp_path / "refl.tif", 40, "uint16")
    predict(u16, old, tmp_path / "o.tif", workers=0, backend="torch")  # nothing to check against
    r = geoseg("model", "info", str(old), cwd=tmp_path)
    assert "domain unknown" in r.stdout


@pytest.mark.slow
def test_record_domain_keeps_the_weights(tmp_path: Path) -> None:
    from safetensors.numpy import load_file

    shipped = MODELS / "demo-synthetic.safetensors"
    domain = record_domain(shipped, tmp_path / "again.safetensors")
    assert domain == read_spec(shipped).domain  # the same measurement as the shipped one's
    assert (
        isinstance(domain, ValueDomain) and domain.dtype == "uint16" and domain.scale == pytest.approx(1e-4)
    )
    a, b = load_file(shipped), load_file(tmp_path / "again.safetensors")
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
