from __future__ import annotations

import numpy as np
import pytest
import rasterio
from affine import Affine
from hypothesis import given, settings
from hypothesis import strategies as st
from rasterio.crs import CRS

from geoseg.errors import WindowError
from geoseg.raster import Grid, PixelWindow, batch_tiles, crs_equal, iter_tiles

UTM = CRS.from_epsg(32720)


@settings(max_examples=300, deadline=None)
@given(
    height=st.integers(1, 300),
    width=st.integers(1, 300),
    size=st.integers(1, 400),
    overlap=st.integers(0, 64),
)
@pytest.mark.slow
def test_tile_cores_cover_grid_exactly_once(height: int, width: int, size: int, overlap: int) -> None:
    count = np.zeros((height, width), dtype=np.int32)
    tiles = list(iter_tiles((height, width), size, overlap))
    for t in tiles:
        assert t.core.height > 0 and t.core.width > 0
        assert PixelWindow(0, 0, height, width).contains(t.core)  # cores stay inside the grid
        assert t.read.contains(t.core)  # the read window holds the core
        # every read window has the same shape so batches stack: a tile plus its halo,
        # or along an axis shorter than a tile, the whole axis plus its halo
        assert t.read.shape == (min(size, height) + 2 * overlap, min(size, width) + 2 * overlap)
        # at least `overlap` pixels of halo on each side of the core
        assert t.core.row_off - t.read.row_off >= overlap
        assert t.core.col_off - t.read.col_off >= overlap
        assert t.read.row_end - t.core.row_end >= overlap
        assert t.read.col_end - t.core.col_end >= overlap
        # the read window never starts more than one halo before the raster
        assert t.read.row_off >= -overlap and t.read.col_off >= -overlap
        count[t.core.slices()] += 1
    assert (count == 1).all()
    assert len({t.key for t in tiles}) == len(tiles)


@settings(max_examples=200, deadline=None)
@given(
    rows=st.integers(1, 12),
    cols=st.integers(1, 40),
    size=st.integers(1, 9),
    lanes=st.integers(1, 5),
    done=st.sets(st.integers(0, 479)),
)
def test_batches_hold_every_tile_once_in_strips(
    rows: int, cols: int, size: int, lanes: int, done: set[int]
) -> None:
    tiles = [t for k, t in enumerate(iter_tiles((rows * 8, cols * 8), 8, 2)) if k not in done]
    batches = batch_tiles(tiles, size, lanes)
    assert sorted(t.key for b in batches for t in b) == sorted(t.key for t in tiles)
    strip_of = []
    for b in batches:
        assert 1 <= len(b) <= size
        assert len({t.row for t in b}) == 1 and len({t.col // size for t in b}) == 1
        assert [t.col for t in b] == sorted(t.col for t in b)  # left to right: one union read
        strip_of.append((b[0].col // size) // lanes)
    # strip groups one after the other, each walked down row by row
    assert strip_of == sorted(strip_of)
    for group in set(strip_of):
        seq = [b[0].row for b, g in zip(batches, strip_of, strict=True) if g == group]
        assert seq == sorted(seq)


def test_batches_walk_down_strips_side_by_side() -> None:
    tiles = list(iter_tiles((4 * 8, 16 * 8), 8, 2))  # 4 rows x 16 columns of tiles
    keys = [[t.key for t in b] for b in batch_tiles(tiles, 4, 2)]
    # two lanes: strips 0 and 1 side by side down the rows, then strips 2 and 3
    assert keys[:4] == [["0-0", "0-1", "0-2", "0-3"], ["0-4", "0-5", "0-6", "0-7"], ["1-0", "1-1", "1-2", "1-3"], ["1-4", "1-5", "1-6", "1-7"]]  # fmt: skip
    assert keys[8] == ["0-8", "0-9", "0-10", "0-11"] and len(keys) == 16
    # one lane: row-major inside each strip; the batches themselves do not depend on lanes
    one = [[t.key for t in b] for b in batch_tiles(tiles, 4, 1)]
    assert one[:2] == [["0-0", "0-1", "0-2", "0-3"], ["1-0", "1-1", "1-2", "1-3"]]
    assert sorted(map(tuple, one)) == sorted(map(tuple, keys))
    with pytest.raises(ValueError):
        batch_tiles(tiles, 0)


def test_tile_larger_than_raster_is_one_tile() -> None:
    tiles = list(iter_tiles((5, 3), 512, 16))
    assert len(tiles) == 1
    assert tiles[0].core == PixelWindow(0, 0, 5, 3)
    assert tiles[0].core_in_read == PixelWindow(16, 16, 5, 3)
    # read once with its halo, not padded out to a whole tile
    assert tiles[0].read == PixelWindow(-16, -16, 5 + 32, 3 + 32)
    strip = list(iter_tiles((50, 1200), 512, 64))  # a strip: short in rows only
    assert {t.read.shape for t in strip} == {(50 + 128, 640)} and len(strip) == 3


def test_bad_tiling_arguments() -> None:
    with pytest.raises(WindowError):
        list(iter_tiles((10, 10), 0))
    with pytest.raises(WindowError):
        list(iter_tiles((10, 10), 4, -1))


def test_subgrid_keeps_pixels_on_the_ground() -> None:
    g = Grid((100, 200), Affine(10, 0, 1000, 0, -10, 5000), UTM)
    sub = g[10:20, 30:50]
    assert sub.shape == (10, 20)
    assert sub.transform @ (0, 0) == g.transform @ (30, 10)
    assert sub.crs == g.crs
    assert g.window_grid(PixelWindow(-2, -3, 4, 4)).transform @ (0, 0) == g.transform @ (-3, -2)
    with pytest.raises(WindowError):
        g[20:10, 0:5]


def test_grid_is_immutable_and_hashable() -> None:
    g = Grid((10, 10), Affine(1, 0, 0, 0, -1, 10), UTM)
    with pytest.raises(AttributeError):
        g.shape = (5, 5)  # type: ignore[misc]
    assert g.bounds == (0, 0, 10, 10)
    assert g.res == (1, 1)


def test_window_helpers() -> None:
    a = PixelWindow(0, 0, 10, 10)
    b = PixelWindow(5, 5, 10, 10)
    assert a.intersection(b) == PixelWindow(5, 5, 5, 5)
    assert a.intersection(PixelWindow(10, 0, 2, 2)) is None
    assert b.relative_to(a) == PixelWindow(5, 5, 10, 10)
    with pytest.raises(WindowError):
        PixelWindow(0, 0, -1, 2)


def test_equivalent_crs_written_differently() -> None:
    assert crs_equal(CRS.from_epsg(4326), CRS.from_wkt(CRS.from_epsg(4326).to_wkt()))
    assert not crs_equal(CRS.from_epsg(4326), CRS.from_epsg(32720))
    assert not crs_equal(CRS.from_epsg(32720), None)
    assert crs_equal(None, None)


def test_nc_landsat7_bands_and_strata_are_one_grid(shared_data) -> None:
    nc = shared_data / "nc-landsat7"
    with rasterio.open(nc / "lsat7_2000_10.tif") as a, rasterio.open(nc / "strata.tif") as b:
        ga, gb = Grid.from_dataset(a), Grid.from_dataset(b)
        # one says "unnamed" GRS80 LCC with a zero TOWGS84, the other EPSG:3358
        assert a.crs.to_epsg() != b.crs.to_epsg()
    assert crs_equal(ga.crs, gb.crs)
    assert ga.same_as(gb)
    shifted = Grid(gb.shape, gb.transform @ Affine.translation(1, 0), gb.crs)
    assert not ga.same_as(shifted)
