"""The synthetic region's layout and land cover: parcels, rivers, towns, roads."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

import numpy as np
import numpy.typing as npt

from geoseg.classes import CLASS_NODATA
from geoseg.data._noise import I64, U8, Bool, _Draws, _fbm, _hash, _key, _noise, _noise1d, _noise_at, _uniform
from geoseg.data._scene import (
    BARE_SOIL,
    BUILT_UP,
    CROPLAND,
    FOREST,
    GRASSLAND,
    WATER,
    SceneSpec,
    _check_window,
)
from geoseg.raster import PixelWindow


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


# Thresholds on the normalised noise fields, set from their measured distributions so that
# natural land is ~75 % forest, ~3 % bare patches and ~0.5 % ponds.
_T_FOREST: Final = -0.19


_T_BARE: Final = 0.30


_T_POND: Final = -0.63


def _near_line(win: PixelWindow, nx: float, ny: float, d: float, half: float) -> tuple[I64, I64]:
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


def _natural(spec: SceneSpec, win: PixelWindow) -> U8:
    """Forest with natural grassland openings, bare patches and ponds."""
    forest = _fbm(_key(spec.seed, "forest"), win, (256, 128, 64, 32, 16))
    out = np.where(forest > _T_FOREST, np.uint8(FOREST), np.uint8(GRASSLAND))
    patches = _fbm(_key(spec.seed, "patches"), win, (96, 48, 24))
    out[(patches > _T_BARE) & (out == GRASSLAND)] = BARE_SOIL
    out[patches < _T_POND] = WATER
    return out


def _parcel_axes(spec: SceneSpec, win: PixelWindow) -> tuple[I64, I64]:
    """Parcel row index of each window row and parcel column index of each window column."""
    layout = _layout(spec)
    rows = np.arange(win.row_off, win.row_end, dtype=np.int64)
    cols = np.arange(win.col_off, win.col_end, dtype=np.int64)
    pr = _parcel_index(_key(spec.seed, "parcel-rows"), rows, layout.parcel_rows)
    pc = _parcel_index(_key(spec.seed, "parcel-cols"), cols, layout.parcel_cols)
    return pr, pc


def _parcels(spec: SceneSpec, win: PixelWindow) -> U8:
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


def _paint_rivers(spec: SceneSpec, win: PixelWindow, out: U8) -> None:
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


def _box(cy: float, cx: float, ry: float, rx: float, win: PixelWindow) -> PixelWindow | None:
    """The window's part of the box ``centre +- radii`` (None when they do not meet)."""
    r0, c0 = math.floor(cy - ry), math.floor(cx - rx)
    return PixelWindow(r0, c0, math.ceil(cy + ry) - r0 + 1, math.ceil(cx + rx) - c0 + 1).intersection(win)


def _ellipse(key: int, box: PixelWindow, cy: float, cx: float, ry: float, rx: float, rough: float) -> Bool:
    """A blob: an ellipse whose radius wobbles by ``rough`` with smooth noise."""
    cell = max(4, round(min(ry, rx) / 2))
    wobble = np.float32(1.0) + np.float32(rough) * _noise(key, box, cell)
    dy = (np.arange(box.row_off, box.row_end) + 0.5 - cy) / ry
    dx = (np.arange(box.col_off, box.col_end) + 0.5 - cx) / rx
    return (dy * dy)[:, None] + (dx * dx)[None, :] < wobble * wobble


def _paint_towns(spec: SceneSpec, win: PixelWindow, out: U8) -> None:
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


def _paint_roads(spec: SceneSpec, win: PixelWindow, out: U8) -> None:
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
        part = PixelWindow(r0, c0, r1 - r0, c1 - c0).intersection(win)
        if part is not None:
            out[part.relative_to(win).slices()] = BUILT_UP


def _paint_border(spec: SceneSpec, win: PixelWindow, out: U8) -> None:
    h, w = spec.shape
    for edge in _layout(spec).edges:
        horizontal = edge.side in (0, 2)  # the edge runs along the columns
        near = edge.max_depth
        # Only the rows (or columns) within reach of the edge are tested.
        if edge.side == 0:
            part = PixelWindow(0, 0, near, w).intersection(win)
        elif edge.side == 2:
            part = PixelWindow(h - near, 0, near, w).intersection(win)
        elif edge.side == 1:
            part = PixelWindow(0, w - near, h, near).intersection(win)
        else:
            part = PixelWindow(0, 0, h, near).intersection(win)
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


def class_map(spec: SceneSpec, window: PixelWindow | None = None) -> U8:
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
