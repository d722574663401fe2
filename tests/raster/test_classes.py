"""A class map's class table as other tools write it: RATs, category names, QGIS styles, legend files."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from geoseg.classes import ClassInfo
from geoseg.errors import ConfigError, MissingFileError
from geoseg.raster import (
    Grid,
    LegendEntry,
    class_map_writer,
    class_values,
    find_classes,
    load_legend,
    open_raster,
    sample_values,
)

UTM = Affine(30, 0, 300_000, 0, -30, 4_150_000)
PLAIN = np.array([[1, 1, 2, 3], [1, 2, 2, 3], [7, 7, 255, 3]], np.uint8)


def plain_map(
    path: Path, array: np.ndarray = PLAIN, colormap: dict[int, tuple[int, ...]] | None = None
) -> Path:
    """A class map as another tool leaves it: values, nodata 255, maybe a palette, no names."""
    with rasterio.open(path, "w", driver="GTiff", width=array.shape[1], height=array.shape[0], count=1,
                       dtype=array.dtype.name, crs="EPSG:32612", transform=UTM, nodata=255) as ds:  # fmt: skip
        ds.write(array, 1)
        if colormap:
            ds.write_colormap(1, colormap)
    return path


def gdal(*args: str) -> None:
    if not shutil.which(args[0]):
        pytest.skip(f"GDAL command-line tool {args[0]} is not installed")
    subprocess.run(args, check=True, capture_output=True, timeout=60)


# --------------------------------------------------------------------------- from the file


def test_real_nlcd_names_come_from_its_category_names(shared_data: Path) -> None:
    path = shared_data / "zion-landsat8" / "nlcd.tif"
    table = find_classes(path)
    assert table.source == "category names"
    names = table.names()
    expected = ["Water", "Developed", "Barren", "Forest", "Shrubland", "Herbaceous", "Cultivated", "Wetlands"]
    assert [names[i] for i in range(1, 9)] == expected
    by_id = {c.id: c for c in table.classes}
    with rasterio.open(path) as ds:  # the colours are the file's own colour table's
        assert by_id[4].colour == ds.colormap(1)[4][:3] == (104, 170, 99)
    assert 255 not in names  # nodata is no class


def test_no_sidecar_is_written_next_to_an_input(shared_data: Path, tmp_path: Path) -> None:
    for name in ("nlcd.tif", "nlcd.tif.aux.xml"):
        shutil.copy(shared_data / "zion-landsat8" / name, tmp_path / name)
    plain = plain_map(tmp_path / "plain.tif")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    find_classes(tmp_path / "nlcd.tif")
    find_classes(plain)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


RAT_PAM = """<PAMDataset>
  <PAMRasterBand band="1">
    <GDALRasterAttributeTable tableType="thematic">
      <FieldDefn index="0"><Name>Value</Name><Type>0</Type><Usage>0</Usage></FieldDefn>
      <FieldDefn index="1"><Name>Count</Name><Type>0</Type><Usage>1</Usage></FieldDefn>
      <FieldDefn index="2"><Name>Class_Name</Name><Type>2</Type><Usage>0</Usage></FieldDefn>
      <FieldDefn index="3"><Name>Red</Name><Type>0</Type><Usage>6</Usage></FieldDefn>
      <FieldDefn index="4"><Name>Green</Name><Type>0</Type><Usage>7</Usage></FieldDefn>
      <FieldDefn index="5"><Name>Blue</Name><Type>0</Type><Usage>8</Usage></FieldDefn>
      <Row index="0"><F>1</F><F>3</F><F>Tree cover</F><F>0</F><F>100</F><F>0</F></Row>
      <Row index="1"><F>2</F><F>3</F><F>Cropland</F><F>240</F><F>150</F><F>255</F></Row>
      <Row index="2"><F>3</F><F>3</F><F>Built-up &amp; roads</F><F>250</F><F>0</F><F>0</F></Row>
      <Row index="3"><F>7</F><F>2</F><F></F><F>0</F><F>0</F><F>0</F></Row>
    </GDALRasterAttributeTable>
  </PAMRasterBand>
