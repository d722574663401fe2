"""vectorize on rasters other tools made: names from their RATs and sidecars; imagery refused unless --force."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pyogrio
import pytest
import rasterio
import rasterio.features
from click.testing import CliRunner

from geoseg.cli import main
from geoseg.vector import read_styles, vectorize


def cli(*args: str, cwd: Path) -> tuple[int, str, str]:
    r = CliRunner().invoke(main, ["vectorize", *args, "--workers", "0"], catch_exceptions=False)
    return r.exit_code, r.stdout, r.stderr


@pytest.fixture
def reflectance(shared_data: Path, tmp_path: Path) -> Path:
    """A 160 x 160 crop of a real Landsat 8 band (uint16 digital numbers), cut with gdal_translate."""
    if not shutil.which("gdal_translate"):
        pytest.skip("GDAL command-line tools (gdal-bin) are not installed")
    out = tmp_path / "in" / "b2.tif"
    out.parent.mkdir()
    src = shared_data / "zion-landsat8" / "landsat_b2.tif"
    subprocess.run(["gdal_translate", "-q", "-srcwin", "500", "600", "160", "160", str(src), str(out)],
                   check=True, timeout=60)  # fmt: skip
    return out


def test_a_reflectance_band_is_refused_unless_forced(reflectance: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(str(reflectance), "--out", "b2.gpkg", cwd=tmp_path)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"geoseg: error: {reflectance}: does not look like a class map"
    )
    assert "distinct values in a sample of 25,600 pixels" in lines[0] and "--force" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]  # nothing written


@pytest.mark.slow
def test_a_forced_reflectance_band_is_vectorized_exactly(
    reflectance: Path, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(str(reflectance), "--out", "b2.gpkg", "--force", cwd=tmp_path)
    assert code == 0, err
    with rasterio.open(reflectance) as ds:
        values, transform = ds.read(1), ds.transform
    frame = pyogrio.read_dataframe(tmp_path / "b2.gpkg", layer="landcover")
    assert set(frame.class_id) == {int(v) for v in np.unique(values)} and len(np.unique(values)) > 255
    burned = rasterio.features.rasterize(zip(frame.geometry, frame.class_id.tolist(), strict=True),
                                         out_shape=values.shape, transform=transform, fill=0, dtype="int32")  # fmt: skip
    np.testing.assert_array_equal(burned, values.astype(np.int32))  # exact: every pixel, every value
    assert frame.class_name.isna().all()  # digital numbers have no names


@pytest.mark.slow
def test_category_names_and_a_given_legend_name_the_polygons(shared_data: Path, tmp_path: Path) -> None:
    nlcd = shared_data / "zion-landsat8" / "nlcd.tif"
    with rasterio.open(nlcd) as ds:
        crop = ds.read(1, window=rasterio.windows.Window(300, 300, 200, 150))
        profile = {**ds.profile, "driver": "GTiff", "width": 200, "height": 150,
                   "transform": ds.window_transform(rasterio.windows.Window(300, 300, 200, 150))}  # fmt: skip
        palette = ds.colormap(1)
    for name in ("nlcd.tif", "nlcd.tif.aux.xml"):
        shutil.copy(nlcd.parent / name, tmp_path / name)
    out = tmp_path / "n.gpkg"
    vectorize(tmp_path / "nlcd.tif", out, workers=0, layer="nlcd")
    frame = pyogrio.read_dataframe(out, layer="nlcd")
    names = dict(zip(frame.class_id, frame.class_name, strict=True))
    assert names[4] == "Forest" and names[5] == "Shrubland" and names[1] == "Water"
    (style,) = [s for s in read_styles(out) if s["f_table_name"] == "nlcd"]
    assert (
        'value="Forest"' in style["styleQML"] and "104,170,99" in style["styleQML"]
    )  # the file's own colour
    # a QGIS reclassification: values only, its names in the .qml QGIS saved beside it
    with rasterio.open(tmp_path / "reclass.tif", "w", **profile) as ds:
        ds.write(np.where(crop == 255, 255, (crop >= 4) + 1).astype(np.uint8), 1)
    (tmp_path / "reclass.qml").write_text(
        "<qgis><pipe><rasterrenderer type='paletted' band='1'><colorPalette>"
        "<paletteEntry value='1' color='#c8c8c8' alpha='255' label='open'/>"
        "<paletteEntry value='2' color='#006400' alpha='255' label='vegetated'/>"
        "</colorPalette></rasterrenderer></pipe></qgis>"
    )
    res = vectorize(tmp_path / "reclass.tif", tmp_path / "r.gpkg", workers=0)
    frame = pyogrio.read_dataframe(res.path, layer=res.layer)
    assert set(zip(frame.class_id, frame.class_name, strict=True)) == {(1, "open"), (2, "vegetated")}
    # --classes over the file's names; the others keep theirs
    res = vectorize(tmp_path / "reclass.tif", tmp_path / "r2.gpkg", workers=0, classes="2=shrub or forest")
    frame = pyogrio.read_dataframe(res.path, layer=res.layer)
    assert set(zip(frame.class_id, frame.class_name, strict=True)) == {(1, "open"), (2, "shrub or forest")}
    assert palette[4][:3] == (104, 170, 99)


def test_classes_option_errors_name_the_flag(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "m.tif"
    with rasterio.open(path, "w", driver="GTiff", width=8, height=8, count=1, dtype="uint8", crs="EPSG:32633",
                       transform=rasterio.transform.from_origin(0, 80, 10, 10), nodata=255) as ds:  # fmt: skip
        ds.write(np.arange(64, dtype=np.uint8).reshape(8, 8) % 3, 1)
    monkeypatch.chdir(tmp_path)
    code, _, err = cli("m.tif", "--out", "o.gpkg", "--classes", "1=forest,2", cwd=tmp_path)
    assert code == 2 and "--classes: '2' is not ID=NAME" in err
    code, _, err = cli("m.tif", "--out", "o.gpkg", "--classes", "1=a,1=b", cwd=tmp_path)
    assert code == 2 and "--classes: names class 1 twice" in err
    code, _, err = cli("m.tif", "--out", "o.gpkg", "--legend", "nope.qml", cwd=tmp_path)
    assert code == 2 and "nope.qml: no such legend file" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.tif"]
