"""Polygon layers as GeoParquet, FlatGeobuf, PMTiles and GeoJSON, read back and compared
with the GeoPackage layer of the same class map."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyarrow.parquet as pq
import pyogrio
import pytest
import shapely
from affine import Affine
from click.testing import CliRunner
from pyproj import CRS, Transformer

from geoseg.classes import ClassInfo
from geoseg.cli import main
from geoseg.raster import Grid, class_tags
from geoseg.vector import pmtiles_zooms, read_styles, vectorize
from tests.vector.test_vectorize import fragmented, write

NAMES = [ClassInfo(i, f"class {i}", (20 * i, 120, 240 - 20 * i)) for i in range(1, 10)]
FIELDS = ["class_id", "class_name", "area_ha", "perimeter_m"]


@pytest.fixture(scope="module")
def classmap(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fragmented 150 x 170 map in UTM 20S, four blocks of 64 a side or more."""
    d = tmp_path_factory.mktemp("formats")
    return write(d / "classes.tif", fragmented(seed=21), nodata=255, tags=class_tags(NAMES))


@pytest.fixture(scope="module")
def reference(classmap: Path) -> gpd.GeoDataFrame:
    out = classmap.with_name("reference.gpkg")
    vectorize(classmap, out, block_size=64, workers=0)
    return pyogrio.read_dataframe(out, layer="landcover")


def rows(frame: gpd.GeoDataFrame) -> list[tuple]:
    """The layer as sorted (geometry, attributes) rows: the formats keep their own order."""
    geoms = shapely.to_wkb(shapely.normalize(np.asarray(frame.geometry.values)))
    names = [None if not isinstance(n, str) else n for n in frame.class_name]
    return sorted(
        zip(
            geoms,
            frame.class_id.astype(int),
            names,
            frame.area_ha.round(9),
            frame.perimeter_m.round(6),
            strict=True,
        )
    )


