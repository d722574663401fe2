"""Synthetic scenes: determinism, window independence, realism of layout and spectra,
the written GeoTIFFs, and the injected change between dates."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
import rasterio
from hypothesis import given, settings
from hypothesis import strategies as st
from rasterio.crs import CRS

from geoseg.classes import CLASS_NODATA
from geoseg.data import (
    BAND_NAMES,
    BARE_SOIL,
    BUILT_UP,
    CLASSES,
    CROPLAND,
    FOREST,
    GRASSLAND,
    WATER,
    SceneSpec,
    _landscape,
    change_events,
    change_truth,
    class_map,
    make_change,
    scene_bands,
    scene_grid,
    write_scene,
)
from geoseg.data import _synthetic as syn
from geoseg.errors import ConfigError, OutputError, WindowError
from geoseg.raster import PixelWindow

ALL_CLASSES = {c.id for c in CLASSES}
BLUE, GREEN, RED, NIR = 0, 1, 2, 3


@lru_cache(maxsize=8)
def whole(spec: SceneSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(before, after, bands before, bands after) of a whole scene, computed once per spec."""
    before, after = change_truth(spec)
    return before, after, scene_bands(spec, before), scene_bands(spec, after, date=2)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------------------
# Spec and grid


def test_classes_are_the_fixed_six() -> None:
    assert [(c.id, c.name) for c in CLASSES] == [
        (0, "forest"), (1, "water"), (2, "cropland"), (3, "grassland"), (4, "bare soil"), (5, "built-up"),
    ]  # fmt: skip
    assert len({c.colour for c in CLASSES}) == 6
    assert CLASS_NODATA == 255