</PAMDataset>
"""


def test_raster_attribute_table_of_a_pam_sidecar_and_of_erdas_imagine(tmp_path: Path) -> None:
    """A RAT the way ArcGIS leaves it beside a GeoTIFF (generic ``Value``/``Class_Name``
    columns), then copied by GDAL's own gdal_translate into an ERDAS .img, which holds it inside."""
    tif = plain_map(tmp_path / "worldcover.tif")
    (tmp_path / "worldcover.tif.aux.xml").write_text(RAT_PAM)
    table = find_classes(tif)
    assert table.source == "raster attribute table"
    assert [(c.id, c.name, c.colour) for c in table.classes] == [
        (1, "Tree cover", (0, 100, 0)), (2, "Cropland", (240, 150, 255)), (3, "Built-up & roads", (250, 0, 0)),
    ]  # fmt: skip  # row 7 has no name: value 7 stays unnamed
    img = tmp_path / "worldcover.img"
    gdal("gdal_translate", "-q", "-of", "HFA", str(tif), str(img))
    side = tmp_path / "worldcover.img.aux.xml"  # GDAL's leftovers; HFA keeps the RAT inside the file
    assert not side.exists() or "GDALRasterAttributeTable" not in side.read_text()
    assert find_classes(img).names() == {1: "Tree cover", 2: "Cropland", 3: "Built-up & roads"}


def test_envi_classification_header(tmp_path: Path) -> None:
    """ENVI classification files name their classes in the .hdr (GDAL: category names and colours)."""
    path = tmp_path / "classified.dat"
    with rasterio.open(path, "w", driver="ENVI", width=4, height=3, count=1, dtype="uint8",
                       crs="EPSG:32612", transform=UTM) as ds:  # fmt: skip
        ds.write(PLAIN % 4, 1)
    hdr = tmp_path / "classified.hdr"
    hdr.write_text(
        hdr.read_text().replace("file type = ENVI Standard", "file type = ENVI Classification")
        + "classes = 4\nclass names = {Unclassified, forest, water, bare}\n"
        "class lookup = {0, 0, 0, 0, 128, 0, 0, 0, 255, 200, 200, 200}\n"
    )
    table = find_classes(path)
    assert table.names() == {0: "Unclassified", 1: "forest", 2: "water", 3: "bare"}
    assert {c.id: c.colour for c in table.classes}[1] == (0, 128, 0)


def test_qgis_style_and_colour_map_beside_the_file(tmp_path: Path) -> None:
    tif = plain_map(tmp_path / "reclass.tif")
    assert not find_classes(tif).named
    (tmp_path / "reclass.clr").write_text(
        "# ArcGIS colour map\n1 0 128 0 forest\n2 255 255 0\n3 200 0 0 urban area\n"
    )
    table = find_classes(tif)
    assert table.source == "reclass.clr" and table.names() == {1: "forest", 2: "2", 3: "urban area"}
    (tmp_path / "reclass.qml").write_text(QML_EXACT)
    table = find_classes(tif)  # the QGIS style comes first
    assert table.source == "reclass.qml" and table.names() == {1: "Wald", 2: "Acker", 3: "Siedlung"}
    assert {c.id: c.colour for c in table.classes}[2] == (255, 215, 0)
    (tmp_path / "reclass.qml").write_text(QML_EXACT.replace('"EXACT"', '"INTERPOLATED"'))
    assert find_classes(tif).source == "reclass.clr"  # a continuous ramp names no classes: skipped


def test_geoseg_metadata_comes_first(tmp_path: Path) -> None:
    grid = Grid(PLAIN.shape, UTM, rasterio.crs.CRS.from_epsg(32612))
    classes = [ClassInfo(1, "forest", (0, 90, 0)), ClassInfo(2, "crop", (250, 220, 0)), ClassInfo(3, "urban")]
    out = tmp_path / "ours.tif"
    with class_map_writer(out, grid, classes) as w:
        w.write(grid.window, PLAIN)
    (tmp_path / "ours.qml").write_text(QML_EXACT)  # someone's style: geoseg's own names still win
    table = find_classes(out)
    assert table.from_geoseg and table.classes == tuple(classes)


def test_legend_over_the_file_names_and_values_by_id(tmp_path: Path) -> None:
    tif = plain_map(tmp_path / "m.tif", colormap={1: (10, 20, 30), 7: (70, 70, 70)})
    table = find_classes(tif).with_legend([LegendEntry(1, "forest"), LegendEntry(3, "urban", (200, 0, 0))])
    assert [(c.id, c.name, c.colour) for c in table.classes] == [
        (1, "forest", (10, 20, 30)),
        (3, "urban", (200, 0, 0)),
    ]
    full = table.with_values(class_values(open_raster(tif)))
    assert [(c.id, c.name) for c in full.classes] == [(1, "forest"), (2, "2"), (3, "urban"), (7, "7")]
    assert {c.id: c.colour for c in full.classes}[7] == (70, 70, 70)  # from the file's colour table