@pytest.mark.parametrize("suffix", [".parquet", ".fgb", ".geojson"])
def test_same_polygons_and_attributes_as_the_geopackage(
    classmap: Path, reference: gpd.GeoDataFrame, tmp_path: Path, suffix: str
) -> None:
    out = tmp_path / f"landcover{suffix}"
    result = vectorize(classmap, out, block_size=64, workers=0)
    frame = gpd.read_parquet(out) if suffix == ".parquet" else pyogrio.read_dataframe(out)
    assert result.polygons == len(frame) == len(reference) > 500
    assert list(frame.columns) == [*FIELDS, "geometry"]
    assert frame.crs.equals(reference.crs) and frame.crs.to_epsg() == 32720
    assert rows(frame) == rows(reference)
    # the QGIS style beside it is the GeoPackage's default style of the layer
    (style,) = [s for s in read_styles(classmap.with_name("reference.gpkg")) if s["useAsDefault"]]
    assert out.with_suffix(".qml").read_text() == style["styleQML"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([out.name, out.with_suffix(".qml").name])


def test_flatgeobuf_has_its_spatial_index_and_opens_in_gdal_36(classmap: Path, tmp_path: Path) -> None:
    out = tmp_path / "landcover.fgb"
    vectorize(classmap, out, block_size=64, workers=2)
    info = pyogrio.read_info(out)
    assert info["capabilities"]["fast_spatial_filter"]  # the packed Hilbert R-tree is there
    box = (500_300, 8_998_800, 500_700, 8_999_300)
    hits = pyogrio.read_dataframe(out, bbox=box)
    everything = pyogrio.read_dataframe(out)
    expected = everything[everything.intersects(shapely.box(*box))]
    assert 0 < len(hits) < len(everything) and sorted(hits.area_ha) == sorted(expected.area_ha)
    if shutil.which("ogrinfo"):  # Debian's GDAL 3.6, another reader
        p = subprocess.run(["ogrinfo", "-so", "-al", str(out)], capture_output=True, text=True, timeout=60)
        assert p.returncode == 0 and f"Feature Count: {len(everything)}" in p.stdout, p.stdout + p.stderr
        assert "class_name: String" in p.stdout and "area_ha: Real" in p.stdout


def test_geoparquet_metadata_covering_and_row_groups(
    classmap: Path, reference: gpd.GeoDataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import geoseg.vector._formats as formats

    monkeypatch.setattr(formats, "ROW_GROUP_ROWS", 250)  # several row groups from a small map
    out = tmp_path / "landcover.parquet"
    vectorize(classmap, out, block_size=64, workers=0)
    f = pq.ParquetFile(out)
    geo = json.loads(f.metadata.metadata[b"geo"])
    assert geo["version"] == "1.1.0" and geo["primary_column"] == "geometry"
    column = geo["columns"]["geometry"]
    assert column["encoding"] == "WKB" and column["geometry_types"] == ["Polygon"]
    assert CRS.from_json_dict(column["crs"]).to_epsg() == 32720  # PROJJSON
    assert column["covering"] == {"bbox": {k: ["bbox", k] for k in ("xmin", "ymin", "xmax", "ymax")}}
    assert column["bbox"] == pytest.approx(list(reference.total_bounds))
    provenance = json.loads(f.metadata.metadata[b"geoseg"])
    assert provenance["layer"] == "landcover" and provenance["source"] == str(classmap)
    sizes = [f.metadata.row_group(k).num_rows for k in range(f.metadata.num_row_groups)]
    assert (
        sum(sizes) == len(reference) and max(sizes) == 250 and len(sizes) == math.ceil(len(reference) / 250)
    )
    # the covering column is each polygon's bounds, with statistics per row group
    table = f.read(columns=["geometry", "bbox"])
    bounds = shapely.bounds(shapely.from_wkb(table.column("geometry").to_numpy(zero_copy_only=False)))
    bbox = table.column("bbox").combine_chunks()
    for k, name in enumerate(("xmin", "ymin", "xmax", "ymax")):
        np.testing.assert_array_equal(bbox.field(name).to_numpy(), bounds[:, k])
    stats = f.metadata.row_group(0).column(f.schema_arrow.get_field_index("bbox") + 0)
    assert stats.statistics is not None and stats.statistics.has_min_max
    # geopandas filters by the covering: exactly the polygons whose bounds meet the box
    box = (500_300, 8_998_800, 500_700, 8_999_300)
    hits = gpd.read_parquet(out, bbox=box)
    b = reference.geometry.bounds
    meet = reference[(b.minx <= box[2]) & (b.maxx >= box[0]) & (b.miny <= box[3]) & (b.maxy >= box[1])]
    assert 0 < len(hits) < len(reference) and rows(hits) == rows(meet)


def test_pmtiles_pyramid_from_the_raster_resolution(
    classmap: Path, reference: gpd.GeoDataFrame, tmp_path: Path
) -> None:
    out = tmp_path / "landcover.pmtiles"
    vectorize(classmap, out, block_size=64, workers=0)
    info = pyogrio.read_info(out, layer="landcover")
    meta = info["dataset_metadata"]
    # 10 m pixels at 9 degrees south: 10.1 m of Web Mercator; z14 shows 9.55 m a pixel, z13 19.1 m.
    # The map is 1.7 km wide: about one z14 tile (2.4 km), so the pyramid is that one level.
    assert (int(meta["minzoom"]), int(meta["maxzoom"])) == (14, 14)
    assert info["crs"] == "EPSG:3857" and set(FIELDS) <= set(info["fields"])
    tiles = pyogrio.read_dataframe(out, layer="landcover")  # the deepest level, cut at tile edges
    assert {(int(i), n) for i, n in zip(tiles.class_id, tiles.class_name, strict=True)} == {
        (int(i), n) for i, n in zip(reference.class_id, reference.class_name, strict=True)
    }
    # the same area per class, within what quantising to 4096 units a tile (0.6 m) moves
    mercator = reference.to_crs("EPSG:3857")
    expected = mercator.geometry.area.groupby(mercator.class_id).sum()
    found = tiles.geometry.area.groupby(tiles.class_id.astype(int)).sum()
    assert found.index.tolist() == expected.index.tolist()
    np.testing.assert_allclose(found.to_numpy(), expected.to_numpy(), rtol=0.01)
    assert abs(found.sum() / expected.sum() - 1) < 1e-3


@pytest.mark.parametrize(
    ("pixel", "crs", "origin"),
    [(10.0, 32720, (600_000, 9_650_000)), (30.0, 32612, (300_000, 4_150_000)), (0.0001, 4326, (-60.0, -3.0))],
)
def test_pmtiles_zooms_follow_the_pixel_size(pixel: float, crs: int, origin: tuple[float, float]) -> None:
    grid = Grid((4096, 4096), Affine(pixel, 0, origin[0], 0, -pixel, origin[1]), CRS.from_epsg(crs))
    low, high = pmtiles_zooms(grid)
    to_3857 = Transformer.from_crs(crs, 3857, always_xy=True)
    x0, y0 = grid.transform @ (2048, 2048)
    x1, y1 = grid.transform @ (2049, 2048)
    size = math.dist(to_3857.transform(x0, y0), to_3857.transform(x1, y1))  # a pixel in Mercator metres
    display = 2 * 20037508.342789244 / 256 / 2**high
    assert display <= size < 2 * display  # the first level whose display pixel is no coarser
    corners = [to_3857.transform(*(grid.transform @ c)) for c in ((0, 0), (4096, 0), (0, 4096), (4096, 4096))]
    span = max(
        max(c[0] for c in corners) - min(c[0] for c in corners),
        max(c[1] for c in corners) - min(c[1] for c in corners),
    )
    tile = 2 * 20037508.342789244 / 2**low
    assert tile >= span > tile / 2  # the level at which the grid spans about one tile


def test_cli_writes_each_format_and_refuses_others(classmap: Path, tmp_path: Path) -> None:
    for suffix in (".parquet", ".pmtiles"):
        out = tmp_path / f"o{suffix}"
        r = CliRunner().invoke(main, ["vectorize", str(classmap), "--out", str(out), "--workers", "0"])
        assert r.exit_code == 0, r.output
        assert f"-> {out} layer 'landcover'" in r.stdout
    r = CliRunner().invoke(
        main, ["vectorize", str(classmap), "--out", str(tmp_path / "o.shp"), "--workers", "0"]
    )
    assert r.exit_code == 2
    (line,) = r.stderr.strip().splitlines()
    assert "o.shp: cannot write vector format '.shp'; use .gpkg (GeoPackage), .parquet (GeoParquet)" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.parquet", "o.pmtiles", "o.qml"]


@pytest.mark.parametrize("suffix", [".parquet", ".fgb", ".pmtiles"])
def test_a_failure_while_streaming_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str
) -> None:
    import geoseg.vector._vectorize as vectorizing

    monkeypatch.setattr(vectorizing, "FLUSH_FEATURES", 10)  # write batches long before the failure
    a = fragmented(seed=22)
    a[a == 5] = 1
    a[-3, -3] = 5  # a class missing from the table, found only in the last block
    path = write(tmp_path / "c.tif", a, nodata=255)
    table = tmp_path / "t.csv"
    table.write_text("id,name\n" + "".join(f"{i},c{i}\n" for i in range(1, 10) if i != 5))
    out = tmp_path / f"o{suffix}"
    with pytest.raises(ValueError, match=r"t\.csv: does not match"):
        vectorize(path, out, block_size=32, workers=0, classes=table)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.tif", "t.csv"]  # no partial file, no scratch


def test_a_raster_without_crs_is_refused_before_any_tiling(tmp_path: Path) -> None:
    path = write(tmp_path / "nocrs.tif", fragmented(40, 40, seed=3), crs=None, nodata=255)  # type: ignore[arg-type]
    r = CliRunner().invoke(
        main, ["vectorize", str(path), "--out", str(tmp_path / "o.pmtiles"), "--workers", "0"]
    )
    assert r.exit_code == 2
    (line,) = r.stderr.strip().splitlines()
    assert "nocrs.tif: has no CRS; assign one first" in line  # found when the map is opened
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nocrs.tif"]
