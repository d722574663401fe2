"""change and track on class maps other tools made: no geoseg tags, names in RATs, category names or none."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyogrio
import pytest
import rasterio
from click.testing import CliRunner

from geoseg.classes import ClassInfo
from geoseg.cli import main
from geoseg.temporal import align_maps, detect_change
from geoseg.vector import transition_colour

GEOSEG = str(Path(sys.executable).parent / "geoseg")
ZION = "zion-landsat8"


def rewrite(src: Path, out: Path, array: np.ndarray, colormap: bool = True) -> Path:
    """``array`` on ``src``'s grid as a plain GeoTIFF (its colour table kept or not; no names)."""
    with rasterio.open(src) as ds:
        profile = {**ds.profile, "driver": "GTiff"}
        cmap = ds.colormap(1) if colormap else None
    with rasterio.Env(GDAL_PAM_ENABLED="NO"), rasterio.open(out, "w", **profile) as ds:
        ds.write(array, 1)
        if cmap:
            ds.write_colormap(1, cmap)
    return out


@pytest.fixture(scope="module")
def nlcd(shared_data: Path) -> tuple[Path, np.ndarray, float]:
    path = shared_data / ZION / "nlcd2011.tif"  # the full NLCD legend (11..95), a palette, no names
    with rasterio.open(path) as ds:
        return path, ds.read(1), abs(ds.transform.a * ds.transform.e) / 1e4


def run(*args: str) -> str:
    r = CliRunner().invoke(main, list(args))
    assert r.exit_code == 0, r.output
    return r.stdout


def test_change_between_plain_class_maps(nlcd: tuple, tmp_path: Path) -> None:
    """`geoseg change A B --from 42 --to 52` on the NLCD codes as they are: 42 (evergreen
    forest) cleared to 52 (shrub) in one corner; every other class unchanged."""
    before, a, pixel_ha = nlcd
    b = a.copy()
    corner = b[:300, :300]
    corner[corner == 42] = 52
    after = rewrite(before, tmp_path / "after.tif", b)
    out = run("change", str(before), str(after), "--from", "42", "--to", "52", "--out", str(tmp_path / "c.gpkg"),
              "--raster", str(tmp_path / "c.tif"), "--workers", "0")  # fmt: skip
    cleared = int((a[:300, :300] == 42).sum())
    assert cleared > 40_000
    tr = pyogrio.read_dataframe(tmp_path / "c.gpkg", layer="transitions")
    changed = tr[tr.from_id != tr.to_id]
    assert list(zip(changed.from_class, changed.to_class, changed.pixels, strict=True)) == [
        ("42", "52", cleared)
    ]
    assert changed.area_ha.iloc[0] == pytest.approx(cleared * pixel_ha)
    codes = sorted(int(v) for v in np.unique(a) if v != 255)
    classes = pyogrio.read_dataframe(tmp_path / "c.gpkg", layer="class_change")
    assert list(classes.class_id) == codes and list(classes.class_name) == [str(c) for c in codes]
    polygons = pyogrio.read_dataframe(tmp_path / "c.gpkg", layer="change")
    assert set(polygons.class_name) == {"42 -> 52"} and polygons.area_ha.sum() == pytest.approx(
        cleared * pixel_ha
    )
    assert f"changed: {cleared * pixel_ha:,.2f} ha" in out
    # the change raster's colours: the map's own palette, through the one transition colour
    # (the class it became; a shade of it for all but the first class it came from)
    with rasterio.open(tmp_path / "c.tif") as ds, rasterio.open(before) as src:
        palette = src.colormap(1)
        table = [ClassInfo(c, str(c), tuple(palette[c][:3])) for c in codes]
        i, j = codes.index(42), codes.index(52)
        assert ds.colormap(1)[i * len(codes) + j][:3] == transition_colour(table, i, j)


def test_change_with_category_names_and_a_gdal_written_rat(shared_data: Path, tmp_path: Path) -> None:
    """nlcd.tif names its classes in GDAL category names; the later map, copied by GDAL's
    gdal_translate, carries them as a raster attribute table in its .aux.xml."""
    before = shared_data / ZION / "nlcd.tif"
    with rasterio.open(before) as ds:
        a, pixel_ha = ds.read(1), abs(ds.transform.a * ds.transform.e) / 1e4
    b = a.copy()
    b[:400][b[:400] == 4] = 6  # forest -> herbaceous in the north
    plain = rewrite(before, tmp_path / "plain.tif", b)
    vrt, after = tmp_path / "after.vrt", tmp_path / "after.tif"
    if not shutil.which("gdal_translate"):
        pytest.skip("GDAL command-line tools (gdal-bin) are not installed")
    subprocess.run(["gdal_translate", "-q", "-of", "VRT", str(plain), str(vrt)], check=True, timeout=60)
    rat = "".join(
        f"<Row index='{k}'><F>{k + 1}</F><F>{n}</F></Row>"
        for k, n in enumerate(
            ["Water", "Developed", "Barren", "Forest", "Shrubland", "Herbaceous", "Cultivated", "Wetlands"]
        )
    )
    text = vrt.read_text().replace(
        "</ColorInterp>",
        "</ColorInterp><GDALRasterAttributeTable tableType='thematic'><FieldDefn index='0'><Name>VALUE</Name>"
        "<Type>0</Type><Usage>5</Usage></FieldDefn><FieldDefn index='1'><Name>NAME</Name><Type>2</Type>"
        f"<Usage>2</Usage></FieldDefn>{rat}</GDALRasterAttributeTable>",
        1,
    )
    vrt.write_text(text)
    subprocess.run(["gdal_translate", "-q", str(vrt), str(after)], check=True, timeout=60)
    assert "GDALRasterAttributeTable" in (tmp_path / "after.tif.aux.xml").read_text()  # GDAL put it there
    res = detect_change(before, after, tmp_path / "c.gpkg", from_classes=["forest"], to_classes=["Herbaceous"],
                        workers=0)  # fmt: skip
    names = [c.name for c in res.classes]
    assert names == [
        "NA",
        "Water",
        "Developed",
        "Barren",
        "Forest",
        "Shrubland",
        "Herbaceous",
        "Cultivated",
        "Wetlands",
    ]
    lost = int((a[:400] == 4).sum())
    assert res.pixels[names.index("Forest"), names.index("Herbaceous")] == lost
    assert res.area_ha.sum() - np.trace(res.area_ha) == pytest.approx(lost * pixel_ha)
    change = pyogrio.read_dataframe(tmp_path / "c.gpkg", layer="change")
    assert set(change.class_name) == {"Forest -> Herbaceous"}


