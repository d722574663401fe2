"""Change detection and forest-loss tracking: exact against known truth, on any grid."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import rasterio
import rasterio.features
import shapely
from affine import Affine
from click.testing import CliRunner
from pyproj import Geod
from rasterio.crs import CRS

from geoseg.api import change
from geoseg.classes import CLASS_NODATA, ClassInfo
from geoseg.cli import main
from geoseg.data import CLASSES, SceneSpec, change_truth, scene_grid
from geoseg.errors import ConfigError
from geoseg.raster import Grid, class_map_writer, validate_cog
from geoseg.temporal import ChangeEncoding, align_maps, detect_change, first_loss, parse_date, track_loss
from geoseg.vector import read_styles

GEOSEG = str(Path(sys.executable).parent / "geoseg")
SPEC = SceneSpec(448, 544, seed=11)
N = len(CLASSES)
FOREST_NF = [ClassInfo(0, "forest", (0, 100, 0)), ClassInfo(1, "non-forest", (230, 200, 120))]


def write_classes(path: Path, grid: Grid, array: np.ndarray, classes: list[ClassInfo] = CLASSES) -> Path:
    with class_map_writer(path, grid, classes) as w:
        w.write(grid.window, array)
    return path


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, np.ndarray, np.ndarray, Grid]:
    """The synthetic truth before and after the injected clearings and regrowth, as class COGs."""
    d = tmp_path_factory.mktemp("pair")
    before, after = change_truth(SPEC)
    grid = scene_grid(SPEC)
    return (
        write_classes(d / "before.tif", grid, before),
        write_classes(d / "after.tif", grid, after),
        before,
        after,
        grid,
    )


@pytest.fixture(scope="module")
def pair_result(pair: tuple, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    b, a, *_ = pair
    d = tmp_path_factory.mktemp("pair_out")
    res = change(b, a, d / "change.gpkg", raster=d / "change.tif", landcover=True,
                        report_dir=d / "report", block_size=128, workers=0)  # fmt: skip
    return res, d


def truth_change_codes(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    valid = (before != CLASS_NODATA) & (after != CLASS_NODATA)
    return np.where(valid & (before != after), before.astype(np.int64) * N + after, CLASS_NODATA).astype(
        np.uint8
    )


# --------------------------------------------------------------------------- two dates


@pytest.mark.slow
def test_truth_pair_matrix_raster_and_polygons_are_exact(pair: tuple, pair_result: tuple) -> None:
    _, _, before, after, grid = pair
    res, d = pair_result
    valid = (before != CLASS_NODATA) & (after != CLASS_NODATA)
    by_hand = np.bincount((before.astype(np.int64) * N + after)[valid], minlength=N * N).reshape(N, N)
    assert (res.pixels == by_hand).all()
    assert by_hand.sum() - np.trace(by_hand) > 2000  # the scene really has change in it
    np.testing.assert_allclose(res.area_ha, by_hand * 0.01, rtol=1e-12)  # 10 m UTM pixels: 0.01 ha each
    t = res.class_table()
    np.testing.assert_allclose(
        np.array(t["net_ha"]), np.array(t["after_ha"]) - np.array(t["before_ha"]), atol=1e-9
    )

    with rasterio.open(d / "change.tif") as ds:
        codes = ds.read(1)
        assert Grid.from_dataset(ds).same_as(grid) and ds.nodata == CLASS_NODATA
        assert "from_index * 6 + to_index" in ds.tags()["GEOSEG_CHANGE_ENCODING"]
        assert ds.tags()["CLASS_2"] == "forest -> cropland"
        assert ds.colormap(1)[4][:3] == CLASSES[4].colour
    expected = np.where(valid, before.astype(np.int64) * N + after, CLASS_NODATA)
    assert (codes == expected).all()
    assert validate_cog(d / "change.tif")[0]

    # Change polygons == polygonising the truth's change mask on the whole raster at once.
    truth = truth_change_codes(before, after)
    shapes = list(rasterio.features.shapes(truth, mask=truth != CLASS_NODATA, transform=grid.transform))
    gdf = pyogrio.read_dataframe(d / "change.gpkg", layer="change")
    assert len(gdf) == len(shapes) and len(gdf) >= 8
    want = sorted((int(v), round(shapely.geometry.shape(g).area / 1e4, 6)) for g, v in shapes)
    got = sorted(zip(gdf["class_id"].astype(int), np.round(gdf["area_ha"], 6), strict=True))
    assert got == want
    assert np.allclose(gdf.geometry.area / 1e4, gdf["area_ha"])
    fi, ti = ChangeEncoding(N).split(gdf["class_id"].to_numpy())
    names = np.array([c.name for c in CLASSES])
    assert (gdf["from_class"].to_numpy() == names[fi]).all() and (
        gdf["to_class"].to_numpy() == names[ti]
    ).all()
    assert (gdf["from_id"].to_numpy() == fi).all() and (gdf["to_id"].to_numpy() == ti).all()
    union = shapely.union_all([shapely.geometry.shape(g) for g, _ in shapes])
    assert shapely.symmetric_difference(union, shapely.union_all(gdf.geometry.values)).area == 0

    # Land-cover layers of both dates, and the tables.
    layers = dict(pyogrio.list_layers(d / "change.gpkg"))
    assert layers == {"change": "Polygon", "landcover_before": "Polygon", "landcover_after": "Polygon",
                      "transitions": None, "transition_matrix": None, "class_change": None,
                      "layer_styles": None}  # fmt: skip
    # each polygon layer opens styled in QGIS: its default style is in the file
    styled = {s["f_table_name"] for s in read_styles(d / "change.gpkg") if s["useAsDefault"]}
    assert styled == {"change", "landcover_before", "landcover_after"}
    lc = pyogrio.read_dataframe(d / "change.gpkg", layer="landcover_before")
    n_before = len(list(rasterio.features.shapes(before, mask=before != CLASS_NODATA)))
    assert len(lc) == n_before and abs(lc["area_ha"].sum() - by_hand.sum() * 0.01) < 1.0
    tr = pyogrio.read_dataframe(d / "change.gpkg", layer="transitions")
    assert int(tr["pixels"].sum()) == int(by_hand.sum())
    matrix = pyogrio.read_dataframe(d / "change.gpkg", layer="transition_matrix")
    np.testing.assert_allclose(matrix["to_forest_ha"].to_numpy(), res.area_ha[:, 0])


def test_outputs_open_with_gdal_tools(pair_result: tuple) -> None:
    _, d = pair_result
    if not shutil.which("ogrinfo") or not shutil.which("gdalinfo"):
        pytest.skip("GDAL command-line tools (gdal-bin) are not installed")
    p = subprocess.run(["ogrinfo", "-so", str(d / "change.gpkg")], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and "change (Polygon)" in p.stdout and "class_change (None)" in p.stdout
    assert "partially supported" not in p.stderr  # GeoPackage 1.3: GDAL 3.6 opens it cleanly
    p = subprocess.run(
        ["ogrinfo", "-so", str(d / "change.gpkg"), "change"], capture_output=True, text=True, timeout=60
    )
    assert "from_class: String" in p.stdout and "area_ha: Real" in p.stdout
    p = subprocess.run(["gdalinfo", str(d / "change.tif")], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and "LAYOUT=COG" in p.stdout and "Color Table" in p.stdout


def test_report_pngs_and_html(pair_result: tuple) -> None:
    _, d = pair_result
    rep = d / "report"
    from matplotlib.image import imread

    for name in ("before.png", "after.png", "change.png", "transitions.png"):
        height, width = imread(rep / name).shape[:2]  # a real image of bounded size
        assert 200 < width <= 1600 and 100 < height <= 1600
    page = (rep / "index.html").read_text()
    assert page.count("<img") == 4 and "transition matrix" in page and "forest" in page


def test_from_to_and_min_area_through_the_cli(pair: tuple, tmp_path: Path) -> None:
    b, a, before, after, grid = pair
    out = tmp_path / "loss.gpkg"
    opts = ["--from", "forest", "--to", "bare soil", "--to", "3", "--min-area", "1.5", "--workers", "0"]
    r = CliRunner().invoke(main, ["change", str(b), str(a), "--out", str(out), *opts])
    assert r.exit_code == 0, r.output
    assert "transition matrix (ha)" in r.stdout and "net" in r.stdout and "change (" in r.stdout
    gdf = pyogrio.read_dataframe(out, layer="change")
    assert set(gdf["from_class"]) == {"forest"} and set(gdf["to_class"]) <= {"bare soil", "grassland"}
    assert (gdf["area_ha"] >= 1.5).all()
    truth = truth_change_codes(before, after)
    chosen = np.isin(truth, [0 * N + 4, 0 * N + 3])
    sel = np.where(chosen, truth, CLASS_NODATA)
    areas = [shapely.geometry.shape(g).area / 1e4 for g, _ in
             rasterio.features.shapes(sel, mask=chosen, transform=grid.transform)]  # fmt: skip
    assert len(gdf) == sum(x >= 1.5 for x in areas)


def test_dask_workers_give_the_same_bytes(pair: tuple, pair_result: tuple, tmp_path: Path) -> None:
    b, a, *_ = pair
    res0, d = pair_result
    res = detect_change(b, a, tmp_path / "c.gpkg", raster=tmp_path / "c.tif", landcover=True,
                        block_size=128, workers=2)  # fmt: skip
    assert (res.pixels == res0.pixels).all() and (res.area_ha == res0.area_ha).all()
    with rasterio.open(tmp_path / "c.tif") as x, rasterio.open(d / "change.tif") as y:
        assert (x.read() == y.read()).all()
    one = pyogrio.read_dataframe(d / "change.gpkg", layer="change")
    two = pyogrio.read_dataframe(tmp_path / "c.gpkg", layer="change")
    assert one.geometry.to_wkb().tolist() == two.geometry.to_wkb().tolist()


def _rows(frame) -> list[tuple]:  # type: ignore[no-untyped-def]
    """A layer as sorted (geometry, attributes...) rows, whatever order its format keeps."""
    geoms = shapely.to_wkb(shapely.normalize(np.asarray(frame.geometry.values))).tolist()
    attrs = frame.drop(columns="geometry").astype(object).itertuples(index=False, name=None)
    return sorted(zip(geoms, attrs, strict=True))


def test_change_as_geoparquet_holds_the_geopackage_layers_and_tables(
    pair: tuple, pair_result: tuple, tmp_path: Path
) -> None:
    import pandas as pd

    b, a, *_ = pair
    res0, d = pair_result
    out = tmp_path / "change.parquet"
    res = change(b, a, out, landcover=True, block_size=128, workers=0)
    layers = {"change": out, "landcover_before": tmp_path / "change_landcover_before.parquet",
              "landcover_after": tmp_path / "change_landcover_after.parquet"}  # fmt: skip
    tables = {
        t: tmp_path / f"change_{t}.parquet" for t in ("transitions", "transition_matrix", "class_change")
    }
    assert res.files == {**layers, **tables} and res.layers == res0.layers and res.out == out
    styles = {s["f_table_name"]: s["styleQML"] for s in read_styles(d / "change.gpkg") if s["useAsDefault"]}
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [p.name for p in res.files.values()] + [f"{p.stem}.qml" for p in layers.values()]
    )
    for layer, path in layers.items():
        ours, theirs = gpd.read_parquet(path), pyogrio.read_dataframe(d / "change.gpkg", layer=layer)
        assert len(ours) == res.layers[layer] > 0 and list(ours.columns) == list(theirs.columns)
        assert _rows(ours) == _rows(theirs), layer
        assert path.with_suffix(".qml").read_text() == styles[layer]
    for table, path in tables.items():
        ours = pd.read_parquet(path)
        theirs = pd.DataFrame(pyogrio.read_dataframe(d / "change.gpkg", layer=table, read_geometry=False))
        assert list(ours.columns) == list(theirs.columns)
        assert ours.astype(object).values.tolist() == theirs.astype(object).values.tolist(), table


def test_change_without_change_into_pmtiles_writes_the_tables_only(pair: tuple, tmp_path: Path) -> None:
    b, *_ = pair
    r = CliRunner().invoke(
        main, ["change", str(b), str(b), "--out", str(tmp_path / "c.pmtiles"), "--workers", "0"]
    )
    assert r.exit_code == 0, r.output
    names = ["c_class_change.parquet", "c_transition_matrix.parquet", "c_transitions.parquet"]
    assert sorted(p.name for p in tmp_path.iterdir()) == names  # an empty layer cannot be tiled: no file
    assert "c_transitions.parquet: transitions (" in r.stdout and "c.pmtiles" not in r.stdout


@pytest.mark.parametrize("resolution", [0.00006, 0.00013])
def test_misaligned_inputs_give_the_same_statistics(
    pair: tuple, pair_result: tuple, tmp_path: Path, resolution: float
) -> None:
    """The after map reprojected to EPSG:4326 (~6.6 m, then ~14 m pixels) and warped back
    onto before's 10 m UTM grid when compared.

    Finer than the grid, a nearest-neighbour round trip loses nothing (every 10 m pixel
    centre finds an intermediate pixel centre less than half a source pixel away), so the
    statistics must be identical. Coarser, class edges move by up to a pixel: spurious
    change appears along every boundary, which is the resampling error. The statistics
    must then equal those of the after map brought back to the grid independently
    (rasterio.warp.reproject), and class areas stay within 2 %.
    """
    from rasterio.warp import Resampling, calculate_default_transform, reproject

    b, _, before, after, grid = pair
    res0, _ = pair_result
    dst_crs = CRS.from_epsg(4326)
    transform, width, height = calculate_default_transform(
        grid.crs, dst_crs, grid.width, grid.height, *grid.bounds, resolution=resolution
    )
    out = np.full((height, width), CLASS_NODATA, np.uint8)
    warp = {"src_nodata": CLASS_NODATA, "dst_nodata": CLASS_NODATA, "resampling": Resampling.nearest}
    reproject(after, out, src_transform=grid.transform, src_crs=grid.crs, dst_transform=transform,
              dst_crs=dst_crs, **warp)  # fmt: skip
    moved = write_classes(tmp_path / "after_4326.tif", Grid((height, width), transform, dst_crs), out)
    res = detect_change(b, moved, workers=0, block_size=128)
    assert res.warped == [str(moved)]
    if resolution < 0.0001:
        assert (res.pixels == res0.pixels).all()
        return
    back = np.full(grid.shape, CLASS_NODATA, np.uint8)
    reproject(out, back, src_transform=transform, src_crs=dst_crs, dst_transform=grid.transform,
              dst_crs=grid.crs, **warp)  # fmt: skip
    assert (back != after).mean() > 0.005  # the round trip really moved class edges
    valid = (before != CLASS_NODATA) & (back != CLASS_NODATA)
    expected = np.bincount((before.astype(np.int64) * N + back)[valid], minlength=N * N).reshape(N, N)
    assert np.abs(res.pixels - expected).sum() <= 0.001 * expected.sum()
    t0, t1 = res0.class_table(), res.class_table()
    for k in range(N):
        if t0["after_ha"][k] > 50:
            assert abs(t1["after_ha"][k] - t0["after_ha"][k]) <= 0.02 * t0["after_ha"][k]


def test_equivalent_crs_written_differently_is_not_warped(pair: tuple, tmp_path: Path) -> None:
    *_, after, grid = pair
    proj4 = CRS.from_string("+proj=utm +zone=20 +south +datum=WGS84 +units=m +no_defs")
    assert proj4.to_epsg() is None or proj4.to_wkt() != grid.crs.to_wkt()  # written differently
    wkt_grid = Grid(grid.shape, grid.transform, proj4)
    moved = write_classes(tmp_path / "after_wkt.tif", wkt_grid, after)
    maps = align_maps([pair[0], moved])
    assert not any(m.warp for m in maps.maps)


# --------------------------------------------------------------------------- areas


def test_geographic_areas_match_the_ellipsoid(tmp_path: Path) -> None:
    """EPSG:4326, 0.05 degree pixels between 59 and 61 N: per-row areas on the ellipsoid."""
    rows, cols = 40, 30
    grid = Grid((rows, cols), Affine(0.05, 0, -74.0, 0, -0.05, 61.0), CRS.from_epsg(4326))
    rng = np.random.default_rng(3)
    before = (rng.random((rows, cols)) < 0.5).astype(np.uint8)
    after = np.where(rng.random((rows, cols)) < 0.3, 1 - before, before).astype(np.uint8)
    before[0, :5] = CLASS_NODATA
    b = write_classes(tmp_path / "b.tif", grid, before, FOREST_NF)
    a = write_classes(tmp_path / "a.tif", grid, after, FOREST_NF)
    res = detect_change(b, a, tmp_path / "c.gpkg", workers=0, block_size=16)
    geod = Geod(ellps="WGS84")
    row_ha = []
    for r in range(rows):
        top, bottom = 61.0 - 0.05 * r, 61.0 - 0.05 * (r + 1)
        area, _ = geod.polygon_area_perimeter([-74.0, -73.95, -73.95, -74.0], [top, top, bottom, bottom])
        row_ha.append(abs(area) / 1e4)
    weights = np.broadcast_to(np.array(row_ha)[:, None], (rows, cols))
    valid = before != CLASS_NODATA
    expected = np.zeros((2, 2))
    np.add.at(expected, (before[valid], after[valid]), weights[valid])
    np.testing.assert_allclose(res.area_ha, expected, rtol=5e-3)
    np.testing.assert_allclose(res.area_ha, expected, rtol=2e-4)  # in fact far better than 0.5 %
    # A pixel's area at 61 N is ~5 % smaller than at 59 N: a single pixel area would be off.
    assert row_ha[0] < 0.96 * row_ha[-1]
    gdf = pyogrio.read_dataframe(tmp_path / "c.gpkg", layer="change")
    assert abs(gdf["area_ha"].sum() - (expected.sum() - np.trace(expected))) < 1e-6 * expected.sum()


# --------------------------------------------------------------------------- time series

DATES = ["2000", "2005", "2010", "2015", "2020"]
F, N_, X = 0, 1, CLASS_NODATA  # forest, non-forest, nodata
# region: (series, loss year with persist 2, with persist 1, regrowth year with 2, with 1)
REGIONS = {
    "stable forest": ([F, F, F, F, F], 0, 0, 0, 0),
    "cleared 2010": ([F, F, N_, N_, N_], 2010, 2010, 0, 0),
    "one-date false clearing": ([F, N_, F, F, F], 0, 2005, 0, 2010),
    "cleared, cloud, still cleared": ([F, F, N_, X, N_], 2010, 2010, 0, 0),
    "never forest": ([N_, N_, N_, N_, N_], 0, 0, 0, 0),
    "cleared at the last date": ([F, F, F, F, N_], 0, 2020, 0, 0),
    "regrowth 2010": ([N_, N_, F, F, F], 0, 0, 2010, 2010),
    "seen once": ([X, X, X, F, X], 65535, 65535, 0, 0),
}


@pytest.fixture(scope="module")
def series(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], dict[str, tuple[int, int]], Grid]:
    """Eight 5 x 5 regions with known histories, laid out in a 2 x 4 checkerboard of regions
    separated by stable forest so no two regions touch."""
    d = tmp_path_factory.mktemp("series")
    grid = Grid((13, 25), Affine(10, 0, 500_000, 0, -10, 9_000_000), CRS.from_epsg(32718))
    stacks = np.full((len(DATES), 13, 25), F, np.uint8)
    where = {}
    for k, (name, (hist, *_)) in enumerate(REGIONS.items()):
        r, c = 1 + 6 * (k // 4), 1 + 6 * (k % 4)
        where[name] = (r, c)
        for t, v in enumerate(hist):
            stacks[t, r : r + 5, c : c + 5] = v
    paths = [write_classes(d / f"{date}.tif", grid, stacks[t], FOREST_NF) for t, date in enumerate(DATES)]
    return paths, where, grid


@pytest.mark.parametrize("persist", [2, 1])
def test_loss_years_with_persistence(series: tuple, tmp_path: Path, persist: int) -> None:
    paths, where, _ = series
    res = track_loss(paths, tmp_path / "loss.gpkg", dates=DATES, forest="forest", loss_year=tmp_path / "ly.tif",
                     persist=persist, workers=0, block_size=16)  # fmt: skip
    with rasterio.open(tmp_path / "ly.tif") as ds:
        ly = ds.read(1)
        assert ds.dtypes[0] == "uint16" and ds.nodata == 65535
    col = 1 if persist == 2 else 2
    for name, spec in REGIONS.items():
        r, c = where[name]
        assert (ly[r : r + 5, c : c + 5] == spec[col]).all(), name
    assert (ly[0] == 0).all()  # the stable forest around the regions
    # Loss per period from the known regions (0.25 ha each: 25 pixels of 100 m²).
    expected = {y: 0.25 * sum(1 for s in REGIONS.values() if s[col] == y) for y in (2005, 2010, 2015, 2020)}
    table = res.period_table()
    assert dict(zip(table["year"], table["loss_ha"], strict=True)) == pytest.approx(expected)
    assert table["cumulative_loss_ha"][-1] == pytest.approx(sum(expected.values()))
    assert res.pending_ha == pytest.approx(0.25 if persist == 2 else 0.0)
    loss = pyogrio.read_dataframe(tmp_path / "loss.gpkg", layer="forest_loss")
    assert sorted(loss["year"]) == sorted(s[col] for s in REGIONS.values() if s[col] not in (0, 65535))
    assert np.allclose(loss["area_ha"], 0.25)
    assert set(loss["period"]) <= {"2000..2005", "2005..2010", "2015..2020"}
    regrowth = pyogrio.read_dataframe(tmp_path / "loss.gpkg", layer="regrowth")
    assert sorted(regrowth["year"]) == sorted(s[col + 2] for s in REGIONS.values() if s[col + 2])
    tables = pyogrio.read_dataframe(tmp_path / "loss.gpkg", layer="loss_by_period")
    assert list(tables["loss_ha"]) == pytest.approx(table["loss_ha"])


def test_track_cli_with_report(series: tuple, tmp_path: Path) -> None:
    paths, *_ = series
    outputs = ["--out", str(tmp_path / "t.gpkg"), "--loss-year", str(tmp_path / "ly.tif"),
               "--report", str(tmp_path / "rep")]  # fmt: skip
    opts = ["--dates", "2000,2005", "--dates", "2010,2015,2020", "--forest", "0", "--workers", "0"]
    r = CliRunner().invoke(main, ["track", *map(str, paths), *opts, *outputs])
    assert r.exit_code == 0, r.output
    assert "2005..2010" in r.stdout and "0.50" in r.stdout and "unconfirmed" in r.stdout
    assert {p.name for p in (tmp_path / "rep").iterdir()} == {
        "index.html",
        "loss_year.png",
        "loss_per_period.png",
        "landcover_first.png",
        "landcover_last.png",
    }
    left = sorted(p.name for p in tmp_path.iterdir())
    # no temporary files left behind; the loss-year raster's legend sidecars beside it
    assert left == ["ly.qml", "ly.tif", "ly.tif.aux.xml", "rep", "t.gpkg"]


def test_track_as_flatgeobuf_through_the_cli(series: tuple, tmp_path: Path) -> None:
    import pandas as pd

    paths, *_ = series
    opts = ["--dates", ",".join(DATES), "--forest", "forest", "--workers", "0", "--block-size", "16"]
    r = CliRunner().invoke(main, ["track", *map(str, paths), *opts, "--out", str(tmp_path / "t.fgb")])
    assert r.exit_code == 0, r.output
    assert (
        f"{tmp_path / 't.fgb'}: forest_loss (" in r.stdout
        and f"{tmp_path / 't_regrowth.fgb'}: regrowth (" in r.stdout
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "t.fgb", "t.qml", "t_forest_by_date.parquet", "t_loss_by_period.parquet", "t_regrowth.fgb", "t_regrowth.qml",
    ]  # fmt: skip
    ref = tmp_path.parent / f"{tmp_path.name}-gpkg"
    ref.mkdir(exist_ok=True)
    track_loss(paths, ref / "t.gpkg", dates=DATES, forest="forest", workers=0, block_size=16)
    for layer, path in (("forest_loss", "t.fgb"), ("regrowth", "t_regrowth.fgb")):
        ours, theirs = (
            pyogrio.read_dataframe(tmp_path / path),
            pyogrio.read_dataframe(ref / "t.gpkg", layer=layer),
        )
        assert len(ours) > 0 and _rows(ours) == _rows(theirs), layer
    ours = pd.read_parquet(tmp_path / "t_loss_by_period.parquet")
    theirs = pyogrio.read_dataframe(ref / "t.gpkg", layer="loss_by_period", read_geometry=False)
    assert ours["loss_ha"].tolist() == pytest.approx(theirs["loss_ha"].tolist())
    assert ours["period"].tolist() == theirs["period"].tolist()


def _reference_first_loss(f: list[bool], v: list[bool], k: int) -> tuple[int, int]:
    """The definitions of first_loss, one pixel at a time, written as plainly as possible."""
    obs = [t for t in range(len(f)) if v[t]]

    def run(ts: list[int], want: bool) -> bool:
        return len(ts) >= k and all(f[t] == want for t in ts[:k])

    loss = gain = -1
    for n, i in enumerate(obs):
        if n == 0:
            continue
        if loss < 0 and f[obs[n - 1]] and not f[i] and run(obs[n:], False):
            loss = i
        if gain < 0 and f[i] and n >= k and all(not f[t] for t in obs[n - k : n]) and run(obs[n:], True):
            gain = i
    return loss, gain


@pytest.mark.parametrize(("t_count", "k"), [(2, 1), (5, 1), (5, 2), (7, 3)])
def test_first_loss_matches_the_definition(t_count: int, k: int) -> None:
    rng = np.random.default_rng(t_count * 10 + k)
    forest = rng.random((t_count, 3000)) < 0.6
    valid = rng.random((t_count, 3000)) < 0.85
    loss, gain, _ = first_loss(forest, valid, k)
    for p in range(3000):
        assert (loss[p], gain[p]) == _reference_first_loss(forest[:, p].tolist(), valid[:, p].tolist(), k), p


# --------------------------------------------------------------------------- real data


@pytest.mark.slow
def test_pucallpa_spectral_track(shared_data: Path, tmp_path: Path) -> None:
    """Forest loss 1985-2020 west of Pucallpa from the spectral baseline: the clearing front."""
    folder = shared_data / "pucallpa-landsat"
    if not folder.is_dir():
        pytest.skip("pucallpa-landsat not present")
    images = [str(folder / f"{y}.tif") for y in range(1985, 2021, 5)]
    outputs = ["--out", str(tmp_path / "loss.gpkg"), "--loss-year", str(tmp_path / "ly.tif"),
               "--classified", str(tmp_path / "cls")]  # fmt: skip
    opts = ["--spectral", "--bands", "swir1,nir,red,green", "--forest", "forest", "--workers", "0"]
    r = CliRunner().invoke(main, ["track", *images, *opts, *outputs])
    assert r.exit_code == 0, r.output
    with rasterio.open(tmp_path / "ly.tif") as ds:
        ly = ds.read(1)
        assert ds.crs == CRS.from_epsg(4326) and ds.shape == (377, 697)
    assert set(np.unique(ly)) <= {0, 1990, 1995, 2000, 2005, 2010, 2015, 65535}
    lost = (ly > 0) & (ly < 65535)
    west, east = lost[:, :230].mean(), lost[:, -230:].mean()
    assert west > 2 * east  # the clearing spreads west of the city; the east is mostly intact
    with rasterio.open(tmp_path / "cls" / "1985.tif") as ds:
        forest_1985 = (ds.read(1) == 0).mean()
    assert 0.7 < forest_1985 < 0.9
    table = pyogrio.read_dataframe(tmp_path / "loss.gpkg", layer="loss_by_period")
    assert (np.diff(table["cumulative_loss_ha"]) >= 0).all() and table["loss_ha"].iloc[0] > 1000


# --------------------------------------------------------------------------- bad input


def _other_place(tmp_path: Path, before: np.ndarray, grid: Grid) -> Path:
    far = Grid(grid.shape, grid.transform @ Affine.translation(5_000, 0), grid.crs)
    return write_classes(tmp_path / "in" / "far.tif", far, before)


@pytest.mark.parametrize(
    ("case", "expect"),
    [
        ("no overlap", "does not overlap"),
        ("class tables", "same class table"),
        ("forest name", "forest class 'mangrove' is not a class"),
        ("dates order", "dates must be in increasing order"),
        ("dates parse", "'20x5' is not YYYY"),
        ("single map", "at least two dated maps"),
        ("persist too long", "--persist 5 needs at least 6 dates"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_written(
    pair: tuple, series: tuple, tmp_path: Path, case: str, expect: str
) -> None:
    b, _, before, _, grid = pair
    paths = [str(p) for p in series[0]]
    (tmp_path / "in").mkdir()
    out = tmp_path / "out"
    out.mkdir()
    common = ["--out", str(out / "o.gpkg"), "--report", str(out / "rep"), "--workers", "0"]
    if case == "no overlap":
        args = [
            "change",
            str(b),
            str(_other_place(tmp_path, before, grid)),
            "--raster",
            str(out / "c.tif"),
            *common,
        ]
    elif case == "class tables":
        renamed = [ClassInfo(c.id, c.name.upper(), c.colour) for c in CLASSES]
        other = write_classes(tmp_path / "in" / "other.tif", grid, before, renamed)
        args = ["change", str(b), str(other), *common]
    elif case == "forest name":
        args = ["track", *paths, "--dates", ",".join(DATES), "--forest", "mangrove", *common]
    elif case == "dates order":
        args = ["track", *paths, "--dates", "2000,2010,2005,2015,2020", "--forest", "forest", *common]
    elif case == "dates parse":
        args = ["track", *paths, "--dates", "2000,20x5,2010,2015,2020", "--forest", "forest", *common]
    elif case == "single map":
        args = ["track", paths[0], "--dates", "2000", "--forest", "forest", *common]
    else:
        args = ["track", *paths, "--dates", ",".join(DATES), "--forest", "forest", "--persist", "5", *common]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("geoseg: error:") and expect in lines[0], r.stderr
    assert list(out.iterdir()) == []


def test_bad_input_from_a_real_process(pair: tuple, tmp_path: Path) -> None:
    b, _, before, _, grid = pair
    (tmp_path / "in").mkdir()
    far = _other_place(tmp_path, before, grid)
    p = subprocess.run([GEOSEG, "change", str(b), str(far), "--out", "o.gpkg"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert p.returncode == 2 and p.stderr.startswith(f"geoseg: error: {far}: does not overlap"), p.stderr
    assert sorted(x.name for x in tmp_path.iterdir()) == ["in"]


def test_parse_date_and_library_errors() -> None:
    assert parse_date("2015").year == 2015 and parse_date("2015-06-30").day == 30
    with pytest.raises(ConfigError):
        parse_date("2015-13")
    with pytest.raises(ConfigError, match="no class maps"):
        align_maps([])
