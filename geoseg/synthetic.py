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
array is split into SIMD lanes or blocks.
"""

from __future__ import annotations

import math
import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
import rasterio
from affine import Affine
from rasterio.crs import CRS

from geoseg.errors import ConfigError, OutputError, WindowError
from geoseg.grid import Grid, Window
from geoseg.io import CLASS_NODATA, GDAL_ENV, ClassInfo, check_writable, class_map_writer, partial_path
from geoseg.progress import Progress, report

__all__ = [
    "BAND_NAMES",
    "BAND_NODATA",
    "BARE_SOIL",
    "BUILT_UP",
    "CLASSES",
    "CLASS_NODATA",
    "CROPLAND",
    "FOREST",
    "GRASSLAND",
    "SCALE",
    "WATER",
    "ChangeEvent",
    "ClassInfo",
    "SceneSpec",
    "bands",
    "change_events",
    "change_truth",
    "class_map",
    "make_change",
    "scene_grid",
    "write_scene",
]

U8 = npt.NDArray[np.uint8]
U16 = npt.NDArray[np.uint16]
F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
U64 = npt.NDArray[np.uint64]
Bool = npt.NDArray[np.bool_]

# --------------------------------------------------------------------------------------
# Classes and bands

FOREST: Final = 0
WATER: Final = 1
CROPLAND: Final = 2
GRASSLAND: Final = 3
BARE_SOIL: Final = 4
BUILT_UP: Final = 5

# ClassInfo is io's, so the truth written here and the maps the pipeline writes share one
# type. Colours are ESA WorldCover's, which users of land-cover maps recognise.
CLASSES: Final[list[ClassInfo]] = [
    ClassInfo(FOREST, "forest", (0, 100, 0)),
    ClassInfo(WATER, "water", (0, 100, 200)),
    ClassInfo(CROPLAND, "cropland", (240, 150, 255)),
    ClassInfo(GRASSLAND, "grassland", (255, 255, 76)),
    ClassInfo(BARE_SOIL, "bare soil", (180, 180, 180)),
    ClassInfo(BUILT_UP, "built-up", (250, 0, 0)),
]
N_CLASSES: Final = len(CLASSES)

BAND_NAMES: Final = ("blue", "green", "red", "nir", "swir1", "swir2")
# Sentinel-2 band ids and centre wavelengths, written as band metadata for realism.
_S2_BANDS: Final = (("B02", 490), ("B03", 560), ("B04", 665), ("B08", 842), ("B11", 1610), ("B12", 2190))
BAND_NODATA: Final = 0
SCALE: Final = 10_000  # uint16 value = reflectance * SCALE, as in Sentinel-2 L2A

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


@dataclass(frozen=True)
class SceneSpec:
    """What to generate: size, seed, band count and georeferencing.

    ``block`` is the number of rows generated and written at a time; it is rounded up to a
    whole number of 512-row tiles so each compressed tile is written once.
    """

    height: int
    width: int
    seed: int = 0
    bands: int = 4
    pixel_size: float = 10.0
    crs: str = "EPSG:32720"  # WGS 84 / UTM zone 20S, the central Amazon
    origin: tuple[float, float] = (600_000.0, 9_650_000.0)  # top-left (x, y), ~3.2 S 62.1 W
    nodata_border: bool = True
    block: int = 1024

    def __post_init__(self) -> None:
        if self.height <= 0 or self.width <= 0:
            raise ConfigError(f"scene size {self.height} x {self.width} must be positive")
        if self.bands not in (4, 6):
            raise ConfigError(
                f"bands must be 4 (blue, green, red, nir) or 6 (adds swir1, swir2), got {self.bands}"
            )
        if not self.pixel_size > 0:
            raise ConfigError(f"pixel_size must be positive, got {self.pixel_size}")
        if self.block <= 0:
            raise ConfigError(f"block must be a positive number of rows, got {self.block}")

    @property
    def shape(self) -> tuple[int, int]:
        return (self.height, self.width)

    @property
    def band_names(self) -> tuple[str, ...]:
        return BAND_NAMES[: self.bands]

    @property
    def window(self) -> Window:
        return Window(0, 0, self.height, self.width)


def scene_grid(spec: SceneSpec) -> Grid:
    """The scene's georeferencing: north-up, ``pixel_size`` metres, top-left at ``origin``."""
    x0, y0 = spec.origin
    transform = Affine(spec.pixel_size, 0.0, x0, 0.0, -spec.pixel_size, y0)
    return Grid(spec.shape, transform, CRS.from_user_input(spec.crs))


