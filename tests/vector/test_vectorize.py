"""Vectorisation: block-merged polygons against whole-raster polygonisation, MMU, simplification,
areas, output formats, a real Dask cluster, and bad input."""

from __future__ import annotations

import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyogrio
import pyogrio.raw
import pytest
import rasterio
import rasterio.features
import shapely
from affine import Affine
from click.testing import CliRunner
from pyproj import Geod
from scipy import ndimage

from geoseg.classes import ClassInfo
from geoseg.cli import main
from geoseg.raster import class_tags
from geoseg.vector import (
    GPKG_VERSION,
    LayerCopy,
    PolygonizeStats,
    merge_layers,
    polygonize_frame,
    read_styles,
    vectorize,
)

BIN = Path(sys.executable).parent
UTM = Affine(10, 0, 500_000, 0, -10, 9_000_000)  # 10 m pixels: 1 pixel = 100 m² = 0.01 ha


# --------------------------------------------------------------------------------------
# Test rasters


def fragmented(height: int = 150, width: int = 170, seed: int = 0) -> np.ndarray:
    """A hard class map: blocky patches, speckle, one-pixel diagonal lines (4- vs 8-connected),
    rings with holes and islands, a meandering river across every block column, nodata."""
    rng = np.random.default_rng(seed)
    a = np.kron(rng.integers(1, 5, (height // 10 + 1, width // 10 + 1)), np.ones((10, 10), np.int64))
    a = a[:height, :width].astype(np.uint8)
    speckle = rng.random(a.shape) < 0.04
    a[speckle] = rng.integers(1, 7, int(speckle.sum()))
    for off in range(-120, width, 23):  # diagonal staircases of single pixels
        i = np.arange(height)
        j = i + off
        ok = (j >= 0) & (j < width)
        a[i[ok], j[ok]] = 7
    for r0, c0 in ((20, 20), (60, 100), (100, 30)):  # ring with a hole holding an island
        a[r0 : r0 + 30, c0 : c0 + 30] = 8
        a[r0 + 5 : r0 + 25, c0 + 5 : c0 + 25] = 1
        a[r0 + 12 : r0 + 18, c0 + 12 : c0 + 18] = 8
    a[rng.random(a.shape) < 0.01] = 255
    a[130:140, 150:165] = 255
    cols = np.arange(width)
    centre = (height / 2 + 30 * np.sin(cols / 17)).astype(int)
    for d in (-1, 0, 1):
        a[np.clip(centre + d, 0, height - 1), cols] = 9
    return a


def smooth(height: int = 160, width: int = 160, seed: int = 1) -> np.ndarray:
    """Smooth-noise classes: long wiggly boundaries worth simplifying."""
    rng = np.random.default_rng(seed)
    noise = ndimage.gaussian_filter(rng.random((height, width)), 6)
    return (np.digitize(noise, np.quantile(noise, [0.25, 0.5, 0.75])) + 1).astype(np.uint8)


def write(
    path: Path, array: np.ndarray, transform: Affine = UTM, crs: str = "EPSG:32720", **extra: object
) -> Path:
    profile = {"driver": "GTiff", "width": array.shape[-1], "height": array.shape[-2], "dtype": array.dtype.name,
               "count": 1 if array.ndim == 2 else array.shape[0], "crs": crs, "transform": transform}  # fmt: skip
    profile.update(extra)
    tags = profile.pop("tags", None)
    with rasterio.open(path, "w", **profile) as ds:  # type: ignore[arg-type]
        ds.write(array if array.ndim == 3 else array[None])
        if tags:
            ds.update_tags(**tags)  # type: ignore[arg-type]
    return path


def whole_raster(values: np.ndarray, valid: np.ndarray, connectivity: int) -> list[tuple[int, int]]:
    """(class, pixel count) of every polygon GDAL makes from the whole raster, sorted."""
    shapes = rasterio.features.shapes(values, mask=valid, connectivity=connectivity)
    return sorted((int(v), round(shapely.geometry.shape(g).area)) for g, v in shapes)


def check_exact(frame, values: np.ndarray, valid: np.ndarray, transform: Affine, connectivity: int) -> None:
    """Same polygons as the whole raster, and rasterising them gives the raster back."""
    pixel_area = abs(transform.a * transform.e)
    reference = whole_raster(values, valid, connectivity)
    ours = sorted(
        zip(
            frame.class_id.tolist(),
            np.rint(frame.area_ha * 1e4 / pixel_area).astype(int).tolist(),
            strict=True,
        )
    )
    assert len(frame) == len(reference)
    assert ours == reference
    assert shapely.is_valid(frame.geometry.values).all()
    burned = rasterio.features.rasterize(
        zip(frame.geometry, frame.class_id.tolist(), strict=True), out_shape=values.shape, transform=transform,
        fill=-1, dtype="int32",
    )  # fmt: skip
    np.testing.assert_array_equal(burned, np.where(valid, values.astype(np.int32), -1))


# --------------------------------------------------------------------------------------
# Exactness across block seams


def test_real_strata_block_merge_equals_whole_raster(shared_data: Path) -> None:
    path = shared_data / "nc-landsat7" / "strata.tif"
    with rasterio.open(path) as ds:
        values, transform, nodata = ds.read(1), ds.transform, ds.nodata
    valid = values != nodata
    for block in (64, 100):
        stats = PolygonizeStats()
        frame = polygonize_frame(path, block_size=block, stats=stats)
        assert stats.seam_polygons > 100  # the blocks really cut many polygons
        check_exact(frame, values.astype(np.int32), valid, transform, 4)
        assert str(frame.crs.to_epsg()) == "3358"


@pytest.mark.slow
@pytest.mark.parametrize("connectivity", [4, 8])
def test_synthetic_block_merge_equals_whole_raster(tmp_path: Path, connectivity: int) -> None:
    a = fragmented()
    path = write(tmp_path / "f.tif", a, nodata=255)
    valid = a != 255
    counts = set()
    for block in (16, 33, 64, 1000):
        frame = polygonize_frame(path, block_size=block, connectivity=connectivity)
        check_exact(frame, a, valid, UTM, connectivity)
        counts.add(len(frame))
        if connectivity == 8:
            assert set(frame.geom_type) <= {"MultiPolygon"}
        else:
            assert set(frame.geom_type) == {"Polygon"}
    assert len(counts) == 1
    # The river crosses every block column as one polygon; diagonal lines only join with 8.
    river = frame[frame.class_id == 9]
    assert len(river) == 1 and round(river.area_ha.iloc[0] * 100) == (a == 9).sum() >= 3 * a.shape[1]


def test_connectivity_matters_for_diagonal_pixels(tmp_path: Path) -> None:
    a = np.full((40, 40), 1, np.uint8)
    a[np.arange(40), np.arange(40)] = 2  # one diagonal line crossing block corners
    path = write(tmp_path / "d.tif", a, nodata=255)
    four = polygonize_frame(path, block_size=8, connectivity=4)
    eight = polygonize_frame(path, block_size=8, connectivity=8)
    assert (four.class_id == 2).sum() == 40
    assert (eight.class_id == 2).sum() == 1
    # ...and the background on either side touches across the line's corners: one region with 8.
    assert len(four[four.class_id == 1]) == 2 and len(eight[eight.class_id == 1]) == 1


def test_output_is_deterministic_and_streams_as_gpkg(tmp_path: Path) -> None:
    path = write(tmp_path / "f.tif", fragmented(seed=3), nodata=255)
    outs = [tmp_path / "a.gpkg", tmp_path / "b.gpkg"]
    for out in outs:
        r = vectorize(path, out, block_size=32, workers=0)
        assert r.polygons > 1000 and r.seam_polygons > 50
    a, b = (pyogrio.raw.read(o, layer="landcover") for o in outs)
    assert list(a[2]) == list(b[2])  # geometries, in the same order
    for fa, fb in zip(a[3], b[3], strict=True):
        np.testing.assert_array_equal(fa, fb)
    with sqlite3.connect(outs[0]) as db:  # the GeoPackage has its R-tree spatial index
        tables = {r[0] for r in db.execute("select name from sqlite_master where type = 'table'")}
    assert "rtree_landcover_geom" in tables
    assert not list(tmp_path.glob(".*partial*"))


def test_progress_counts_blocks(tmp_path: Path) -> None:
    path = write(tmp_path / "p.tif", fragmented(60, 70), nodata=255)
    calls: list[tuple[int, int]] = []
    polygonize_frame(
        path, block_size=20, progress=lambda done, total, postfix="": calls.append((done, total))
    )
    assert calls == [(i, 12) for i in range(1, 13)]  # 3 x 4 blocks
    calls.clear()
    polygonize_frame(path, block_size=20, min_area_ha=0.05, progress=lambda d, t, p="": calls.append((d, t)))
    assert calls == [(i, 24) for i in range(1, 25)]  # two passes with a minimum mapping unit


# --------------------------------------------------------------------------------------
# Minimum mapping unit


def reference_sieve(
    values: np.ndarray, valid: np.ndarray, min_pixels: float, connectivity: int
) -> np.ndarray:
    """The documented MMU rule, the slow obvious way: relabel after every change."""
    vals, ok = values.astype(np.int64).copy(), valid.copy()
    structure = ndimage.generate_binary_structure(2, 1 if connectivity == 4 else 2)
    h, w = vals.shape
    while True:
        labels, n = np.zeros(vals.shape, np.int64), 0
        for c in np.unique(vals[ok]):
            lab, m = ndimage.label(ok & (vals == c), structure)
            labels[lab > 0] = lab[lab > 0] + n
            n += m
        size = np.bincount(labels.ravel(), minlength=n + 1)
        first = np.full(n + 1, h * w)
        np.minimum.at(first, labels.ravel(), np.arange(h * w))
        small = [(size[i], first[i], i) for i in range(1, n + 1) if size[i] < min_pixels]
        if not small:
            return np.where(ok, vals, -1)
        region = labels == min(small)[2]
        shared: dict[int, int] = {}
        for here, there in (((slice(None), slice(None, -1)), (slice(None), slice(1, None))),
                            ((slice(None, -1), slice(None)), (slice(1, None), slice(None)))):  # fmt: skip
            for a, b in ((here, there), (there, here)):
                edge = region[a] & ~region[b] & ok[b]
                for v in vals[b][edge].tolist():
                    shared[v] = shared.get(v, 0) + 1
        if shared:
            vals[region] = min(shared, key=lambda v: (-shared[v], v))
        else:
            ok[region] = False  # nothing to join: below the MMU and alone, so dropped


@pytest.mark.parametrize("connectivity", [4, 8])
def test_min_area_is_an_exact_sieve(tmp_path: Path, connectivity: int) -> None:
    a = fragmented(72, 80, seed=5)
    a[50:56, 60:66] = 255
    a[52:54, 62:64] = 3  # a 4-pixel island in nodata: dropped
    path = write(tmp_path / "s.tif", a, nodata=255)
    min_pixels = 6
    expected = reference_sieve(a, a != 255, min_pixels, connectivity)
    assert expected[52, 62] == -1
    for block in (16, 25, 500):
        stats = PolygonizeStats()
        frame = polygonize_frame(
            path, block_size=block, connectivity=connectivity, min_area_ha=0.06, stats=stats
        )
        assert frame.area_ha.min() >= 0.06 - 1e-12
        burned = rasterio.features.rasterize(
            zip(frame.geometry, frame.class_id.tolist(), strict=True),
            out_shape=a.shape,
            transform=UTM,
            fill=-1,
            dtype="int32",
        )
        np.testing.assert_array_equal(burned, expected)
        assert stats.sieved_pixels == int((expected != np.where(a != 255, a.astype(int), -1)).sum())
        check_exact(
            frame, np.where(expected >= 0, expected, 0).astype(np.int32), expected >= 0, UTM, connectivity
        )


# --------------------------------------------------------------------------------------
# Simplification


@pytest.mark.parametrize("connectivity", [4, 8])
def test_simplify_keeps_a_coverage(tmp_path: Path, connectivity: int) -> None:
    a = smooth()
    a[70:90, 0:30] = 255  # a nodata hole whose outline must survive
    path = write(tmp_path / "m.tif", a, nodata=255)
    raw = polygonize_frame(path, block_size=48, connectivity=connectivity)
    simple = polygonize_frame(path, block_size=48, connectivity=connectivity, simplify_m=30)
    geoms = simple.geometry.values
    assert len(simple) == len(raw)
    assert shapely.is_valid(geoms).all()
    assert (
        shapely.get_num_coordinates(geoms).sum()
        < 0.6 * shapely.get_num_coordinates(raw.geometry.values).sum()
    )
    tree = shapely.STRtree(geoms)
    i, j = tree.query(geoms, predicate="intersects")
    pairs = i < j
    overlap = shapely.area(shapely.intersection(geoms[i[pairs]], geoms[j[pairs]])).sum()
    assert overlap < 1e-6 * a.size * 100
    union_raw = shapely.union_all(raw.geometry.values)
    union_simple = shapely.union_all(geoms)
    assert abs(union_simple.area - union_raw.area) < 1e-6 * union_raw.area
    assert shapely.symmetric_difference(union_raw, union_simple).area < 1e-6 * union_raw.area
    # Classes and areas move little: each polygon keeps most of its own pixels.
    assert np.allclose(simple.area_ha.sum(), raw.area_ha.sum())


# --------------------------------------------------------------------------------------
# Areas and perimeters


def test_utm_areas_are_pixel_counts(tmp_path: Path) -> None:
    a = fragmented(seed=7)
    path = write(tmp_path / "u.tif", a, nodata=255)
    frame = polygonize_frame(path, block_size=40)
    index = rasterio.features.rasterize(
        zip(frame.geometry, range(1, len(frame) + 1), strict=True),
        out_shape=a.shape,
        transform=UTM,
        dtype="int32",
    )
    counts = np.bincount(index.ravel(), minlength=len(frame) + 1)[1:]
    np.testing.assert_allclose(frame.area_ha.values, counts * 100 / 1e4, rtol=1e-12)
    np.testing.assert_allclose(frame.perimeter_m.values, shapely.length(frame.geometry.values), rtol=1e-12)


def geodesic(geom: shapely.Geometry, geod: Geod) -> tuple[float, float]:
    """Independent area (pyproj.Geod, edges densified to follow parallels) and ring length."""
    area = perimeter = 0.0
    for part in shapely.get_parts(geom):
        area += abs(geod.geometry_area_perimeter(shapely.segmentize(part, 1e-5))[0])
        for ring in shapely.get_rings(part):
            perimeter += geod.line_length(*np.asarray(ring.coords).T)
    return area, perimeter


@pytest.mark.parametrize(
    ("crs", "transform"),
    [
        ("EPSG:4326", Affine(0.0002, 0, -62.0, 0, -0.0002, -3.0)),  # ~22 m pixels in the Amazon
        ("EPSG:4326", Affine(0.0005, 0, 10.0, 0, -0.0005, 65.0)),  # far north: pixels are narrow
        ("EPSG:3857", Affine(30, 0, 1_113_194, 0, -30, 8_399_737)),  # Web Mercator at 60 N: area x4
    ],
)
def test_areas_on_the_ellipsoid(tmp_path: Path, crs: str, transform: Affine) -> None:
    a = fragmented(80, 90, seed=2)
    path = write(tmp_path / "g.tif", a, transform=transform, crs=crs, nodata=255)
    for simplify in (None, 60.0):
        frame = polygonize_frame(path, block_size=32, simplify_m=simplify)
        lonlat = frame.to_crs("EPSG:4326") if crs != "EPSG:4326" else frame
        if crs != "EPSG:4326":  # densify in the source CRS so the reference follows the same edges
            lonlat = frame.set_geometry(shapely.segmentize(frame.geometry.values, 3.0)).to_crs("EPSG:4326")
        geod = Geod(ellps="WGS84")
        ref = np.array([geodesic(g, geod) for g in lonlat.geometry])
        np.testing.assert_allclose(frame.area_ha.values * 1e4, ref[:, 0], rtol=5e-4)
        np.testing.assert_allclose(frame.perimeter_m.values, ref[:, 1], rtol=5e-3)


# --------------------------------------------------------------------------------------
# Output formats, layers and class names


def test_formats_layers_and_class_names(tmp_path: Path) -> None:
    a = fragmented(60, 60, seed=4)
    names = [ClassInfo(i, f"class-{i}") for i in range(1, 10)]
    path = write(tmp_path / "c.tif", a, nodata=255, tags=class_tags(names))
    gpkg = tmp_path / "out.gpkg"
    first = vectorize(path, gpkg, block_size=20, workers=0)
    vectorize(path, gpkg, layer="sieved", min_area_ha=0.05, block_size=20, workers=0)
    assert sorted(tuple(x) for x in pyogrio.list_layers(gpkg)) == [
        ("landcover", "Polygon"), ("layer_styles", None), ("sieved", "Polygon"),
    ]  # fmt: skip
    # both layers open coloured by class in QGIS
    assert {s["f_table_name"] for s in read_styles(gpkg) if s["useAsDefault"]} == {"landcover", "sieved"}
    info = pyogrio.read_info(gpkg, layer="landcover")
    assert info["features"] == first.polygons
    assert list(info["fields"]) == ["class_id", "class_name", "area_ha", "perimeter_m"]
    frame = pyogrio.read_dataframe(gpkg, layer="landcover")
    assert (frame.class_name == "class-" + frame.class_id.astype(str)).all()
    assert frame.crs.to_epsg() == 32720
    for ext in ("fgb", "geojson"):
        out = tmp_path / f"out.{ext}"
        vectorize(path, out, block_size=20, workers=0, connectivity=8)
        info = pyogrio.read_info(out)
        assert info["features"] == len(polygonize_frame(path, connectivity=8))
        assert info["geometry_type"] == "MultiPolygon"
        assert pyogrio.read_dataframe(out).crs.to_epsg() == 32720
    # A class table when the raster names none (CSV here; YAML and JSON read the same way).
    bare = write(tmp_path / "bare.tif", a, nodata=255)
    table = tmp_path / "classes.csv"
    table.write_text("id,name,colour\n" + "".join(f"{i},c{i},#00ff00\n" for i in range(1, 10)))
    frame = polygonize_frame(bare, classes=table)
    assert (frame.class_name == "c" + frame.class_id.astype(str)).all()
    yaml_table = tmp_path / "classes.yaml"
    yaml_table.write_text("".join(f"{i}: y{i}\n" for i in range(1, 10)))
    assert set(polygonize_frame(bare, classes=yaml_table).class_name) == {f"y{i}" for i in range(1, 10)}
    assert polygonize_frame(bare).class_name.isna().all()  # unnamed classes: NULL, not invented


def test_existing_geopackage_is_safe(tmp_path: Path) -> None:
    path = write(tmp_path / "c.tif", fragmented(40, 40, seed=6), nodata=255)
    gpkg = tmp_path / "out.gpkg"
    vectorize(path, gpkg, layer="first", workers=0)
    vectorize(path, gpkg, layer="second", workers=0, min_area_ha=0.05)
    before = gpkg.read_bytes()
    table = tmp_path / "few.csv"
    table.write_text("id,name\n1,forest\n")
    with pytest.raises(ValueError, match=r"few\.csv: does not match"):
        vectorize(path, gpkg, layer="third", workers=0, classes=table)
    assert gpkg.read_bytes() == before  # a failed run leaves the file as it was
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.tif", "few.csv", "out.gpkg"]
    vectorize(path, gpkg, layer="second", workers=0)  # replaces that layer only
    assert [tuple(x) for x in pyogrio.list_layers(gpkg)] == [("first", "Polygon"), ("second", "Polygon")]
    assert (
        pyogrio.read_info(gpkg, layer="second")["features"]
        == pyogrio.read_info(gpkg, layer="first")["features"]
    )


def gpkg_version(path: Path) -> int:
    """The GeoPackage version a file declares (``PRAGMA user_version``: 10300 for 1.3)."""
    with sqlite3.connect(path) as db:
        return int(db.execute("PRAGMA user_version").fetchone()[0])


def test_every_geopackage_writer_makes_one_version(tmp_path: Path) -> None:
    """vectorize's layer writer and the workflow's layer merge write GPKG_VERSION (the change
    command's GpkgBuilder: tests/temporal), which Debian's ogrinfo (GDAL 3.6) opens silently."""
    path = write(tmp_path / "c.tif", fragmented(40, 40, seed=6), nodata=255)
    assert GPKG_VERSION == "1.3"
    vectorize(path, tmp_path / "v.gpkg", workers=0)
    vectorize(path, tmp_path / "v.gpkg", layer="again", workers=0)  # a layer added to the file
    merge_layers(tmp_path / "m.gpkg", [LayerCopy(tmp_path / "v.gpkg", "landcover", "lc", {"step": "t"})])
    for name in ("v.gpkg", "m.gpkg"):
        assert gpkg_version(tmp_path / name) == 10300, name
    if shutil.which("ogrinfo") is None:
        pytest.skip("GDAL command-line tools (gdal-bin) are not installed")
    for name in ("v.gpkg", "m.gpkg"):
        p = subprocess.run(
            ["ogrinfo", "-so", str(tmp_path / name)], capture_output=True, text=True, timeout=60
        )
        assert p.returncode == 0 and "(Polygon)" in p.stdout, p.stderr
        assert "partially supported" not in p.stderr, p.stderr


# --------------------------------------------------------------------------------------
# A real Dask cluster


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def scheduler_address() -> Iterator[str]:
    """``dask scheduler`` + ``dask worker`` (2 processes) on 127.0.0.1, as a user would run them."""
    from distributed import Client

    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    scheduler = subprocess.Popen(
        [BIN / "dask", "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"], **quiet
    )  # type: ignore[call-overload]
    worker = subprocess.Popen(
        [BIN / "dask", "worker", address, "--nworkers", "2", "--nthreads", "1", "--no-dashboard"], **quiet
    )  # type: ignore[call-overload]
    try:
        with Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=60)
        yield address
    finally:
        # Workers first: a worker whose scheduler is already gone retries for seconds.
        for proc in (worker, scheduler):
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.mark.slow
def test_real_scheduler_gives_the_same_output(tmp_path: Path, scheduler_address: str) -> None:
    path = write(tmp_path / "f.tif", fragmented(seed=9), nodata=255)
    out = tmp_path / "dask.gpkg"
    p = subprocess.run(
        [BIN / "geoseg", "vectorize", path, "--out", out, "--block-size", "40", "--min-area", "0.03",
         "--scheduler", scheduler_address],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert "polygons" in p.stdout and "megapixels/s" in p.stdout
    local = tmp_path / "local.gpkg"
    vectorize(path, local, block_size=40, min_area_ha=0.03, workers=0)
    a, b = (pyogrio.raw.read(o) for o in (out, local))
    assert len(a[2]) > 100 and list(a[2]) == list(b[2])


def test_local_cluster_gives_the_same_output(tmp_path: Path) -> None:
    path = write(tmp_path / "f.tif", fragmented(seed=10), nodata=255)
    outs = [tmp_path / "two.gpkg", tmp_path / "none.gpkg"]
    vectorize(path, outs[0], block_size=40, workers=2, connectivity=8)
    vectorize(path, outs[1], block_size=40, workers=0, connectivity=8)
    a, b = (pyogrio.raw.read(o) for o in outs)
    assert list(a[2]) == list(b[2])


@pytest.mark.slow
def test_unreachable_scheduler_fails_fast(tmp_path: Path) -> None:
    path = write(tmp_path / "f.tif", fragmented(40, 40), nodata=255)
    start = time.monotonic()
    p = subprocess.run(
        [BIN / "geoseg", "vectorize", path, "--out", tmp_path / "o.gpkg",
         "--scheduler", f"tcp://127.0.0.1:{free_port()}"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert time.monotonic() - start < 20
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("geoseg: error:") and "scheduler" in lines[0], p.stderr
    assert sorted(x.name for x in tmp_path.iterdir()) == ["f.tif"]


# --------------------------------------------------------------------------------------
# Bad input: one line naming the file, exit 2, nothing written


def bad_inputs(tmp_path: Path) -> dict[str, tuple[list[str], str]]:
    a = fragmented(30, 30)
    floats = a.astype(np.float32)
    floats[5, 5] = 2.5
    write(tmp_path / "fractional.tif", floats, nodata=255.0)
    write(tmp_path / "bands.tif", np.stack([a, a, a]), nodata=255)
    write(tmp_path / "empty.tif", np.full((30, 30), 255, np.uint8), nodata=255)
    write(tmp_path / "good.tif", a, nodata=255)
    (tmp_path / "table.csv").write_text("id,name\n1,forest\n2,water\n")
    return {
        "non-whole values": (["fractional.tif"], "fractional.tif: holds the non-whole value 2.5"),
        "several bands": (["bands.tif"], "bands.tif: has 3 bands"),
        "no valid pixels": (["empty.tif"], "empty.tif: has no valid pixels"),
        "table mismatch": (["good.tif", "--classes", "table.csv"], "table.csv: does not match good.tif"),
        "unwritable format": (["good.tif", "--out", "out.tif"], "out.tif: cannot write vector format '.tif'"),
    }


@pytest.mark.parametrize(
    "case", ["non-whole values", "several bands", "no valid pixels", "table mismatch", "unwritable format"]
)
def test_bad_input_is_one_line_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str) -> None:
    args, expect = bad_inputs(tmp_path)[case]
    if "--out" not in args:
        args = [*args, "--out", "out.gpkg"]
    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    result = CliRunner().invoke(main, ["vectorize", *args, "--workers", "0", "--block-size", "16"])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("geoseg: error:") and expect in lines[0], result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no output, no partial file
