"""xarray integration: open_scene -> predict_xr (lazy) -> compute / write_classmap."""

from __future__ import annotations

from pathlib import Path

import dask
import dask.array as dsa
import numpy as np
import pytest
import rasterio
import xarray as xr
from affine import Affine

from geoseg.errors import BandError, ModelError
from geoseg.inference import init_checkpoint, make_spec, open_scene, predict, predict_xr, write_classmap
from geoseg.raster import Grid, open_raster, read_classes, validate_cog

# rioxarray itself multiplies Affines with `*`; not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore:Use `@` matmul:PendingDeprecationWarning")

TINY = {"encoder_depth": 3, "decoder_channels": [32, 16, 8]}
BANDS = ["blue", "green", "red", "nir"]
# Edge tiles have thin cores (300 = 2 * 128 + 44, 420 = 3 * 128 + 36), so their read
# windows slide back; the first tile is all nodata and must be skipped.
H, W, TILE, OVERLAP = 300, 420, 128, 16


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    spec = make_spec(
        "Unet", "resnet18", BANDS, 6, mean=[800, 900, 800, 2500], std=[400, 400, 500, 900], **TINY
    )
    return init_checkpoint(tmp_path_factory.mktemp("model") / "tiny.safetensors", spec, seed=0)


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:H, 0:W]
    base = (np.sin(yy / 37.0) + np.cos(xx / 23.0)) * 600
    data = np.stack([base * k + 1500 + rng.normal(0, 80, base.shape) for k in (0.5, 0.8, 1.0, 2.0)])
    data = np.clip(data, 1, 10000).astype("uint16")
    data[:, :140, :140] = 0  # nodata corner covering the first tile's core
    data[2, 200:210, 300:310] = 0  # one band missing: invalid, though the others are not
    path = tmp_path_factory.mktemp("scene") / "scene.tif"
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        count=4,
        height=H,
        width=W,
        dtype="uint16",
        nodata=0,
        crs="EPSG:32720",
        transform=Affine(10, 0, 500_000, 0, -10, 9_000_000),
        tiled=True,
        blockxsize=128,
        blockysize=128,
    ) as ds:
        ds.write(data)
        for i, name in enumerate(BANDS, start=1):
            ds.set_band_description(i, name)
    return path


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, scene: Path, model: Path) -> np.ndarray:
    """geoseg.pipeline.predict's class map of the scene (torch, same tiling).

    An in-process cluster keeps this fast; test_predict.py already shows the pipeline
    gives the same bytes whatever its workers.
    """
    from distributed import Client, LocalCluster

    out = tmp_path_factory.mktemp("ref") / "ref.tif"
    cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0")
    with cluster, Client(cluster) as client:
        predict(
            [scene], model, out, tile_size=TILE, overlap=OVERLAP, batch_size=4, backend="torch", client=client
        )
    with rasterio.open(out) as ds:
        return ds.read(1)


@pytest.fixture(scope="module")
def classes(scene: Path, model: Path) -> xr.DataArray:
    da = open_scene(scene, chunks=100)  # chunks unaligned with tiles on purpose
    return predict_xr(da, model, tile_size=TILE, overlap=OVERLAP, batch_size=4, backend="torch")


def test_open_scene(scene: Path) -> None:
    da = open_scene(scene, chunks=128)
    assert da.dims == ("band", "y", "x") and da.shape == (4, H, W)
    assert isinstance(da.data, dsa.Array) and da.data.chunks[1][0] == 128
    assert list(da.band.values) == BANDS
    assert da.rio.nodata == 0 and da.dtype == np.uint16
    grid = open_raster(scene).grid
    assert da.rio.crs == grid.crs and da.rio.transform() == grid.transform
    with rasterio.open(scene) as ds:
        assert np.array_equal(da.values, ds.read())
    sub = open_scene(scene, bands=["nir", 1])
    assert list(sub.band.values) == ["nir", "blue"]
    assert np.array_equal(sub.sel(band="nir").values, da.sel(band="nir").values)
    with pytest.raises(BandError, match="no band named 'swir'"):
        open_scene(scene, bands=["swir"])