def _check_window(spec: SceneSpec, window: Window | None) -> Window:
    if window is None:
        return spec.window
    if window.height == 0 or window.width == 0 or not spec.window.contains(window):
        raise WindowError(f"window {window} is empty or not inside the {spec.height} x {spec.width} scene")
    return window


# --------------------------------------------------------------------------------------
# Deterministic randomness: splitmix64 on Python ints (scene features) and uint64 arrays
# (pixels and lattices).

_MASK: Final = (1 << 64) - 1


def _mix(x: int) -> int:
    """splitmix64's finaliser: a bijection on 64-bit ints that scrambles every bit."""
    x &= _MASK
    x ^= x >> 30
    x = (x * 0xBF58476D1CE4E5B9) & _MASK
    x ^= x >> 27
    x = (x * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def _key(seed: int, *parts: int | str) -> int:
    """A 64-bit key for one purpose (``_key(seed, "forest", 2)``); names hash stably via crc32."""
    k = _mix(seed + 0x9E3779B97F4A7C15)
    for p in parts:
        v = zlib.crc32(p.encode()) if isinstance(p, str) else p
        k = _mix(k ^ _mix(v + 0x632BE59BD9B4E019))
    return k


class _Draws:
    """Scalar random numbers: the n-th draw of a key, independent of numpy's generators."""

    def __init__(self, key: int) -> None:
        self._key = key
        self._n = 0

    def random(self) -> float:
        self._n += 1
        return (_mix(self._key ^ _mix(self._n)) >> 11) * 2.0**-53

    def uniform(self, lo: float, hi: float) -> float:
        return lo + (hi - lo) * self.random()

    def integer(self, lo: int, hi: int) -> int:
        """An int in ``[lo, hi)``."""
        return lo + min(int(self.random() * (hi - lo)), hi - lo - 1)


_C1: Final = np.uint64(0xBF58476D1CE4E5B9)
_C2: Final = np.uint64(0x94D049BB133111EB)
_KR: Final = np.uint64(0x9E3779B97F4A7C15)
_KC: Final = np.uint64(0xD6E8FEB86659FD93)
_S27: Final = np.uint64(27)
_S30: Final = np.uint64(30)
_S31: Final = np.uint64(31)
_S40: Final = np.uint64(40)


def _mix_array(x: U64) -> U64:
    """``_mix`` in place on a uint64 array (numpy wraps uint64 arithmetic silently)."""
    x ^= x >> _S30
    x *= _C1
    x ^= x >> _S27
    x *= _C2
    x ^= x >> _S31
    return x


def _hash(key: int, rows: npt.ArrayLike, cols: npt.ArrayLike) -> U64:
    """64 random bits per (row, col) pair, broadcasting ``rows`` against ``cols``.

    Rows are mixed first on their own (cheap when ``rows`` is a column vector), then each
    row hash is mixed with the column: two full rounds, so neighbours are uncorrelated.
    """
    r = np.asarray(rows, dtype=np.int64).astype(np.uint64)  # negative coordinates wrap
    c = np.asarray(cols, dtype=np.int64).astype(np.uint64)
    hr = _mix_array((r * _KR) ^ np.uint64(key))
    return _mix_array(hr ^ (c * _KC))


def _uniform(h: U64) -> F32:
    """Uniform in [-1, 1) from the top 24 bits (exact in float32)."""
    return (h >> _S40).astype(np.float32) * np.float32(2.0**-23) - np.float32(1.0)


def _gaussian(h: U64) -> F32:
    """About N(0, 1): the sum of the four 16-bit parts of the hash (Irwin-Hall, n=4)."""
    parts = h.view(np.uint16).reshape(*h.shape, 4)
    s = parts[..., 0].astype(np.float32)
    s += parts[..., 1]
    s += parts[..., 2]
    s += parts[..., 3]
    s -= np.float32(4 * 65535 / 2)
    s *= np.float32(1.0 / 37837.2)  # 65536 / sqrt(3): the std of four 16-bit uniforms
    return s


def _fade(t: F32) -> F32:
    """Smoothstep, so interpolated noise has no creases at lattice lines."""
    return t * t * (np.float32(3.0) - np.float32(2.0) * t)


def _axis(key: int, start: int, n: int, cell: int) -> tuple[I64, F32]:
    """Lattice index and fade weight of ``n`` pixels from ``start`` along one axis.

    The lattice is shifted by a per-key offset so octaves and fields do not share lines.
    """
    offset = _mix(key) % cell
    p = np.arange(start + offset, start + offset + n, dtype=np.int64)
    i = p // cell
    t = (p - i * cell).astype(np.float32) / np.float32(cell)
    return i, _fade(t)


def _noise(key: int, win: Window, cell: int) -> F32:
    """Value noise in [-1, 1] with features ``cell`` pixels apart, on a window.

    Random values on the lattice corners are interpolated first along columns, then along
    rows; each pixel's value depends only on its coordinates, never on the window.
    """
    ir, tr = _axis(key, win.row_off, win.height, cell)
    ic, tc = _axis(_mix(key), win.col_off, win.width, cell)
    lr = np.arange(ir[0], ir[-1] + 2, dtype=np.int64)
    lc = np.arange(ic[0], ic[-1] + 2, dtype=np.int64)
    lattice = _uniform(_hash(key, lr[:, None], lc[None, :]))
    jc = ic - ic[0]
    left = lattice[:, jc]
    across = left + (lattice[:, jc + 1] - left) * tc  # (lattice rows, width)
    jr = ir - ir[0]
    top = across[jr]
    out = across[jr + 1]
    out -= top
    out *= tr[:, None]
    out += top
    return out


def _fbm(key: int, win: Window, cells: Sequence[int], gain: float = 0.5) -> F32:
    """Octaves of value noise from coarse to fine, amplitudes falling by ``gain``."""
    total = np.zeros(win.shape, dtype=np.float32)
    amp, norm = 1.0, 0.0
    for octave, cell in enumerate(cells):
        n = _noise(_key(key, octave), win, cell)
        n *= np.float32(amp)
        total += n
        norm += amp
        amp *= gain
    total *= np.float32(1.0 / norm)
    return total


def _noise_at(key: int, y: F64, x: F64, cell: float) -> F64:
    """Value noise at scattered points (float pixel coordinates), for parcel centres."""
    fy, fx = y / cell, x / cell
    iy, ix = np.floor(fy), np.floor(fx)
    ty = _fade((fy - iy).astype(np.float32))
    tx = _fade((fx - ix).astype(np.float32))
    iy64, ix64 = iy.astype(np.int64), ix.astype(np.int64)
    c00 = _uniform(_hash(key, iy64, ix64))
    c01 = _uniform(_hash(key, iy64, ix64 + 1))
    c10 = _uniform(_hash(key, iy64 + 1, ix64))
    c11 = _uniform(_hash(key, iy64 + 1, ix64 + 1))
    top = c00 + (c01 - c00) * tx
    bottom = c10 + (c11 - c10) * tx
    return (top + (bottom - top) * ty).astype(np.float64)


def _noise1d(key: int, u: F64, cell: float) -> tuple[F64, F64]:
    """1-D value noise along ``u`` and its derivative (for river meanders and edges)."""
    f = u / cell
    i = np.floor(f)
    t = f - i
    i64 = i.astype(np.int64)
    a = _uniform(_hash(key, i64, 0)).astype(np.float64)
    b = _uniform(_hash(key, i64 + 1, 0)).astype(np.float64)
    value = a + (b - a) * (t * t * (3.0 - 2.0 * t))
    slope = (b - a) * (6.0 * t * (1.0 - t)) / cell
    return value, slope


# --------------------------------------------------------------------------------------
# Scene features, drawn once per spec from the seed


@dataclass(frozen=True)
class _Line:
    """A straight line through (px, py) along unit (dx, dy); pixel centres are (c+.5, r+.5)."""

    px: float
    py: float
    dx: float
    dy: float

    @property
    def normal(self) -> tuple[float, float, float]:
        """(nx, ny, d) with nx*x + ny*y = d on the line."""
        nx, ny = -self.dy, self.dx
        return nx, ny, nx * self.px + ny * self.py


@dataclass(frozen=True)
class _Road:
    line: _Line
    half: float  # half width, pixels
    corridor: float  # half width of the cleared corridor along it, pixels


@dataclass(frozen=True)
class _River:
    line: _Line
    half: float
    amps: tuple[float, ...]
    cells: tuple[float, ...]

    @property
    def reach(self) -> float:
        """No water lies farther than this from the axis line (bounds of the noise terms)."""
        steepest = sum(3.0 * a / c for a, c in zip(self.amps, self.cells, strict=True))
        return sum(self.amps) + 1.3 * self.half * math.sqrt(1.0 + steepest**2) + 2.0


@dataclass(frozen=True)
class _Town:
    cy: float
    cx: float
    radius: float


@dataclass(frozen=True)
class _Edge:
    """Nodata within ``depth + slope * (t - length / 2) + amp * noise(t)`` of one scene edge."""

    side: int  # 0 top, 1 right, 2 bottom, 3 left
    length: int  # pixels along the edge
    depth: float
    slope: float
    amp: float
    cell: float

    @property
    def max_depth(self) -> int:
        return math.ceil(self.depth + abs(self.slope) * self.length / 2 + self.amp) + 1


@dataclass(frozen=True)
class _Layout:
    roads: tuple[_Road, ...]
    side_roads: npt.NDArray[np.int64]  # (n, 4): row0, row1, col0, col1 rectangles
    rivers: tuple[_River, ...]
    towns: tuple[_Town, ...]
    edges: tuple[_Edge, ...]
    parcel_rows: int  # mean parcel height, pixels
    parcel_cols: int


def _clip_line(line: _Line, height: int, width: int) -> tuple[float, float]:
    """The range of t for which (px, py) + t (dx, dy) lies inside the scene (Liang-Barsky)."""
    t0, t1 = -math.inf, math.inf
    for p, d, hi in ((line.px, line.dx, width), (line.py, line.dy, height)):
        if abs(d) < 1e-12:
            continue
        a, b = (0 - p) / d, (hi - p) / d
        t0, t1 = max(t0, min(a, b)), min(t1, max(a, b))
    return t0, t1


def _boundary(key: int, k: I64, size: int) -> I64:
    """Start of parcel ``k`` along one axis: a regular grid jittered by up to size/2."""
    jitter = (_uniform(_hash(key, k, 7)) + np.float32(1.0)) * np.float32(size / 4)
    return k * size + jitter.astype(np.int64)


def _parcel_index(key: int, coords: I64, size: int) -> I64:
    """Which parcel each pixel coordinate falls in (boundaries from ``_boundary``)."""
    k = coords // size
    return np.where(coords >= _boundary(key, k, size), k, k - 1)


@lru_cache(maxsize=32)
def _layout(spec: SceneSpec) -> _Layout:
    h, w = spec.height, spec.width
    size = min(h, w)
    draw = _Draws(_key(spec.seed, "layout"))

    # Highways: straight, through the middle half of the scene, more on bigger scenes.
    roads = []
    for _ in range(1 + max(h, w) // 3000):
        angle = draw.uniform(0.0, math.pi)
        line = _Line(
            draw.uniform(0.25, 0.75) * w, draw.uniform(0.25, 0.75) * h, math.cos(angle), math.sin(angle)
        )
        corridor = draw.uniform(0.8, 1.25) * min(max(0.12 * size, 45.0), 260.0)
        roads.append(_Road(line, draw.uniform(1.4, 2.0), corridor))

    parcel_rows = draw.integer(44, 80)
    parcel_cols = draw.integer(32, 60)

    # Side roads: the "fishbone" of the Amazon frontier, perpendicular feeder roads every
    # few parcels along each highway, on the parcel boundaries, alternately either side.
    sides = []
    key_cols, key_rows = _key(spec.seed, "parcel-cols"), _key(spec.seed, "parcel-rows")
    for n, road in enumerate(roads):
        ln = road.line
        t0, t1 = _clip_line(ln, h, w)
        vertical = abs(ln.dx) >= abs(ln.dy)  # mostly east-west highway -> north-south side roads
        size_, key_ = (parcel_cols, key_cols) if vertical else (parcel_rows, key_rows)
        every = draw.integer(2, 5)  # parcels between side roads
        ends = (
            (ln.px + t0 * ln.dx, ln.px + t1 * ln.dx) if vertical else (ln.py + t0 * ln.dy, ln.py + t1 * ln.dy)
        )
        lo, hi = sorted(ends)
        first, last = math.ceil(lo / (size_ * every)), math.floor(hi / (size_ * every))
        for i, k in enumerate(range(first, last + 1)):
            if draw.random() < 0.15:  # not every lot has its feeder road yet
                continue
            length = road.corridor * draw.uniform(0.7, 1.15)
            sign = 1 if (i + n) % 2 == 0 else -1
            pos = int(_boundary(key_, np.array([k * every], dtype=np.int64), size_)[0])
            if vertical:
                y = ln.py + (pos - ln.px) * ln.dy / ln.dx
                a, b = sorted((y, y + sign * length))
                sides.append((math.floor(a), math.ceil(b), pos - 1, pos + 1))
            else:
                x = ln.px + (pos - ln.py) * ln.dx / ln.dy
                a, b = sorted((x, x + sign * length))
                sides.append((pos - 1, pos + 1, math.floor(a), math.ceil(b)))
    side_roads = np.array(sides, dtype=np.int64).reshape(-1, 4)

    # Rivers: one main river through the middle, tributaries on big scenes. Meanders are
    # a few octaves of 1-D noise whose wavelengths scale with the river's width.
    rivers = []
    for i in range(1 + (h * w) // (8192 * 8192)):
        half = min(max(0.003 * size, 3.0), 20.0) * draw.uniform(0.8, 1.3) * (1.0 if i == 0 else 0.6)
        angle = draw.uniform(0.0, math.pi)
        line = _Line(draw.uniform(0.3, 0.7) * w, draw.uniform(0.3, 0.7) * h, math.cos(angle), math.sin(angle))
        amps = (10.0 * half, 4.0 * half, 1.2 * half)
        cells = (30.0 * half, 12.0 * half, 5.0 * half)
        rivers.append(_River(line, half, amps, cells))

    # Towns sit on a highway, away from the scene edges.
    towns = []
    for _ in range(max(1, round(h * w / 3000**2))):
        highway = roads[draw.integer(0, len(roads))].line
        t0, t1 = _clip_line(highway, h, w)
        t = draw.uniform(t0 + 0.25 * (t1 - t0), t1 - 0.25 * (t1 - t0))
        radius = min(max(0.08 * size, 30.0), 150.0) * draw.uniform(0.8, 1.25)
        towns.append(_Town(highway.py + t * highway.dy, highway.px + t * highway.dx, radius))

    # Nodata: a slanted, slightly wavy band along one edge, sometimes two, like the edge
    # of a Sentinel-2 swath or a granule's no-data corner.
    edges = []
    if spec.nodata_border:
        first = draw.integer(0, 4)
        sides_used = [first] + ([(first + 1) % 4] if draw.random() < 0.5 else [])
        for side in sides_used:
            length = w if side in (0, 2) else h
            across = h if side in (0, 2) else w
            depth = min(max(0.04 * across, 6.0), 400.0) * draw.uniform(0.7, 1.3)
            slope = draw.uniform(-0.6, 0.6) * depth / length
            edges.append(_Edge(side, length, depth, slope, 0.3 * depth, max(length / 6.0, 16.0)))

    return _Layout(
        tuple(roads), side_roads, tuple(rivers), tuple(towns), tuple(edges), parcel_rows, parcel_cols
    )


# --------------------------------------------------------------------------------------
# The class map

# Thresholds on the normalised noise fields, set from their measured distributions so that
# natural land is ~75 % forest, ~3 % bare patches and ~0.5 % ponds.
_T_FOREST: Final = -0.19
_T_BARE: Final = 0.30
_T_POND: Final = -0.63


def _near_line(win: Window, nx: float, ny: float, d: float, half: float) -> tuple[I64, I64]:
    """(rows, cols) of pixels in ``win`` whose centres may lie within ``half`` of a line.

    The line is ``nx * x + ny * y = d`` with pixel centres at ``(col + .5, row + .5)``. This
    is a superset with a pixel of margin; callers test each candidate exactly, so which
    pixels are candidates never changes a result. Walking the axis the line crosses more
    steeply keeps the count near ``2 * half`` per row or column, not the window's area.
    """
    by_row = abs(nx) >= abs(ny)
    if by_row:
        along = np.arange(win.row_off, win.row_end, dtype=np.int64)
        centre = (d - ny * (along + 0.5)) / nx - 0.5
        span, lo, n = half / abs(nx) + 1.0, win.col_off, win.width
    else:
        along = np.arange(win.col_off, win.col_end, dtype=np.int64)
        centre = (d - nx * (along + 0.5)) / ny - 0.5
        span, lo, n = half / abs(ny) + 1.0, win.row_off, win.height
    across = np.floor(centre - span).astype(np.int64)[:, None] + np.arange(math.ceil(2 * span) + 2)
    keep = (across >= lo) & (across < lo + n)
    a = np.broadcast_to(along[:, None], across.shape)[keep]
    b = across[keep]
    return (a, b) if by_row else (b, a)


def _natural(spec: SceneSpec, win: Window) -> U8:
    """Forest with natural grassland openings, bare patches and ponds."""
    forest = _fbm(_key(spec.seed, "forest"), win, (256, 128, 64, 32, 16))
    out = np.where(forest > _T_FOREST, np.uint8(FOREST), np.uint8(GRASSLAND))
    patches = _fbm(_key(spec.seed, "patches"), win, (96, 48, 24))
    out[(patches > _T_BARE) & (out == GRASSLAND)] = BARE_SOIL
    out[patches < _T_POND] = WATER
    return out


def _parcel_axes(spec: SceneSpec, win: Window) -> tuple[I64, I64]:
    """Parcel row index of each window row and parcel column index of each window column."""
    layout = _layout(spec)
    rows = np.arange(win.row_off, win.row_end, dtype=np.int64)
    cols = np.arange(win.col_off, win.col_end, dtype=np.int64)
    pr = _parcel_index(_key(spec.seed, "parcel-rows"), rows, layout.parcel_rows)
    pc = _parcel_index(_key(spec.seed, "parcel-cols"), cols, layout.parcel_cols)
    return pr, pc


def _parcels(spec: SceneSpec, win: Window) -> U8:
    """Cleared parcels along the highways (255 where uncleared).

    Parcels are whole rectangles of a jittered grid, as settlement lots are; a parcel is
    cleared when its centre lies inside its highway's corridor, whose width wobbles with
    smooth noise so the frontier is ragged. Decisions are per parcel, from its index.
    """
    layout = _layout(spec)
    pr, pc = _parcel_axes(spec, win)
    ur = np.arange(pr[0], pr[-1] + 1, dtype=np.int64)
    uc = np.arange(pc[0], pc[-1] + 1, dtype=np.int64)
    key_r, key_c = _key(spec.seed, "parcel-rows"), _key(spec.seed, "parcel-cols")
    yc = (_boundary(key_r, ur, layout.parcel_rows) + _boundary(key_r, ur + 1, layout.parcel_rows)) / 2.0
    xc = (_boundary(key_c, uc, layout.parcel_cols) + _boundary(key_c, uc + 1, layout.parcel_cols)) / 2.0
    y, x = np.meshgrid(yc, xc, indexing="ij")
    wobble = 0.45 * _noise_at(_key(spec.seed, "corridor"), y, x, 300.0)
    wobble += 0.2 * _noise_at(_key(spec.seed, "corridor", 1), y, x, 90.0)
    wobble += 0.12 * _uniform(_hash(_key(spec.seed, "parcel-jitter"), ur[:, None], uc[None, :]))
    cleared = np.zeros(y.shape, dtype=bool)
    for road in layout.roads:
        nx, ny, d = road.line.normal
        cleared |= np.abs(nx * x + ny * y - d) < road.corridor * (1.0 + wobble)
    # Mostly pasture and crops, some freshly ploughed or burnt, a few forest reserves.
    u = _uniform(_hash(_key(spec.seed, "parcel-class"), ur[:, None], uc[None, :]))
    kind = np.select([u < -0.2, u < 0.56, u < 0.8], [CROPLAND, GRASSLAND, BARE_SOIL], FOREST).astype(np.uint8)
    kind[~cleared] = CLASS_NODATA
    return kind[(pr - pr[0])[:, None], (pc - pc[0])[None, :]]


def _paint_rivers(spec: SceneSpec, win: Window, out: U8) -> None:
    for i, river in enumerate(_layout(spec).rivers):
        ln = river.line
        nx, ny, d = ln.normal
        rows, cols = _near_line(win, nx, ny, d, river.reach)
        if rows.size == 0:
            continue
        x, y = cols + 0.5 - ln.px, rows + 0.5 - ln.py
        u, v = ln.dx * x + ln.dy * y, nx * x + ny * y
        offset = np.zeros_like(u)
        slope = np.zeros_like(u)
        for octave, (amp, cell) in enumerate(zip(river.amps, river.cells, strict=True)):
            value, gradient = _noise1d(_key(spec.seed, "river", i, octave), u, cell)
            offset += amp * value
            slope += amp * gradient
        width, _ = _noise1d(_key(spec.seed, "river-width", i), u, 20.0 * river.half)
        # Distance across the meandering channel, not across the straight axis: divide by
        # the channel's slope so bends keep their width.
        water = np.abs(v - offset) <= river.half * (1.0 + 0.3 * width) * np.sqrt(1.0 + slope * slope)
        out[rows[water] - win.row_off, cols[water] - win.col_off] = WATER


def _box(cy: float, cx: float, ry: float, rx: float, win: Window) -> Window | None:
    """The window's part of the box ``centre +- radii`` (None when they do not meet)."""
    r0, c0 = math.floor(cy - ry), math.floor(cx - rx)
    return Window(r0, c0, math.ceil(cy + ry) - r0 + 1, math.ceil(cx + rx) - c0 + 1).intersection(win)


def _ellipse(key: int, box: Window, cy: float, cx: float, ry: float, rx: float, rough: float) -> Bool:
    """A blob: an ellipse whose radius wobbles by ``rough`` with smooth noise."""
    cell = max(4, round(min(ry, rx) / 2))
    wobble = np.float32(1.0) + np.float32(rough) * _noise(key, box, cell)
    dy = (np.arange(box.row_off, box.row_end) + 0.5 - cy) / ry
    dx = (np.arange(box.col_off, box.col_end) + 0.5 - cx) / rx
    return (dy * dy)[:, None] + (dx * dx)[None, :] < wobble * wobble


def _paint_towns(spec: SceneSpec, win: Window, out: U8) -> None:
    for i, town in enumerate(_layout(spec).towns):
        reach = 1.4 * town.radius
        box = _box(town.cy, town.cx, reach, reach, win)
        if box is None:
            continue
        inside = _ellipse(_key(spec.seed, "town", i), box, town.cy, town.cx, town.radius, town.radius, 0.35)
        parks = _noise(_key(spec.seed, "parks", i), box, 8) > 0.7
        sub = out[box.relative_to(win).slices()]
        sub[inside] = BUILT_UP
        sub[inside & parks] = GRASSLAND


def _paint_roads(spec: SceneSpec, win: Window, out: U8) -> None:
    layout = _layout(spec)
    for road in layout.roads:
        nx, ny, d = road.line.normal
        rows, cols = _near_line(win, nx, ny, d, road.half)
        on = np.abs(nx * (cols + 0.5) + ny * (rows + 0.5) - d) <= road.half
        out[rows[on] - win.row_off, cols[on] - win.col_off] = BUILT_UP
    s = layout.side_roads
    hit = (
        (s[:, 0] < win.row_end) & (s[:, 1] > win.row_off) & (s[:, 2] < win.col_end) & (s[:, 3] > win.col_off)
    )
    for r0, r1, c0, c1 in s[hit].tolist():
        part = Window(r0, c0, r1 - r0, c1 - c0).intersection(win)
        if part is not None:
            out[part.relative_to(win).slices()] = BUILT_UP


def _paint_border(spec: SceneSpec, win: Window, out: U8) -> None:
    h, w = spec.shape
    for edge in _layout(spec).edges:
        horizontal = edge.side in (0, 2)  # the edge runs along the columns
        near = edge.max_depth
        # Only the rows (or columns) within reach of the edge are tested.
        if edge.side == 0:
            part = Window(0, 0, near, w).intersection(win)
        elif edge.side == 2:
            part = Window(h - near, 0, near, w).intersection(win)
        elif edge.side == 1:
            part = Window(0, w - near, h, near).intersection(win)
        else:
            part = Window(0, 0, h, near).intersection(win)
        if part is None:
            continue
        t = np.arange(part.col_off, part.col_end) if horizontal else np.arange(part.row_off, part.row_end)
        t_mid = t.astype(np.float64) + 0.5
        wave, _ = _noise1d(_key(spec.seed, "edge", edge.side), t_mid, edge.cell)
        depth = np.maximum(edge.depth + edge.slope * (t_mid - edge.length / 2) + edge.amp * wave, 2.0)
        rows = np.arange(part.row_off, part.row_end) + 0.5
        cols = np.arange(part.col_off, part.col_end) + 0.5
        if edge.side == 0:
            mask = rows[:, None] < depth[None, :]
        elif edge.side == 2:
            mask = (h - rows)[:, None] < depth[None, :]
        elif edge.side == 1:
            mask = (w - cols)[None, :] < depth[:, None]
        else:
            mask = cols[None, :] < depth[:, None]
        out[part.relative_to(win).slices()][mask] = CLASS_NODATA


def class_map(spec: SceneSpec, window: Window | None = None) -> U8:
    """The true classes (uint8, nodata 255) of the scene or of ``window`` of it.

    Any window gives exactly the same values as the same slice of the whole scene.
    """
    win = _check_window(spec, window)
    out = _natural(spec, win)
    cleared = _parcels(spec, win)
    np.copyto(out, cleared, where=cleared != CLASS_NODATA)
    _paint_rivers(spec, win, out)
    _paint_towns(spec, win, out)
    _paint_roads(spec, win, out)
    _paint_border(spec, win, out)
    return out


# --------------------------------------------------------------------------------------
# Reflectances


def _gain(spec: SceneSpec, date: int) -> float:
    """Global brightness of a date: 1 for date 1, a few percent off for the others."""
    if date == 1:
        return 1.0
    draw = _Draws(_key(spec.seed, "gain", date))
    return 1.0 + (1 if draw.random() < 0.5 else -1) * draw.uniform(0.02, 0.05)


def bands(spec: SceneSpec, classes: npt.ArrayLike, window: Window | None = None, date: int = 1) -> U16:
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


# --------------------------------------------------------------------------------------
# Change between dates


@dataclass(frozen=True)
class ChangeEvent:
    """One injected change: pixels of ``from_classes`` inside the shape become ``to_class``.

    ``shape`` is ``"rectangle"`` (the whole ``box``) or ``"blob"`` (an ellipse of ``radii``
    about ``centre`` whose outline wobbles, within ``box``). ``box`` may reach past the scene.
    """

    kind: str  # "clearing" or "regrowth"
    shape: str
    box: Window
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
            box = Window(round(cy - ry), round(cx - rx), max(1, round(2 * ry)), max(1, round(2 * rx)))
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


def _blob_box(cy: float, cx: float, ry: float, rx: float) -> Window:
    grow = 1.0 + _BLOB_ROUGH
    r0, c0 = math.floor(cy - grow * ry), math.floor(cx - grow * rx)
    return Window(r0, c0, math.ceil(cy + grow * ry) - r0 + 1, math.ceil(cx + grow * rx) - c0 + 1)


def change_events(spec: SceneSpec) -> tuple[ChangeEvent, ...]:
    """Every clearing and regrowth injected between date 1 and date 2, in the order applied."""
    return _events(spec)[0]


def make_change(spec: SceneSpec, before: npt.ArrayLike, window: Window | None = None) -> U8:
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


def change_truth(spec: SceneSpec, window: Window | None = None) -> tuple[U8, U8]:
    """(before, after) class maps of ``window``: date 1 and date 2 truth."""
    before = class_map(spec, window)
    return before, make_change(spec, before, window)


# --------------------------------------------------------------------------------------
# Writing

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
                    win = Window(row, col, strip, min(_CHUNK_COLS, spec.width - col))
                    classes = class_map(spec, win)
                    if date == 2:
                        classes = make_change(spec, classes, win)
                    dst.write(bands(spec, classes, win, date), window=win.to_rasterio())
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
            truth.unlink(missing_ok=True)  # no half-made pair: the truth goes with the scene
        raise
    return out