# --------------------------------------------------------------------------- values


def test_class_values_stop_early_on_imagery(shared_data: Path, tmp_path: Path) -> None:
    assert class_values(open_raster(plain_map(tmp_path / "p.tif"))) == [1, 2, 3, 7]
    band = open_raster(shared_data / "zion-landsat8" / "landsat_b2.tif")  # uint16 digital numbers
    found = class_values(band, limit=255)
    assert len(found) > 255
    sample = sample_values(band)
    assert 0 < sample.size <= 1 << 20 and np.unique(sample).size > 255


# --------------------------------------------------------------------------- legend files

QML_EXACT = """<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>
<qgis version="3.22.16-Białowieża" styleCategories="AllStyleCategories">
  <pipe>
    <rasterrenderer type="singlebandpseudocolor" band="1" opacity="1" alphaBand="-1">
      <rastershader>
        <colorrampshader colorRampType="EXACT" classificationMode="1" clip="0">
          <item alpha="255" value="1" label="Wald" color="#228b22"/>
          <item alpha="255" value="2" label="Acker" color="#ffd700"/>
          <item alpha="255" value="3" label="Siedlung" color="#c80000"/>
        </colorrampshader>
      </rastershader>
    </rasterrenderer>
  </pipe>
</qgis>
"""

QML_PALETTED = """<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>
<qgis version="3.34.4-Prizren" styleCategories="Symbology">
  <pipe>
    <rasterrenderer type="paletted" band="1" opacity="1" alphaBand="-1" nodataColor="">
      <colorPalette>
        <paletteEntry value="10" color="#006400" alpha="255" label="Tree cover"/>
        <paletteEntry value="40" color="#f096ff" alpha="255" label="Cropland"/>
        <paletteEntry value="50,60" color="#fa0000" alpha="255" label="Built-up or bare"/>
      </colorPalette>
    </rasterrenderer>
  </pipe>
</qgis>
"""


def test_legend_files_in_every_form(tmp_path: Path) -> None:
    forms = {
        "legend.csv": "ID,Name,Colour\n10,Tree cover,#006400\n40,Cropland,240 150 255\n",
        "legend.json": json.dumps(
            [{"id": 10, "name": "Tree cover", "colour": [0, 100, 0]}, {"id": 40, "name": "Cropland"}]
        ),
        "legend.yaml": "10: Tree cover\n40: {name: Cropland, color: '#f096ff'}\n",
        "legend.qml": QML_PALETTED,
        "legend.clr": "10 0 100 0 Tree cover\n40 240 150 255 Cropland\n",
        # QGIS: layer properties > symbology > export colour map
        "legend.txt": "# QGIS Generated Color Map Export File\nINTERPOLATION:EXACT\n10,0,100,0,255,Tree cover\n"
        "40,240,150,255,255,Cropland\n",
    }
    for name, text in forms.items():
        (tmp_path / name).write_text(text)
        entries = load_legend(tmp_path / name)
        assert [(e.id, e.name) for e in entries][:2] == [(10, "Tree cover"), (40, "Cropland")], name
        assert entries[0].colour in (None, (0, 100, 0)), name
    assert [(e.id, e.name) for e in load_legend(tmp_path / "legend.qml")][2:] == [
        (50, "Built-up or bare"),
        (60, "Built-up or bare"),
    ]
    assert load_legend(tmp_path / "legend.json")[1].colour is None  # named only: the map's colour stays


@pytest.mark.parametrize(
    ("name", "text", "expect"),
    [
        ("twice.csv", "id,name\n1,a\n1,b\n", "lists a class id twice (1)"),
        ("ramp.qml", QML_EXACT.replace('"EXACT"', '"INTERPOLATED"'), "styles continuous values"),
        (
            "ramp.txt",
            "INTERPOLATION:INTERPOLATED\n0,0,0,0,255,low\n",
            "colour ramp with interpolated interpolation (continuous values)",
        ),
        ("dem.clr", "0.5 0 0 0\n", "is not a whole number"),
        ("none.csv", "id,label\n1,a\n", "needs an integer id and a name"),
    ],
)
def test_bad_legend_files(tmp_path: Path, name: str, text: str, expect: str) -> None:
    (tmp_path / name).write_text(text)
    with pytest.raises(ConfigError, match=re.escape(expect)) as info:
        load_legend(tmp_path / name)
    assert str(info.value).startswith(str(tmp_path / name))
    with pytest.raises(MissingFileError, match="no such legend file"):
        load_legend(tmp_path / "missing.csv")
