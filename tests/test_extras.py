"""The core install: vectorize, change and track run without the models' libraries; predict
says in one line which extra to install."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from affine import Affine
from rasterio.crs import CRS

from geoseg.classes import ClassInfo
from geoseg.errors import EXTRA_OF_MODULE
from geoseg.raster import Grid, class_map_writer

# A fresh interpreter in which the `predict` extra's modules cannot be imported, as after
# `pip install geoseg` without extras; it then runs the geoseg command line.
NO_EXTRAS = f"""
import importlib.abc, sys
BLOCKED = {sorted(EXTRA_OF_MODULE)!r}
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None
sys.meta_path.insert(0, Blocker())
from geoseg.cli import main
sys.argv = ["geoseg", *sys.argv[1:]]
main()
"""

CLASSES = [ClassInfo(0, "forest", (34, 139, 34)), ClassInfo(1, "cleared", (210, 180, 140))]


def class_map(path: Path, values: np.ndarray) -> Path:
    grid = Grid(values.shape, Affine(10, 0, 500_000, 0, -10, 9_000_000), CRS.from_epsg(32720))
    with class_map_writer(path, grid, CLASSES) as w:
        w.write(grid.window, values)
    return path


def geoseg(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", NO_EXTRAS, *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def maps(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("maps")
    rng = np.random.default_rng(0)
    before = np.zeros((96, 96), np.uint8)
    after = before.copy()
    after[20:60, 30:70] = 1
    after[rng.random((96, 96)) < 0.01] = 1
    return class_map(d / "2019.tif", before), class_map(d / "2024.tif", after)


@pytest.mark.slow
def test_vectorize_change_and_track_need_no_models(maps: tuple[Path, Path], tmp_path: Path) -> None:
    before, after = maps
    r = geoseg("vectorize", str(after), "--out", "lc.gpkg", "--workers", "0", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = geoseg("change", str(before), str(after), "--out", "c.gpkg", "--raster", "c.tif", "--workers", "0",
               cwd=tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stderr
    r = geoseg("track", str(before), str(after), "--forest", "forest", "--out", "t.gpkg", "--workers", "0",
               cwd=tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "c.gpkg", "c.qml", "c.tif", "c.tif.aux.xml", "lc.gpkg", "t.gpkg",
    ]  # fmt: skip


def test_predict_without_the_extra_is_one_line(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    from geoseg.data import SceneSpec, write_scene

    scene = write_scene(SceneSpec(128, 128, seed=1), tmp_path_factory.mktemp("scene") / "s.tif")
    model = Path(__file__).resolve().parents[1] / "geoseg" / "models" / "demo-synthetic.safetensors"
    r = geoseg("predict", str(scene), "--model", str(model), "--out", "o.tif", "--workers", "0", cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "install it with `pip install 'geoseg[predict]'`" in lines[0], r.stderr
    assert list(tmp_path.iterdir()) == []