def test_open_scene_stacks_single_band_files(tmp_path: Path, scene: Path) -> None:
    with rasterio.open(scene) as src:
        profile = {**src.profile, "count": 1}
        paths = []
        for i in range(1, 5):
            p = tmp_path / f"b{i}.tif"
            with rasterio.open(p, "w", **profile) as dst:
                dst.write(src.read(i), 1)
            paths.append(p)
    da = open_scene(paths, band_names=BANDS)
    assert list(da.band.values) == BANDS and da.shape == (4, H, W)
    assert np.array_equal(da.values, open_scene(scene).values)


def test_predict_xr_is_lazy_and_keeps_the_grid(scene: Path, classes: xr.DataArray) -> None:
    da = open_scene(scene)
    assert isinstance(classes.data, dsa.Array)  # nothing computed yet
    assert classes.dims == ("y", "x") and classes.dtype == np.uint8
    assert np.array_equal(classes.x.values, da.x.values) and np.array_equal(classes.y.values, da.y.values)
    assert classes.rio.crs == da.rio.crs and classes.rio.transform() == da.rio.transform()
    assert classes.rio.nodata == 255
    assert classes.attrs["class_names"] == [f"class{i}" for i in range(6)]
    assert list(classes.attrs["flag_values"]) == list(range(6))


def test_predict_xr_equals_pipeline(scene: Path, classes: xr.DataArray, reference: np.ndarray) -> None:
    got = classes.compute(scheduler="threads").values
    # Same tiles (edge tiles slid back), same batches, same predict_tiles: identical.
    assert np.array_equal(got, reference)
    _, valid = open_raster(scene).read()
    assert (got[~valid] == 255).all() and (got[valid] < 6).all()
    assert (got[205, 305] == 255) and len(np.unique(got[valid])) >= 2
    # a lazy subset computes only the tiles under it, and agrees
    part = classes.isel(y=slice(130, 260), x=slice(250, 400)).compute(scheduler="threads")
    assert np.array_equal(part.values, reference[130:260, 250:400])


def test_predict_xr_in_memory_input_and_band_selection(
    scene: Path, model: Path, reference: np.ndarray
) -> None:
    da = open_scene(scene).load()  # numpy-backed, band order shuffled: picked by name
    shuffled = da.isel(band=[3, 0, 2, 1])
    got = predict_xr(shuffled, model, tile_size=TILE, overlap=OVERLAP, batch_size=4, backend="torch")
    assert np.array_equal(got.values, reference)
    three = da.isel(band=[0, 1, 2]).assign_coords(band=["a", "b", "c"])
    with pytest.raises(ModelError, match="expects 4 bands"):
        predict_xr(three, model)


def test_write_classmap_cog(
    tmp_path: Path, scene: Path, classes: xr.DataArray, reference: np.ndarray
) -> None:
    out = write_classmap(classes, tmp_path / "classes.tif")
    ok, errors, _ = validate_cog(out)
    assert ok, errors
    with rasterio.open(out) as ds:
        assert Grid.from_dataset(ds).same_as(open_raster(scene).grid)
        assert ds.dtypes[0] == "uint8" and ds.nodata == 255 and ds.colormap(1)
        assert np.array_equal(ds.read(1), reference)
    assert [c.name for c in read_classes(out)] == [f"class{i}" for i in range(6)]
    # no leftovers; the legend sidecars beside the COG
    assert sorted(p.name for p in tmp_path.iterdir()) == ["classes.qml", "classes.tif", "classes.tif.aux.xml"]
    with dask.config.set(scheduler="processes"):  # the open writer cannot go to other processes
        again = write_classmap(classes, tmp_path / "again.tif")
    assert again.read_bytes() == out.read_bytes()


def test_write_classmap_with_distributed_client(
    tmp_path: Path, classes: xr.DataArray, reference: np.ndarray
) -> None:
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=":0")
    with cluster, Client(cluster):
        out = write_classmap(classes, tmp_path / "classes.tif")
    with rasterio.open(out) as ds:
        assert np.array_equal(ds.read(1), reference)