@pytest.mark.parametrize(
    "kwargs", [{"height": 0}, {"width": -3}, {"bands": 5}, {"pixel_size": 0.0}, {"block": 0}]
)
def test_spec_rejects_bad_values(kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {"height": 10, "width": 10, **kwargs}
    with pytest.raises(ConfigError):
        SceneSpec(**args)  # type: ignore[arg-type]


def test_scene_grid_is_utm_20s_with_the_spec_pixel_size() -> None:
    spec = SceneSpec(200, 300, pixel_size=20.0, origin=(500_000.0, 9_600_000.0))
    grid = scene_grid(spec)
    assert grid.shape == (200, 300)
    assert grid.crs == CRS.from_epsg(32720)
    assert grid.res == (20.0, 20.0)
    assert grid.bounds == (500_000.0, 9_596_000.0, 506_000.0, 9_600_000.0)
    assert spec.band_names == ("blue", "green", "red", "nir")
    assert SceneSpec(5, 5, bands=6).band_names[4:] == ("swir1", "swir2")


# --------------------------------------------------------------------------------------
# Determinism and window independence


def test_same_seed_same_bytes_different_seed_differs() -> None:
    spec = SceneSpec(256, 320, seed=3)
    a = class_map(spec)
    b_a = scene_bands(spec, a)
    _landscape._layout.cache_clear()  # nothing may depend on cached state
    syn._events.cache_clear()
    b = class_map(spec)
    assert a.tobytes() == b.tobytes()
    assert b_a.tobytes() == scene_bands(spec, b).tobytes()
    other = SceneSpec(256, 320, seed=4)
    assert (class_map(other) != a).mean() > 0.05
    assert not np.array_equal(scene_bands(other, a), b_a)  # same classes, other noise


windows = st.tuples(st.integers(0, 299), st.integers(0, 279)).flatmap(
    lambda rc: st.tuples(st.just(rc), st.integers(1, 300 - rc[0]), st.integers(1, 280 - rc[1]))
)


@settings(max_examples=40, deadline=None)
@given(window=windows, seed=st.sampled_from([0, 7]))
def test_any_window_equals_the_slice_of_the_whole_scene(
    window: tuple[tuple[int, int], int, int], seed: int
) -> None:
    (row, col), height, width = window
    spec = SceneSpec(300, 280, seed=seed, bands=6)
    full_before, full_after, full_b1, full_b2 = whole(spec)
    win = PixelWindow(row, col, height, width)
    rows, cols = win.slices()
    before, after = change_truth(spec, win)
    np.testing.assert_array_equal(before, full_before[rows, cols])
    np.testing.assert_array_equal(after, full_after[rows, cols])
    np.testing.assert_array_equal(scene_bands(spec, before, win), full_b1[:, rows, cols])
    np.testing.assert_array_equal(scene_bands(spec, after, win, date=2), full_b2[:, rows, cols])


def test_windows_far_into_a_huge_scene_are_independent_too() -> None:
    """A 16384 x 16384 scene is never computed whole: compare windows inside a window."""
    spec = SceneSpec(16384, 16384, seed=11)
    outer = PixelWindow(15900, 9000, 484, 700)  # reaches the bottom edge (nodata border side?)
    before, after = change_truth(spec, outer)
    b2 = scene_bands(spec, after, outer, date=2)
    for inner in (
        PixelWindow(15901, 9003, 97, 211),
        PixelWindow(16283, 9500, 101, 200),
        PixelWindow(16000, 9350, 1, 1),
    ):
        rows, cols = inner.relative_to(outer).slices()
        inner_before, inner_after = change_truth(spec, inner)
        np.testing.assert_array_equal(inner_before, before[rows, cols])
        np.testing.assert_array_equal(inner_after, after[rows, cols])
        np.testing.assert_array_equal(scene_bands(spec, inner_after, inner, date=2), b2[:, rows, cols])


def test_windows_must_lie_inside_the_scene() -> None:
    spec = SceneSpec(100, 100)
    for bad in (PixelWindow(90, 0, 20, 10), PixelWindow(-1, 0, 5, 5), PixelWindow(0, 0, 0, 5)):
        with pytest.raises(WindowError):
            class_map(spec, bad)
    with pytest.raises(WindowError):
        scene_bands(spec, np.zeros((5, 5), np.uint8), PixelWindow(0, 0, 5, 6))
    with pytest.raises(ConfigError):
        scene_bands(spec, np.full((5, 5), 9, np.uint8), PixelWindow(0, 0, 5, 5))


# --------------------------------------------------------------------------------------
# Layout and spectra


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_a_512_scene_has_all_six_classes_and_a_nodata_border(seed: int) -> None:
    spec = SceneSpec(512, 512, seed=seed)
    classes = class_map(spec)
    assert set(np.unique(classes).tolist()) == ALL_CLASSES | {CLASS_NODATA}
    counts = np.bincount(classes[classes != CLASS_NODATA], minlength=6) / classes.size
    assert counts[FOREST] > 0.2 and counts.min() > 0.001


@pytest.mark.parametrize("seed", [0, 5, 6])
def test_nodata_agrees_between_truth_and_every_band(seed: int) -> None:
    spec = SceneSpec(400, 360, seed=seed, bands=6)
    classes = class_map(spec)
    pixels = scene_bands(spec, classes)
    nodata = classes == CLASS_NODATA
    assert np.array_equal(nodata, (pixels == 0).all(axis=0))
    assert (pixels[:, ~nodata] > 0).all()  # valid pixels never take the nodata value
    # An irregular band along one or two edges: touches an edge, stays near the edges.
    assert 0.01 < nodata.mean() < 0.25
    edges = [nodata[0], nodata[-1], nodata[:, 0], nodata[:, -1]]
    assert 1 <= sum(e.mean() > 0.9 for e in edges) <= 2
    rows, cols = np.nonzero(nodata)
    to_edge = np.minimum.reduce([rows, 399 - rows, cols, 359 - cols])
    assert to_edge.max() < 60
    assert (class_map(SceneSpec(400, 360, seed=seed, nodata_border=False)) != CLASS_NODATA).all()


def test_class_spectra_are_plausible_and_distinct() -> None:
    spec = SceneSpec(512, 512, seed=1, bands=6)
    classes = class_map(spec)
    pixels = scene_bands(spec, classes).astype(float) / 10_000
    mean = {c.id: pixels[:, classes == c.id].mean(axis=1) for c in CLASSES}
    ndvi = {k: (m[NIR] - m[RED]) / (m[NIR] + m[RED]) for k, m in mean.items()}
    assert mean[FOREST][NIR] > mean[WATER][NIR] + 0.2
    assert mean[FOREST][RED] < 0.04 and mean[FOREST][NIR] > 0.25
    assert mean[WATER][NIR] < 0.05
    assert ndvi[FOREST] > ndvi[GRASSLAND] > ndvi[BARE_SOIL] > ndvi[BUILT_UP] > ndvi[WATER]
    assert mean[CROPLAND][NIR] > mean[GRASSLAND][NIR]
    assert mean[BARE_SOIL][RED] > 0.12 and mean[BARE_SOIL][4] > mean[GRASSLAND][4]  # swir1
    assert mean[BUILT_UP][BLUE] > mean[FOREST][BLUE] + 0.05
    # Texture and noise: classes are not flat, but far apart compared to their spread.
    forest_nir = pixels[NIR, classes == FOREST]
    assert 0.005 < forest_nir.std() < 0.05


def test_per_pixel_spectra_leave_work_for_the_model() -> None:
    """A nearest-mean classifier on single pixels does well but not perfectly."""
    spec = SceneSpec(512, 512, seed=2)
    classes = class_map(spec)
    valid = classes != CLASS_NODATA
    x = scene_bands(spec, classes)[:, valid].T.astype(float)
    y = classes[valid]
    centres = np.stack([x[y == c].mean(axis=0) for c in range(6)])
    scale = x.std(axis=0)
    guess = np.argmin((((x[:, None, :] - centres[None]) / scale) ** 2).sum(axis=2), axis=1)
    accuracy = (guess == y).mean()
    assert 0.7 < accuracy < 0.98


# --------------------------------------------------------------------------------------
# Change


def test_change_has_clearings_and_regrowth_and_nothing_else() -> None:
    spec = SceneSpec(1024, 1024, seed=2)
    before, after = change_truth(spec)
    changed = before != after
    cleared = (before == FOREST) & np.isin(after, [BARE_SOIL, GRASSLAND, CROPLAND])
    regrown = np.isin(before, [GRASSLAND, BARE_SOIL]) & (after == FOREST)
    assert cleared.sum() > 1000 and regrown.sum() > 100
    assert np.array_equal(changed, cleared | regrown)
    assert 0.003 < changed.mean() < 0.1  # a few percent of the scene, as between two years
    # Pixels outside every event's box, and nodata, never change.
    touched = np.zeros_like(changed)
    events = change_events(spec)
    for e in events:
        part = e.box.intersection(spec.window)
        if part is not None:
            touched[part.slices()] = True
    assert not changed[~touched].any()
    assert np.array_equal(before == CLASS_NODATA, after == CLASS_NODATA)
    # Realistic sizes: 1-50 ha clearings at 10 m (100-5000 px), each within its box.
    for e in events:
        area = np.pi * e.radii[0] * e.radii[1] if e.shape == "blob" else e.box.size
        assert 100 <= area <= 5000, e
    assert {e.kind for e in events} == {"clearing", "regrowth"}


def test_make_change_applies_to_any_classes_given() -> None:
    spec = SceneSpec(300, 300, seed=1)
    all_forest = np.zeros(spec.shape, np.uint8)
    after = make_change(spec, all_forest)
    assert (after != FOREST).any()
    assert set(np.unique(after).tolist()) <= {FOREST, GRASSLAND, BARE_SOIL, CROPLAND}
    with pytest.raises(WindowError):
        make_change(spec, all_forest[:10], PixelWindow(0, 0, 11, 300))


# --------------------------------------------------------------------------------------
# Writing


def test_write_scene_round_trips_strip_by_strip(tmp_path: Path) -> None:
    spec = SceneSpec(1030, 600, seed=4, block=512)  # three strips, the last 6 rows
    calls: list[tuple[int, int]] = []
    out = write_scene(
        spec, tmp_path / "scene.tif", tmp_path / "truth.tif", progress=lambda d, t, p="": calls.append((d, t))
    )
    assert out == tmp_path / "scene.tif"
    names = sorted(p.name for p in tmp_path.iterdir())
    # the truth's legend sidecars beside it
    assert names == ["scene.tif", "truth.qml", "truth.tif", "truth.tif.aux.xml"]
    assert calls == [(512, 1030), (1024, 1030), (1030, 1030)]
    classes = class_map(spec)
    with rasterio.open(out) as ds:
        assert ds.crs == CRS.from_epsg(32720)
        assert ds.transform == scene_grid(spec).transform
        assert (ds.count, ds.height, ds.width) == (4, 1030, 600)
        assert ds.dtypes == ("uint16",) * 4
        assert ds.descriptions == ("blue", "green", "red", "nir")
        assert ds.nodata == 0
        assert ds.compression is not None and ds.compression.name == "deflate"
        assert ds.block_shapes[0] == (512, 512)
        np.testing.assert_array_equal(ds.read(), scene_bands(spec, classes))
    with rasterio.open(tmp_path / "truth.tif") as ds:
        assert ds.dtypes == ("uint8",) and ds.nodata == 255
        assert ds.transform == scene_grid(spec).transform
        assert ds.tags()["CLASS_4"] == "bare soil"
        np.testing.assert_array_equal(ds.read(1), classes)


def test_write_scene_date_2_is_the_changed_scene(tmp_path: Path) -> None:
    spec = SceneSpec(300, 260, seed=9, bands=6)
    before, after = change_truth(spec)
    write_scene(spec, tmp_path / "d2.tif", tmp_path / "t2.tif", date=2)
    with rasterio.open(tmp_path / "d2.tif") as ds:
        assert ds.descriptions == BAND_NAMES
        pixels = ds.read()
    with rasterio.open(tmp_path / "t2.tif") as ds:
        np.testing.assert_array_equal(ds.read(1), after)
    np.testing.assert_array_equal(pixels, scene_bands(spec, after, date=2))
    # Unchanged ground differs only by noise and a slight global brightness change.
    same = (before == after) & (before != CLASS_NODATA)
    date1 = scene_bands(spec, before)
    ratio = pixels[:, same].mean() / date1[:, same].mean()
    assert 0.94 < ratio < 1.06 and ratio != 1.0


def test_written_files_are_byte_identical_for_a_seed(tmp_path: Path) -> None:
    spec = SceneSpec(700, 530, seed=12)
    for name in ("a", "b"):
        write_scene(spec, tmp_path / f"{name}.tif", tmp_path / f"{name}-truth.tif")
    assert sha(tmp_path / "a.tif") == sha(tmp_path / "b.tif")
    assert sha(tmp_path / "a-truth.tif") == sha(tmp_path / "b-truth.tif")
    write_scene(SceneSpec(700, 530, seed=13), tmp_path / "c.tif")
    assert sha(tmp_path / "a.tif") != sha(tmp_path / "c.tif")


def test_a_failed_write_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = SceneSpec(1100, 300, block=512)
    real = syn.scene_bands
    calls = 0

    def flaky(*args: object, **kwargs: object) -> np.ndarray:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("disk on fire")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(syn, "scene_bands", flaky)
    with pytest.raises(RuntimeError, match="disk on fire"):
        write_scene(spec, tmp_path / "s.tif", tmp_path / "t.tif")
    assert list(tmp_path.iterdir()) == []


def test_write_scene_rejects_bad_arguments(tmp_path: Path) -> None:
    spec = SceneSpec(64, 64)
    with pytest.raises(ConfigError, match="date"):
        write_scene(spec, tmp_path / "s.tif", date=3)
    with pytest.raises(OutputError):
        write_scene(spec, tmp_path / "s.tif", tmp_path / "s.tif")
    with pytest.raises(OutputError, match="does not exist"):
        write_scene(spec, tmp_path / "missing" / "s.tif")
    assert list(tmp_path.iterdir()) == []
