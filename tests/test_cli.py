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
    out = tmp_path / "demo"
    p = subprocess.run([GEOSEG, "demo", "--out", str(out), "--size", "600", "--workers", "1"],
                       capture_output=True, text=True, timeout=600)  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert "valid COG: True" in p.stdout and "accuracy" in p.stdout
    with rasterio.open(out / "landcover.tif") as pred, rasterio.open(out / "scene_date1.tif") as scene:
        assert pred.shape == scene.shape and pred.transform == scene.transform and pred.crs == scene.crs
    assert "INFO" not in p.stderr  # dask's worker chatter stays quiet without -vv
