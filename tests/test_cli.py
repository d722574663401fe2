"""The CLI skeleton and the demo, run as a user runs them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import rasterio
from click.testing import CliRunner

from geoseg import __version__
from geoseg.cli import COMMANDS, main

GEOSEG = str(Path(sys.executable).parent / "geoseg")


def test_version_and_help_for_every_command() -> None:
    runner = CliRunner()
    r = runner.invoke(main, ["--version"])
    assert r.exit_code == 0 and __version__ in r.output
    r = runner.invoke(main, ["--help"])
    assert r.exit_code == 0
    for name in COMMANDS:
        assert name in r.output
        r2 = runner.invoke(main, [name, "--help"])
        assert r2.exit_code == 0, (name, r2.output)
        assert "Usage:" in r2.output


@pytest.mark.parametrize(
    ("args", "expect"),
    [
        (
            ["predict", "missing.tif", "--model", "m.safetensors", "--out", "o.tif"],
            "missing.tif: no such file",
        ),
        (["model", "info", "nope.safetensors"], "nope.safetensors: no such model file"),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path: Path, args: list[str], expect: str) -> None:
    p = subprocess.run([GEOSEG, *args], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("geoseg: error:") and expect in lines[0], p.stderr
    assert list(tmp_path.iterdir()) == []


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    p = subprocess.run([GEOSEG, "--debug", "model", "info", "nope.safetensors"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert p.returncode != 0 and "Traceback" in p.stderr


def test_demo_end_to_end(tmp_path: Path) -> None:
    import json

    import pyogrio

    from geoseg.io import validate_cog

    out = tmp_path / "demo"
    p = subprocess.run([GEOSEG, "demo", "--out", str(out), "--size", "1024", "--workers", "1"],
                       capture_output=True, text=True, timeout=600)  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert "INFO" not in p.stderr  # dask's worker chatter stays quiet without -vv
    for date in (1, 2):
        cog = out / f"landcover_date{date}.tif"
        assert validate_cog(cog)[0]
        with rasterio.open(cog) as pred, rasterio.open(out / f"scene_date{date}.tif") as scene:
            assert pred.shape == scene.shape and pred.transform == scene.transform and pred.crs == scene.crs
    metrics = json.loads((out / "accuracy.json").read_text())
    # the shipped demo model on a region it never saw (trained on seed 7, demo uses 3)
    assert metrics["date1"]["accuracy"] > 0.95 and metrics["date2"]["accuracy"] > 0.95
    loss = metrics["forest_loss_ha"]
    assert abs(loss["mapped"] - loss["truth"]) < 0.25 * loss["truth"]
    layers = {name for name, _ in pyogrio.list_layers(out / "geoseg-demo.gpkg")}
    assert {"change", "landcover_before", "landcover_after", "transition_matrix"} <= layers
    assert (out / "report" / "index.html").exists() and (out / "report" / "change.png").exists()
