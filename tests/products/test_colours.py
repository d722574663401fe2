"""One colour per transition: the change raster, the change layer's QGIS style, the change map
and the transition chart all show a transition in ``transition_colour``'s colour."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from PIL import Image
from rasterio.crs import CRS

from geoseg.api import change
from geoseg.classes import ClassInfo, default_colour
from geoseg.data import CLASSES
from geoseg.raster import Grid, class_map_writer
from geoseg.vector import read_styles, transition_colour

GRID = Grid((100, 120), Affine(10, 0, 500_000, 0, -10, 9_000_000), CRS.from_epsg(32720))


def _write(path: Path, array: np.ndarray) -> Path:
    with class_map_writer(path, GRID, CLASSES) as w:
        w.write(GRID.window, array)
    return path


@pytest.fixture(scope="module")
def changed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two maps whose change has blocks of known transitions of different sizes (the ranking
    is unambiguous), several of them into one class."""
    d = tmp_path_factory.mktemp("colours")
    h, w = GRID.shape
    before = np.zeros((h, w), np.uint8)  # forest
    before[:, 60:] = 3  # grassland
    after = before.copy()
    after[0:40, 0:50] = 3  # forest -> grassland, 2000 px
    after[50:80, 0:40] = 4  # forest -> bare soil, 1200 px
    after[0:30, 60:90] = 0  # grassland -> forest, 900 px
    after[40:60, 60:90] = 4  # grassland -> bare soil, 600 px
    after[70:80, 60:90] = 2  # grassland -> cropland, 300 px
    b, a = _write(d / "before.tif", before), _write(d / "after.tif", after)
    change(b, a, d / "c.gpkg", raster=d / "change.tif", report_dir=d / "report", workers=0)
    return d


def _bar_colours(png: Path) -> list[tuple[int, int, int]]:
    """The fill colours of a horizontal bar chart's bars, top to bottom: read just right of the
    y axis (the longest dark vertical line), where every bar starts."""
    rgb = np.asarray(Image.open(png).convert("RGB")).astype(int)
    dark = (rgb.sum(2) < 150).sum(0)
    x = int(np.argmax(dark)) + 3
    column = [tuple(int(v) for v in p) for p in rgb[:, x]]
    runs: list[tuple[int, int, int]] = []
    k = 0
    while k < len(column):
        n = 1
        while k + n < len(column) and column[k + n] == column[k]:
            n += 1
        if n >= 5 and column[k] != (255, 255, 255):
            runs.append(column[k])  # type: ignore[arg-type]
        k += n
    return runs


@pytest.mark.slow  # a change run with its report: ~3 s here
def test_a_transition_has_one_colour_everywhere(changed: Path) -> None:
    d = changed
    classes = list(CLASSES)
    names = [c.name for c in classes]
    ranked = [("forest", "grassland"), ("forest", "bare soil"), ("grassland", "forest"),
              ("grassland", "bare soil"), ("grassland", "cropland")]  # fmt: skip
    pairs = [(names.index(a), names.index(b)) for a, b in ranked]
    colours = [transition_colour(classes, i, j) for i, j in pairs]
    # two transitions into bare soil, from different classes: told apart
    assert colours[1] != colours[3] and len(set(colours)) == len(colours)

    n = len(classes)
    with rasterio.open(d / "change.tif") as ds:
        cmap = ds.colormap(1)
        for (i, j), c in zip(pairs, colours, strict=True):
            assert cmap[i * n + j][:3] == c
        assert cmap[0][:3] == transition_colour(classes, 0, 0)  # unchanged forest: its pale tint

    style = next(r for r in read_styles(d / "c.gpkg") if r["f_table_name"] == "change")
    renderer = ET.fromstring(style["styleQML"].split("\n", 1)[1]).find("renderer-v2")
    assert renderer is not None
    symbol_of = {c.get("value"): c.get("symbol") for c in renderer.iter("category")}
    assert set(symbol_of) == {f"{a} -> {b}" for a, b in ranked}  # only what occurs
    for (a, b), c in zip(ranked, colours, strict=True):
        sym = next(s for s in renderer.iter("symbol") if s.get("name") == symbol_of[f"{a} -> {b}"])
        assert any(o.get("name") == "color" and o.get("value") == f"{c[0]},{c[1]},{c[2]},255"
                   for o in sym.iter("Option"))  # fmt: skip
    sld = style["styleSLD"]
    for c in colours:
        assert "#{:02x}{:02x}{:02x}".format(*c) in sld

    # the chart: one bar per transition, largest first, each in its colour
    assert _bar_colours(d / "report" / "transitions.png") == colours
    # the map: every transition's pixels in that colour (the blocks are large enough to survive
    # the preview), unchanged forest in its tint
    m = np.asarray(Image.open(d / "report" / "change.png").convert("RGB")).reshape(-1, 3).astype(np.int64)
    present = set(np.unique(m[:, 0] << 16 | m[:, 1] << 8 | m[:, 2]).tolist())
    for c in [*colours, transition_colour(classes, 0, 0)]:
        assert c[0] << 16 | c[1] << 8 | c[2] in present


def test_unchanged_tint_and_shades_stay_apart() -> None:
    """For every class of a 10-class table, each transition into it differs from the class's
    unchanged tint, and the first source has the class's own colour."""
    classes = [ClassInfo(k, f"c{k}", default_colour(k)) for k in range(10)]
    for j, cj in enumerate(classes):
        tint = transition_colour(classes, j, j)
        into = [transition_colour(classes, i, j) for i in range(10) if i != j]
        assert into[0] == cj.colour
        assert all(sum((a - b) ** 2 for a, b in zip(c, tint, strict=True)) ** 0.5 >= 40 for c in into)
        assert len(set(into[:5])) == 5  # five sources into one class: five colours
