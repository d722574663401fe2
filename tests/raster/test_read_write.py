from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from geoseg.classes import ClassInfo
from geoseg.errors import (
    BadRasterError,
    BandError,
    GridMismatchError,
    MissingFileError,
    OutputError,
    WindowError,
)
from geoseg.files import check_writable
from geoseg.raster import (
    KEPT_PER_THREAD,
    Grid,
    PixelWindow,
    RasterWriter,
    class_map_writer,
    close_kept,
    kept_dataset,
    open_raster,
    read_classes,
    validate_cog,
)
from tests.conftest import coordinate_image

CLASSES = [
    ClassInfo(0, "forest", (0, 100, 0)),
    ClassInfo(1, "water", (0, 0, 255)),
    ClassInfo(2, "crop", (200, 200, 0)),
]


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int16", "float32"])
def test_boundless_read_pads_with_nodata(write_tif, dtype: str) -> None:
    img = coordinate_image(20, 30, 2).astype(dtype)
    nodata = 0 if dtype != "int16" else -1
    path = write_tif(f"{dtype}.tif", img, nodata=nodata)
    src = open_raster(path)
    assert src.count == 2 and src.dtype == dtype and src.grid.shape == (20, 30)
    data, valid = src.read(PixelWindow(-3, 25, 10, 10))
    assert data.shape == (2, 10, 10)
    # inside: values encode their own coordinates
    np.testing.assert_array_equal(data[0, 3:, :5], np.arange(0, 7)[:, None].repeat(5, 1).astype(dtype))
    np.testing.assert_array_equal(data[1, 3:, :5], np.arange(25, 30)[None, :].repeat(7, 0).astype(dtype))
    # outside: nodata and invalid
    assert (data[:, :3] == nodata).all() and (data[:, :, 5:] == nodata).all()
    assert not valid[:3].any() and not valid[:, 5:].any()
    # (0, 0) has value 0 in both bands: nodata for the unsigned types
    _, fvalid = src.read()
    assert fvalid[0, 0] == (dtype == "int16")
    assert fvalid[1:, 1:].all()


def test_kept_open_reads_equal_fresh_reads_and_see_replaced_files(tmp_path: Path, write_tif) -> None:
    import threading

    img = coordinate_image(40, 50, 3).astype("uint16")
    path = write_tif("a.tif", img, nodata=0, tiled=True, blockxsize=16, blockysize=16, compress="deflate")
    src = open_raster(path)
    try:
        for w in (PixelWindow(-5, -5, 20, 20), PixelWindow(10, 30, 30, 30), PixelWindow(12, 14, 8, 9)):
            kept, fresh = src.read(w, keep_open=True), src.read(w)
            np.testing.assert_array_equal(kept[0], fresh[0])
            np.testing.assert_array_equal(kept[1], fresh[1])
        ds = kept_dataset(str(path))
        assert kept_dataset(str(path)) is ds  # reused by this thread
        other: list[object] = []
        t = threading.Thread(target=lambda: (other.append(kept_dataset(str(path))), close_kept()))
        t.start()
        t.join()
        assert other[0] is not ds  # a handle never serves two threads
        # the file replaced under the same name: a new handle and the new pixels
        write_tif("a.tif", (img + 7).astype("uint16"), nodata=0)
        data, _ = src.read(PixelWindow(0, 0, 5, 5), keep_open=True)
        assert kept_dataset(str(path)) is not ds and ds.closed
        np.testing.assert_array_equal(data, img[:, :5, :5] + 7)
        # bounded: the least recently used handle is closed
        paths = [write_tif(f"b{i}.tif", img) for i in range(KEPT_PER_THREAD + 1)]
        first = kept_dataset(str(paths[0]))
        for p in paths[1:]:
            kept_dataset(str(p))
        assert first.closed
    finally:
        close_kept()


def test_nan_nodata_and_internal_mask(tmp_path: Path, write_tif) -> None:
    img = np.ones((1, 8, 8), dtype="float32")
    img[0, 2, 3] = np.nan
    src = open_raster(write_tif("nan.tif", img, nodata=np.nan))
    _, valid = src.read()
    assert not valid[2, 3] and valid.sum() == 63

    path = tmp_path / "masked.tif"
    with (
        rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True),
        rasterio.open(
            path,
            "w",
            driver="GTiff",
            count=1,
            height=8,
            width=8,
            dtype="uint8",
            crs="EPSG:4326",
            transform=Affine(0.1, 0, 0, 0, -0.1, 0),
        ) as ds,
    ):
        ds.write(np.full((1, 8, 8), 7, dtype="uint8"))
        mask = np.full((8, 8), 255, dtype="uint8")
        mask[:, :2] = 0
        ds.write_mask(mask)
    src = open_raster(path)
    assert src.uses_mask
    _, valid = src.read()
    assert not valid[:, :2].any() and valid[:, 2:].all()


