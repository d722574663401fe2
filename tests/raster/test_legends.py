"""Rasters QGIS and GDAL show with class names: colour table, RAT and category names, a .qml style."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS

from geoseg.classes import ClassInfo
from geoseg.raster import (
    Grid,
    RasterWriter,
    class_map_writer,
    find_classes,
    move_raster,
    remove_raster,
    sidecar_paths,
)
from geoseg.vector import loss_year_legend

GRID = Grid((300, 400), Affine(10, 0, 600_000, 0, -10, 9_100_000), CRS.from_epsg(32718))
CLASSES = [
    ClassInfo(0, "forest", (0, 100, 0)),
    ClassInfo(1, "pasture", (230, 200, 120)),
    ClassInfo(2, "water", (0, 100, 200)),
    ClassInfo(5, "urban", (200, 0, 0)),  # in the table, absent from the map
]
QGIS_PYTHON = "/usr/bin/python3"  # Debian's python3-qgis; QGIS is not a pip package


def class_array() -> np.ndarray:
    a = np.zeros(GRID.shape, np.uint8)
    a[:, 150:] = 1
    a[200:, 300:] = 2
    a[:20, :20] = 255
    return a


def gdalinfo(path: Path) -> dict:
    if not shutil.which("gdalinfo"):
        pytest.skip("GDAL command-line tools (gdal-bin) are not installed")
    p = subprocess.run(
        ["gdalinfo", "-json", str(path)], capture_output=True, text=True, timeout=60, check=True
    )
    return json.loads(p.stdout)


def rat_rows(info: dict) -> list[list]:
    rat = info.get("rat") or info["bands"][0].get("rat")  # GDAL 3.6 puts it at the top
    return [r["f"] for r in rat["row"]]


def test_class_map_has_a_named_legend_gdal_reads(tmp_path: Path) -> None:
    out = tmp_path / "landcover.tif"
    with class_map_writer(out, GRID, CLASSES) as w:
        w.write(GRID.window, class_array())
    a = class_array()
    info = gdalinfo(out)
    band = info["bands"][0]
    assert len(band["colorTable"]["entries"]) == 256  # a TIFF palette of 8-bit values has 256 entries
    assert band["colorTable"]["entries"][5][:3] == [200, 0, 0]
    assert band["categories"] == ["forest", "pasture", "water", "", "", "urban"]
    # one RAT row per class present, with its pixel count and colour; urban is absent
    assert rat_rows(info) == [
        [0, "forest", int((a == 0).sum()), 0, 100, 0],
        [1, "pasture", int((a == 1).sum()), 230, 200, 120],
        [2, "water", int((a == 2).sum()), 0, 100, 200],
    ]
    qml = (tmp_path / "landcover.qml").read_text()
    assert qml.count("<paletteEntry") == 3 and 'label="water"' in qml and "urban" not in qml
    table = find_classes(out)  # geoseg reads its own tags, the whole table
    assert table.from_geoseg and [c.name for c in table.classes] == ["forest", "pasture", "water", "urban"]


def test_loss_year_raster_has_no_65536_colour_table(tmp_path: Path) -> None:
    years = [1990, 1995, 2000, 2005]
    ly = np.zeros(GRID.shape, np.uint16)
    ly[:100, :100], ly[100:150, :] = 1990, 2000
    ly[-5:, -5:] = 65535
    out = tmp_path / "ly.tif"
    with RasterWriter(out, GRID, 1, "uint16", 65535, legend=loss_year_legend(years)) as w:
        w.write(GRID.window, ly)
    info = gdalinfo(out)
    assert "colorTable" not in info["bands"][0] and out.stat().st_size < 40_000
    rows = rat_rows(info)
    assert [(r[0], r[1], r[2]) for r in rows] == [
        (0, "no loss", int((ly == 0).sum())), (1990, "lost by 1990", 10_000), (2000, "lost by 2000", 20_000),
    ]  # fmt: skip  # the years present only
    qml = (tmp_path / "ly.qml").read_text()
    assert qml.count("<paletteEntry") == 3 and "1995" not in qml
    with rasterio.open(out) as ds:
        np.testing.assert_array_equal(ds.read(1), ly)
        assert "GEOSEG_CLASSES" not in ds.tags()  # named values, not a class map


def test_sidecars_go_and_come_with_their_raster(tmp_path: Path) -> None:
    first = tmp_path / ".staged.tif"
    with class_map_writer(first, GRID, CLASSES) as w:
        w.write(GRID.window, class_array())
    final = tmp_path / "map.tif"
    final.write_bytes(b"old")
    (tmp_path / "map.tif.aux.xml").write_text(
        "<PAMDataset><Metadata><MDI key='STATISTICS_MEAN'>9</MDI></Metadata></PAMDataset>"
    )
    move_raster(first, final)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map.qml", "map.tif", "map.tif.aux.xml"]
    assert "forest" in (tmp_path / "map.tif.aux.xml").read_text()
    # a raster without a legend replacing one drops the stale PAM file (statistics of other bytes)
    plain = tmp_path / "probabilities.tif"
    with RasterWriter(plain, GRID, 2, "uint8", 255) as w:
        w.write(GRID.window, np.zeros((2, *GRID.shape), np.uint8))
    assert not any(p.exists() for p in sidecar_paths(plain))
    move_raster(plain, final)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map.qml", "map.tif"]
    remove_raster(final)
    assert list(tmp_path.iterdir()) == []


PROBE = textwrap.dedent(
    """
    import json, os, sys
    from qgis.core import QgsApplication, QgsRasterLayer
    app = QgsApplication([], False)
    app.initQgis()
    out = {}
    for path in sys.argv[1:]:
        layer = QgsRasterLayer(path, "layer", "gdal")
        items = layer.renderer().legendSymbologyItems()
        out[path] = {"renderer": layer.renderer().type(), "legend": [[label, c.name()] for label, c in items]}
    print(json.dumps(out))
    sys.stdout.flush()
    os._exit(0)  # QGIS 3.22 may crash on exit without a display
    """
)


@pytest.mark.slow
def test_qgis_legend_lists_the_class_names(tmp_path: Path) -> None:
    """QGIS itself, headless, loading the rasters as a user would: the legend of a class map
    and of a loss-year raster lists the names of the values present, in their colours."""
    check = (
        subprocess.run([QGIS_PYTHON, "-c", "import qgis.core"], capture_output=True, timeout=60)
        if os.path.exists(QGIS_PYTHON)
        else None
    )
    if check is None or check.returncode != 0:
        pytest.skip("QGIS (Debian's python3-qgis) is not installed")
    classes = tmp_path / "landcover.tif"
    with class_map_writer(classes, GRID, CLASSES) as w:
        w.write(GRID.window, class_array())
    ly = tmp_path / "ly.tif"
    with RasterWriter(ly, GRID, 1, "uint16", 65535, legend=loss_year_legend([1990, 1995])) as w:
        w.write(GRID.window, np.where(class_array() == 1, 1995, 0).astype(np.uint16))
    (tmp_path / "probe.py").write_text(PROBE)
    p = subprocess.run(
        [QGIS_PYTHON, str(tmp_path / "probe.py"), str(classes), str(ly)],
        capture_output=True, text=True, timeout=120, env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    found = json.loads(p.stdout.strip().splitlines()[-1])
    assert found[str(classes)] == {
        "renderer": "paletted",
        "legend": [["forest", "#006400"], ["pasture", "#e6c878"], ["water", "#0064c8"]],
    }
    assert [label for label, _ in found[str(ly)]["legend"]] == ["no loss", "lost by 1995"]