def test_classes_and_legend_name_plain_maps(nlcd: tuple, tmp_path: Path) -> None:
    before, a, _ = nlcd
    b = a.copy()
    b[-200:][b[-200:] == 41] = 82  # deciduous forest -> crops in the south
    after = rewrite(before, tmp_path / "after.tif", b, colormap=False)
    out = tmp_path / "c.gpkg"
    run("change", str(before), str(after), "--classes", "41=deciduous forest,82=cultivated crops",
        "--from", "deciduous forest", "--to", "82", "--out", str(out), "--workers", "0")  # fmt: skip
    tr = pyogrio.read_dataframe(out, layer="transitions")
    changed = tr[tr.from_id != tr.to_id]
    assert list(zip(changed.from_class, changed.to_class, strict=True)) == [
        ("deciduous forest", "cultivated crops")
    ]
    assert changed.pixels.iloc[0] == int((a[-200:] == 41).sum())
    assert "42" in set(tr.from_class)  # unnamed classes keep their ids
    # a legend file naming too few classes is refused, naming the file
    (tmp_path / "few.csv").write_text("id,name\n41,deciduous forest\n")
    r = CliRunner().invoke(main, ["change", str(before), str(after), "--legend", str(tmp_path / "few.csv"),
                                  "--out", str(tmp_path / "x.gpkg"), "--workers", "0"])  # fmt: skip
    assert r.exit_code == 2
    assert f"{tmp_path / 'few.csv'}: does not match the maps: they hold class 11" in r.stderr
    assert not (tmp_path / "x.gpkg").exists()


@pytest.mark.slow
def test_track_on_plain_maps_by_id_and_by_given_name(shared_data: Path, tmp_path: Path) -> None:
    src = shared_data / ZION / "nlcd.tif"
    with rasterio.open(src) as ds:
        a, pixel_ha = ds.read(1), abs(ds.transform.a * ds.transform.e) / 1e4
    plain = np.where(a == 255, 255, a)
    series = []
    for k, year in enumerate((2001, 2006, 2011)):
        m = plain.copy()
        if k >= 1:
            m[:200][m[:200] == 4] = 5
        if k >= 2:
            m[200:400][m[200:400] == 4] = 3
        series.append(rewrite(src, tmp_path / f"{year}.tif", m, colormap=False))
    for name in series:  # no names at all: category names are the input's, not these files'
        assert not (tmp_path / f"{name.name}.aux.xml").exists()
    paths = [str(p) for p in series]
    outs = ["--out", str(tmp_path / "t.gpkg"), "--loss-year", str(tmp_path / "ly.tif"), "--workers", "0"]
    run("track", *paths, "--forest", "4", "--persist", "1", *outs)
    periods = pyogrio.read_dataframe(tmp_path / "t.gpkg", layer="loss_by_period")
    expected = [int((a[:200] == 4).sum()) * pixel_ha, int((a[200:400] == 4).sum()) * pixel_ha]
    assert list(periods.loss_ha) == pytest.approx(expected)
    with rasterio.open(tmp_path / "ly.tif") as ds:
        ly = ds.read(1)
    assert (ly[:200][a[:200] == 4] == 2006).all() and (ly[200:400][a[200:400] == 4] == 2011).all()
    shutil.rmtree(tmp_path / "again", ignore_errors=True)
    (tmp_path / "again").mkdir()
    run("track", *paths, "--classes", "4=forest,5=shrubland", "--forest", "forest", "--persist", "1",
        "--out", str(tmp_path / "again" / "t.gpkg"), "--workers", "0")  # fmt: skip
    again = pyogrio.read_dataframe(tmp_path / "again" / "t.gpkg", layer="loss_by_period")
    assert list(again.loss_ha) == pytest.approx(expected)


def test_maps_naming_one_class_differently_and_imagery_are_refused(shared_data: Path, tmp_path: Path) -> None:
    src = shared_data / ZION / "nlcd.tif"
    with rasterio.open(src) as ds:
        a = ds.read(1)
    other = rewrite(src, tmp_path / "other.tif", a)
    (tmp_path / "other.qml").write_text(
        "<qgis><pipe><rasterrenderer type='paletted'><colorPalette>"
        "<paletteEntry value='4' color='#00ff00' label='Wald'/></colorPalette></rasterrenderer></pipe></qgis>"
    )
    p = subprocess.run([GEOSEG, "change", str(src), str(other), "--out", "c.gpkg"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert p.returncode == 2
    assert p.stderr.startswith(f"geoseg: error: {other}: names class 4 'Wald' but {src} names it 'Forest'")
    assert "same class table" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    band = shared_data / ZION / "landsat_b2.tif"  # uint16 digital numbers: imagery, not classes
    with pytest.raises(Exception, match="holds more than 255 distinct values: not a class map"):
        align_maps([band, shared_data / ZION / "landsat_b3.tif"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.qml", "other.tif"]