def test_band_selection_by_name_and_index(write_tif) -> None:
    img = np.stack([np.full((4, 4), v, dtype="uint16") for v in (1, 2, 3, 4)])
    path = write_tif("named.tif", img, descriptions=["blue", "green", "red", "nir"])
    src = open_raster(path, bands=["nir", "Red", 1])
    assert src.band_names == ("nir", "red", "blue")
    data, _ = src.read()
    assert [int(b[0, 0]) for b in data] == [4, 3, 1]
    with pytest.raises(BandError, match="swir1"):
        open_raster(path, bands=["swir1"])
    with pytest.raises(BandError, match="no band 5"):
        open_raster(path, bands=[5])


def test_stack_single_band_files_without_copying(write_tif) -> None:
    a = write_tif("a.tif", np.full((6, 5), 1, dtype="float32"))
    b = write_tif("b.tif", np.full((6, 5), 2, dtype="float32"))
    src = open_raster([a, b], band_names=["red", "nir"])
    assert src.paths == (str(a), str(b)) and src.band_names == ("red", "nir")
    data, _ = src.read(PixelWindow(0, 0, 2, 2))
    assert data[:, 0, 0].tolist() == [1, 2]
    c = write_tif("c.tif", np.ones((6, 5), dtype="float32"), transform=Affine(10, 0, 0, 0, -10, 0))
    with pytest.raises(GridMismatchError, match=r"c\.tif"):
        open_raster([a, c])


def test_nc_landsat7_stack_round_trip(shared_data: Path) -> None:
    nc = shared_data / "nc-landsat7"
    files = [nc / f"lsat7_2000_{b}.tif" for b in (10, 20, 30, 40, 50, 70)]
    src = open_raster(files, band_names=["blue", "green", "red", "nir", "swir1", "swir2"])
    assert src.grid.shape == (443, 489) and src.nodata == -99999
    data, valid = src.read()
    # Real-data quirk: band 7 is int16 with nodata -32768 and covers less ground (37.6 %
    # nodata against 15.3 % for the others); a pixel is valid only where all bands are.
    assert src.dtype == "float32"
    assert src.bands[5].nodata == -32768 and src.bands[0].nodata == -99999
    assert 1 - valid.mean() == pytest.approx(0.3764, abs=1e-3)
    assert (1 - open_raster(files[:5]).read()[1].mean()) == pytest.approx(0.1533, abs=1e-3)
    with rasterio.open(files[3]) as ds:
        np.testing.assert_array_equal(data[3], ds.read(1))
    strata = open_raster(nc / "strata.tif")
    assert strata.grid.same_as(src.grid)  # equivalent CRSs written differently


def test_real_amazon_and_pucallpa_read(shared_data: Path) -> None:
    tif = sorted((shared_data / "amazon-s2-rgb" / "training" / "images").glob("*.tiff"))[0]
    src = open_raster(tif)
    assert src.count == 3 and src.dtype == "uint8" and src.grid.crs.to_epsg() == 4326
    data, _ = src.read(PixelWindow(500, 500, 20, 20))
    assert data.shape == (3, 20, 20)
    with rasterio.open(tif) as ds:
        np.testing.assert_array_equal(data[:, :12, :12], ds.read(window=((500, 512), (500, 512))))
    p = open_raster(shared_data / "pucallpa-landsat" / "1985.tif")
    assert p.count == 4 and p.nodata == 0 and p.grid.shape == (377, 697)


def test_bad_inputs(tmp_path: Path, write_tif) -> None:
    with pytest.raises(MissingFileError, match=r"nope\.tif"):
        open_raster(tmp_path / "nope.tif")
    text = tmp_path / "notes.tif"
    text.write_text("hello, I am not a raster")
    with pytest.raises(BadRasterError, match=r"notes\.tif: not a raster"):
        open_raster(text)
    good = write_tif("good.tif", np.random.default_rng(0).integers(0, 60000, (2, 600, 600), dtype="uint16"))
    truncated = tmp_path / "truncated.tif"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(BadRasterError, match=r"truncated\.tif"):
        open_raster(truncated)
    with pytest.raises(WindowError, match=r"good\.tif: window .* lies outside the raster"):
        open_raster(good).read(PixelWindow(700, 0, 10, 10))
    nocrs = write_tif("nocrs.tif", np.ones((4, 4), dtype="uint8"), crs=None)
    with pytest.raises(BadRasterError, match="no CRS"):
        open_raster(nocrs)


