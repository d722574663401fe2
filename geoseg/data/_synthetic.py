"""Synthetic Sentinel-2-like scenes with a known class map and injected change.

A scene is an Amazon frontier landscape on a 10 m UTM grid: forest with natural grassland
and bare patches (thresholded smooth noise), a meandering river, straight highways with a
"fishbone" of side roads and rectangular cleared parcels along them (cropland, pasture,
ploughed soil), a town, and an irregular band of nodata along one or two edges, as at the
edge of a satellite swath. A second date applies clearings and regrowth of known shape.

Every pixel is a pure function of its absolute (row, col), the ``SceneSpec`` and the seed:
noise comes from a hash of lattice coordinates interpolated in closed form, and features
(roads, rivers, parcels, towns, clearings) are drawn once per scene from the seed and then
tested per pixel. No filter, no random generator state and no reduction crosses a window,
so any window is computed on its own and gives the same bytes as the same slice of the
whole scene. That is what lets ``write_scene`` write a 16384 x 16384 scene strip by strip
in bounded memory, and lets tests check any window without computing the scene.

Randomness uses our own splitmix64 hashing rather than ``numpy.random``, whose streams
may change between numpy versions; the same seed gives the same scene everywhere.
Arithmetic on pixels is elementwise (add, multiply, divide, sqrt, floor: all exactly
rounded), never transcendental functions or BLAS, whose results can depend on how an
array is split into SIMD lanes or blocks."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
import rasterio

from geoseg.classes import CLASS_NODATA
from geoseg.data._landscape import _clip_line, _ellipse, _layout, _parcel_axes, class_map
from geoseg.data._noise import I64, U8, U16, _Draws, _fbm, _gaussian, _hash, _key, _noise, _uniform
from geoseg.data._scene import (
    _S2_BANDS,
    BAND_NODATA,
    BARE_SOIL,
    CLASSES,
    CROPLAND,
    FOREST,
    GRASSLAND,
    N_CLASSES,
    SCALE,
    WATER,
    SceneSpec,
    _check_window,
    scene_grid,
)
from geoseg.errors import ConfigError, OutputError, WindowError
from geoseg.files import check_writable, partial_path
from geoseg.progress import Progress, report
from geoseg.raster import GDAL_ENV, PixelWindow, class_map_writer, remove_raster

# Mean surface reflectance per class (rows) and band (columns: blue .. swir2), typical of
# Sentinel-2 L2A over the Amazon: forest dark in red, bright in NIR; sediment-laden river
# water brighter in the visible than clear water but dark in NIR/SWIR; latosol bare soil
# reddish and bright in SWIR; built-up bright and spectrally flat. Cropland is the
# mid-season value; each field moves along _VARIANTS with its growth stage.
_MEANS: Final = np.array(
    [
        [0.025, 0.045, 0.028, 0.300, 0.145, 0.060],  # forest
        [0.055, 0.075, 0.070, 0.025, 0.012, 0.008],  # water
        [0.040, 0.075, 0.055, 0.330, 0.210, 0.110],  # cropland
        [0.045, 0.080, 0.075, 0.250, 0.260, 0.150],  # grassland
        [0.085, 0.115, 0.165, 0.225, 0.330, 0.270],  # bare soil
        [0.105, 0.115, 0.125, 0.160, 0.185, 0.170],  # built-up
    ],
    dtype=np.float32,
)


# Within-class variation: each class moves along its own spectral direction (rows) by a
# per-pixel amount in [-1, 1], so classes overlap a little and a classifier must use
# context, as with real imagery. Forest: degraded or secondary (lower NIR, higher SWIR).
# Water: more or less sediment. Cropland: growth stage, bare (-1) to full canopy (+1).
# Grassland: dry, degraded pasture to lush pasture close to a crop. Bare soil: wet-dark to
# dry-bright. Built-up: dense roofs to leafy suburbs.
_VARIANTS: Final = np.array(
    [
        [0.004, 0.008, 0.008, -0.060, 0.030, 0.020],  # forest
        [0.020, 0.025, 0.035, 0.015, 0.004, 0.002],  # water
        [-0.015, -0.010, -0.035, 0.090, -0.040, -0.050],  # cropland
        [-0.008, -0.005, -0.025, 0.070, -0.040, -0.035],  # grassland
        [0.020, 0.025, 0.040, 0.030, 0.050, 0.040],  # bare soil
        [-0.030, -0.020, -0.040, 0.070, -0.020, -0.030],  # built-up
    ],
    dtype=np.float32,
)


# How much of the variation follows smooth ground condition (moisture, degradation) and
# how much is per field (management, crop calendar): crops are set field by field.
_BY_CONDITION: Final = np.array([0.8, 1.0, 0.0, 0.5, 0.8, 0.8], dtype=np.float32)

_BY_FIELD: Final = np.array([0.0, 0.0, 1.0, 0.5, 0.3, 0.0], dtype=np.float32)


# Relative texture amplitude per class: fine grain (3 px: canopy crowns, roofs) and medium
# patches (8-24 px: soil moisture, sediment plumes, grazing). Water varies mostly in the
# visible (sediment), so its medium texture is scaled per band below.
_FINE_AMP: Final = np.array([0.10, 0.02, 0.03, 0.05, 0.06, 0.22], dtype=np.float32)

_MED_AMP: Final = np.array([0.05, 0.15, 0.05, 0.10, 0.12, 0.08], dtype=np.float32)

_WATER_MED_BY_BAND: Final = np.array([1.0, 1.0, 1.0, 0.4, 0.3, 0.3], dtype=np.float32)


def _gain(spec: SceneSpec, date: int) -> float:
    """Global brightness of a date: 1 for date 1, a few percent off for the others."""
    if date == 1:
        return 1.0
    draw = _Draws(_key(spec.seed, "gain", date))
    return 1.0 + (1 if draw.random() < 0.5 else -1) * draw.uniform(0.02, 0.05)


def scene_bands(
    spec: SceneSpec, classes: npt.ArrayLike, window: PixelWindow | None = None, date: int = 1
) -> U16:
    """Reflectances ``(spec.bands, h, w)`` uint16 (x 10000, nodata 0) for ``classes`` on ``window``.

    ``classes`` is usually ``class_map(spec, window)`` (or the second date's truth), but any
    class raster of the window's shape works. Texture tied to the ground (canopy, soil) is
    the same on every date; sensor noise, haze, crop growth stages and global brightness
    change with ``date``. Pixels whose class is 255 are 0 in every band.
    """
    win = _check_window(spec, window)
    cls = np.asarray(classes)
    if cls.shape != win.shape:
        raise WindowError(f"classes of shape {cls.shape} do not match window {win} of shape {win.shape}")
    valid = cls != CLASS_NODATA
    if np.any(cls[valid] >= N_CLASSES):
        raise ConfigError(
            f"classes must be 0..{N_CLASSES - 1} or {CLASS_NODATA}, got {np.unique(cls[valid]).tolist()}"
        )
    idx = np.where(valid, cls, 0).astype(np.intp)

    # Where each pixel sits along its class's variation: ground condition is smooth and
    # changes a little between dates (season); field management is per parcel and date.
    pr, pc = _parcel_axes(spec, win)
    field = _uniform(_hash(_key(spec.seed, "field", date), pr[:, None], pc[None, :]))
    condition = _fbm(_key(spec.seed, "condition"), win, (64, 16))
    condition += np.float32(0.5) * _fbm(_key(spec.seed, "condition", date), win, (96, 24))
    condition *= np.float32(1.6)
    variant = _BY_CONDITION[idx] * condition
    variant += _BY_FIELD[idx] * field
    np.clip(variant, -1.0, 1.0, out=variant)

    # Brightness shared by all bands: fine texture, haze and illumination.
    brightness = np.float32(1.0) + _FINE_AMP[idx] * _noise(_key(spec.seed, "texture-fine"), win, 3)
    haze = _fbm(_key(spec.seed, "illumination", date), win, (512, 128))
    brightness *= np.float32(_gain(spec, date)) + np.float32(0.03) * haze
    patches = _MED_AMP[idx] * _fbm(_key(spec.seed, "texture-medium"), win, (24, 8))
    water = idx == WATER

    rows = np.arange(win.row_off, win.row_end, dtype=np.int64)[:, None]
    cols = np.arange(win.col_off, win.col_end, dtype=np.int64)[None, :]
    out = np.empty((spec.bands, *win.shape), dtype=np.uint16)
    for b in range(spec.bands):
        texture = patches
        if _WATER_MED_BY_BAND[b] != 1.0:
            texture = patches.copy()
            texture[water] *= _WATER_MED_BY_BAND[b]
        value = _MEANS[:, b][idx]
        value += variant * _VARIANTS[:, b][idx]
        value *= np.float32(1.0) + texture
        value *= brightness
        # Sensor and atmospheric noise: a floor plus a part proportional to the signal.
        noise = _gaussian(_hash(_key(spec.seed, "noise", date, b), rows, cols))
        noise *= np.float32(0.002) + np.float32(0.015) * value
        value += noise
        value *= np.float32(SCALE)
        np.rint(value, out=value)
        np.clip(value, 1, 65535, out=value)  # 0 is nodata: valid pixels never take it
        out[b] = value
        out[b][~valid] = BAND_NODATA
    return out


@dataclass(frozen=True)
class ChangeEvent:
    """One injected change: pixels of ``from_classes`` inside the shape become ``to_class``.

    ``shape`` is ``"rectangle"`` (the whole ``box``) or ``"blob"`` (an ellipse of ``radii``
    about ``centre`` whose outline wobbles, within ``box``). ``box`` may reach past the scene.
    """

    kind: str  # "clearing" or "regrowth"
    shape: str
    box: PixelWindow
    centre: tuple[float, float]  # (row, col)
    radii: tuple[float, float]  # (rows, cols)
    to_class: int
    from_classes: tuple[int, ...]


_BLOB_ROUGH: Final = 0.3


def _point_near_road(spec: SceneSpec, draw: _Draws, lo: float, hi: float) -> tuple[float, float]:
    """A point at ``lo..hi`` corridor widths from a random highway, inside the scene."""
    roads = _layout(spec).roads
    road = roads[draw.integer(0, len(roads))]
    ln = road.line
    t0, t1 = _clip_line(ln, spec.height, spec.width)
    t = draw.uniform(t0, t1)
    off = (1 if draw.random() < 0.5 else -1) * road.corridor * draw.uniform(lo, hi)
    nx, ny, _ = ln.normal
    cy = min(max(ln.py + t * ln.dy + off * ny, 0.0), spec.height - 1.0)
    cx = min(max(ln.px + t * ln.dx + off * nx, 0.0), spec.width - 1.0)
    return cy, cx


@lru_cache(maxsize=32)
def _events(spec: SceneSpec) -> tuple[tuple[ChangeEvent, ...], I64]:
    """The scene's change events and their boxes as an ``(n, 4)`` array (r0, r1, c0, c1)."""
    h, w = spec.shape
    draw = _Draws(_key(spec.seed, "change"))
    events = []
    # Clearings of 1-50 ha (100-5000 px at 10 m): half at the frontier just beyond a
    # highway corridor, where deforestation advances, half anywhere in the forest.
    for _ in range(max(6, round(h * w / 200**2))):
        if draw.random() < 0.5:
            cy, cx = _point_near_road(spec, draw, 0.8, 1.4)
        else:
            cy, cx = draw.uniform(0, h), draw.uniform(0, w)
        u = draw.random()
        to = BARE_SOIL if u < 0.55 else GRASSLAND if u < 0.9 else CROPLAND
        ry, rx = draw.uniform(6, 35), draw.uniform(6, 35)
        if draw.random() < 0.5:
            box = PixelWindow(round(cy - ry), round(cx - rx), max(1, round(2 * ry)), max(1, round(2 * rx)))
            events.append(ChangeEvent("clearing", "rectangle", box, (cy, cx), (ry, rx), to, (FOREST,)))
        else:
            box = _blob_box(cy, cx, ry, rx)
            events.append(ChangeEvent("clearing", "blob", box, (cy, cx), (ry, rx), to, (FOREST,)))
    # Regrowth: abandoned pasture and bare land inside the corridors turning to forest.
    for _ in range(max(3, round(h * w / 450**2))):
        cy, cx = _point_near_road(spec, draw, 0.1, 0.9)
        ry = draw.uniform(8, 25)
        rx = ry * draw.uniform(0.6, 1.6)
        box = _blob_box(cy, cx, ry, rx)
        events.append(
            ChangeEvent("regrowth", "blob", box, (cy, cx), (ry, rx), FOREST, (GRASSLAND, BARE_SOIL))
        )
    boxes = np.array(
        [(e.box.row_off, e.box.row_end, e.box.col_off, e.box.col_end) for e in events], dtype=np.int64
    )
    return tuple(events), boxes.reshape(-1, 4)


def _blob_box(cy: float, cx: float, ry: float, rx: float) -> PixelWindow:
    grow = 1.0 + _BLOB_ROUGH
    r0, c0 = math.floor(cy - grow * ry), math.floor(cx - grow * rx)
    return PixelWindow(r0, c0, math.ceil(cy + grow * ry) - r0 + 1, math.ceil(cx + grow * rx) - c0 + 1)


def change_events(spec: SceneSpec) -> tuple[ChangeEvent, ...]:
    """Every clearing and regrowth injected between date 1 and date 2, in the order applied."""
    return _events(spec)[0]


def make_change(spec: SceneSpec, before: npt.ArrayLike, window: PixelWindow | None = None) -> U8:
    """The second date's classes: ``before`` (classes on ``window``) with the events applied.

    Events apply in order, each to the pixels whose *before* class it affects, so a later
    clearing overlapping an earlier one decides the pixel's new class.
    """
    win = _check_window(spec, window)
    old = np.asarray(before, dtype=np.uint8)
    if old.shape != win.shape:
        raise WindowError(f"before of shape {old.shape} does not match window {win} of shape {win.shape}")
    after = old.copy()
    events, b = _events(spec)
    hit = (
        (b[:, 0] < win.row_end) & (b[:, 1] > win.row_off) & (b[:, 2] < win.col_end) & (b[:, 3] > win.col_off)
    )
    blob_key = _key(spec.seed, "blob")
    for i in np.flatnonzero(hit).tolist():
        event = events[i]
        part = event.box.intersection(win)
        if part is None:
            continue
        where = part.relative_to(win).slices()
        mask = np.isin(old[where], event.from_classes)
        if event.shape == "blob":
            mask &= _ellipse(blob_key, part, *event.centre, *event.radii, _BLOB_ROUGH)
        after[where][mask] = event.to_class
    return after


def change_truth(spec: SceneSpec, window: PixelWindow | None = None) -> tuple[U8, U8]:
    """(before, after) class maps of ``window``: date 1 and date 2 truth."""
    before = class_map(spec, window)
    return before, make_change(spec, before, window)


_TILE: Final = 512


# Strips are generated in chunks this wide (a multiple of _TILE): memory then depends on
# block x chunk, not on the scene's width, and smaller arrays stay in malloc's free lists
# instead of costing fresh page faults on every allocation.
_CHUNK_COLS: Final = 2048


def write_scene(
    spec: SceneSpec,
    path: str | os.PathLike[str],
    truth_path: str | os.PathLike[str] | None = None,
    date: int = 1,
    progress: Progress | None = None,
) -> Path:
    """Write the scene as a tiled, deflate-compressed uint16 GeoTIFF; returns its path.

    ``date=2`` writes the scene after ``change_events``. With ``truth_path`` the matching
    class map is written too (a class-map COG: uint8, nodata 255, colours and names). Work
    goes strip by strip (``spec.block`` rows, rounded up to whole tiles), so memory does not
    grow with the scene. Outputs appear only when complete: they are written to temporary
    names and renamed at the end, and removed if anything fails.
    """
    if date not in (1, 2):
        raise ConfigError(f"date must be 1 (before change) or 2 (after change), got {date}")
    out = check_writable(path)
    truth = check_writable(truth_path) if truth_path is not None else None
    if truth is not None and truth.resolve() == out.resolve():
        raise OutputError("is both the scene and its truth; give the truth another name", out)
    grid = scene_grid(spec)
    tags = {"GEOSEG_SYNTHETIC_SEED": str(spec.seed), "GEOSEG_DATE": str(date)}
    profile = {
        "driver": "GTiff",
        "width": spec.width,
        "height": spec.height,
        "count": spec.bands,
        "dtype": "uint16",
        "crs": grid.crs,
        "transform": grid.transform,
        "nodata": BAND_NODATA,
        "tiled": True,
        "blockxsize": _TILE,
        "blockysize": _TILE,
        "compress": "DEFLATE",
        "predictor": 2,  # horizontal differencing: smooth reflectances compress much better
        "interleave": "pixel",  # models read all bands of a window together
        "photometric": "MINISBLACK",  # else GDAL may call a 4th band alpha
        "BIGTIFF": "IF_SAFER",
        "NUM_THREADS": "ALL_CPUS",  # compress tiles in parallel
    }
    step = -(-spec.block // _TILE) * _TILE
    tmp = partial_path(out)
    truth_writer = None
    truth_done = False
    try:
        if truth is not None:
            truth_writer = class_map_writer(truth, grid, CLASSES, tags)
        with rasterio.Env(**GDAL_ENV), rasterio.open(tmp, "w", **profile) as dst:
            for i, name in enumerate(spec.band_names):
                dst.set_band_description(i + 1, name)
                s2_band, wavelength = _S2_BANDS[i]
                dst.update_tags(i + 1, S2_BAND=s2_band, WAVELENGTH_NM=str(wavelength))
            dst.update_tags(**tags)
            for row in range(0, spec.height, step):
                strip = min(step, spec.height - row)
                for col in range(0, spec.width, _CHUNK_COLS):
                    win = PixelWindow(row, col, strip, min(_CHUNK_COLS, spec.width - col))
                    classes = class_map(spec, win)
                    if date == 2:
                        classes = make_change(spec, classes, win)
                    dst.write(scene_bands(spec, classes, win, date), window=win.to_rasterio())
                    if truth_writer is not None:
                        truth_writer.write(win, classes)
                report(progress, row + strip, spec.height)
        if truth_writer is not None:
            truth_writer.finish()
            truth_done = True
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        if truth_writer is not None:
            truth_writer.abort()
        if truth_done and truth is not None:
            remove_raster(truth)  # no half-made pair: the truth goes with the scene
        raise
    return out