def test_class_map_cog(tmp_path: Path) -> None:
    grid = Grid((1500, 1300), Affine(10, 0, 500_000, 0, -10, 9_000_000), rasterio.crs.CRS.from_epsg(32720))
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 3, grid.shape).astype("uint8")
    truth[:100, :100] = 255
    out = tmp_path / "classes.tif"
    with class_map_writer(out, grid, CLASSES, tags={"GEOSEG_MODEL": "test"}) as w:
        for tile in grid.tiles(256):
            w.write(tile.core, truth[tile.core.slices()])
    ok, errors, _ = validate_cog(out)
    assert ok, errors
    with rasterio.open(out) as ds:
        assert ds.count == 1 and ds.dtypes[0] == "uint8" and ds.nodata == 255
        assert Grid.from_dataset(ds).same_as(grid)
        np.testing.assert_array_equal(ds.read(1), truth)
        assert ds.overviews(1) == [2, 4]
        assert ds.colormap(1)[1] == (0, 0, 255, 255)
        assert ds.tags()["CLASS_2"] == "crop" and ds.tags()["GEOSEG_MODEL"] == "test"
        assert ds.block_shapes[0] == (512, 512) and ds.compression is not None
        # mode resampling keeps only real classes in overviews (no averaged values)
        assert set(np.unique(ds.read(1, out_shape=(375, 325)))) <= {0, 1, 2, 255}
    assert read_classes(out) == CLASSES
    # no temporaries left; the legend sidecars beside the COG
    assert sorted(p.name for p in tmp_path.iterdir()) == ["classes.qml", "classes.tif", "classes.tif.aux.xml"]


def test_unwritten_blocks_are_nodata_and_abort_leaves_nothing(tmp_path: Path) -> None:
    grid = Grid((600, 600), Affine(1, 0, 0, 0, -1, 600), rasterio.crs.CRS.from_epsg(32720))
    out = tmp_path / "x.tif"
    with class_map_writer(out, grid, CLASSES) as w:
        w.write(PixelWindow(0, 0, 10, 10), np.zeros((10, 10), "uint8"))
    with rasterio.open(out) as ds:
        arr = ds.read(1)
    assert (arr[:10, :10] == 0).all() and (arr[10:] == 255).all()
    out2 = tmp_path / "y.tif"
    with pytest.raises(RuntimeError), class_map_writer(out2, grid, CLASSES) as w:
        w.write(PixelWindow(0, 0, 10, 10), np.zeros((10, 10), "uint8"))
        raise RuntimeError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.qml", "x.tif", "x.tif.aux.xml"]  # y: nothing


def test_validate_cog_rejects_plain_geotiff(write_tif) -> None:
    path = write_tif("plain.tif", np.zeros((1200, 1200), dtype="uint8"))
    ok, errors, _ = validate_cog(path)
    assert not ok and any("COG layout" in e for e in errors)


def test_probabilities_writer_multiband(tmp_path: Path) -> None:
    grid = Grid((300, 200), Affine(1, 0, 0, 0, -1, 300), rasterio.crs.CRS.from_epsg(32720))
    out = tmp_path / "p.tif"
    w = RasterWriter(
        out, grid, count=3, dtype="uint8", nodata=255, band_descriptions=["a", "b", "c"], resampling="AVERAGE"
    )
    w.write(grid.window, np.full((3, 300, 200), 7, "uint8"))
    w.finish()
    with rasterio.open(out) as ds:
        assert ds.count == 3 and ds.descriptions == ("a", "b", "c") and (ds.read() == 7).all()


def test_check_writable(tmp_path: Path, write_tif) -> None:
    src = write_tif("in.tif", np.ones((4, 4), "uint8"))
    with pytest.raises(OutputError, match="also an input"):
        check_writable(src, [src])
    with pytest.raises(OutputError, match="does not exist"):
        check_writable(tmp_path / "missing" / "out.tif")
    with pytest.raises(OutputError, match="directory"):
        check_writable(tmp_path)
    assert check_writable(tmp_path / "out.tif", [src]) == tmp_path / "out.tif"
