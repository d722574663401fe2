"""An immutable raster grid (shape, transform, CRS), windows on it, and tiling.

A ``Grid`` is the georeferencing of a raster without its pixels. Slicing a grid gives the
sub-grid of a window, with the transform shifted so pixels keep their place on the ground.

Tiling splits a grid into tiles whose *core* windows cover every pixel exactly once. Each
tile also has a *read* window: the core grown by ``overlap`` pixels on every side (the
halo) so the model sees context; read windows may reach past the raster edge, where a
boundless read pads them with nodata. Interior tiles all have the same read size
(``size + 2 * overlap``) so batches stack without padding. ``batch_tiles`` groups tiles
into model batches in an order that lets each worker reuse what it last read."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from affine import Affine
from rasterio.crs import CRS

from geoseg.errors import GridMismatchError, WindowError


@dataclass(frozen=True, order=True)
class PixelWindow:
    """A rectangle of pixels, rows first: ``PixelWindow(row_off, col_off, height, width)``;
    offsets may be negative (past the top/left edge).

    Not rasterio's ``Window``, which takes columns first (``Window(col_off, row_off, width,
    height)``): the other name keeps one from being read as the other.
    :meth:`to_rasterio` converts.
    """

    row_off: int
    col_off: int
    height: int
    width: int

    def __post_init__(self) -> None:
        if self.height < 0 or self.width < 0:
            raise WindowError(f"window {self} has a negative size")

    @property
    def row_end(self) -> int:
        return self.row_off + self.height

    @property
    def col_end(self) -> int:
        return self.col_off + self.width

    @property
    def shape(self) -> tuple[int, int]:
        return (self.height, self.width)

    @property
    def size(self) -> int:
        return self.height * self.width

    def slices(self) -> tuple[slice, slice]:
        """Numpy slices; only meaningful for windows with non-negative offsets."""
        return (slice(self.row_off, self.row_end), slice(self.col_off, self.col_end))

    def to_rasterio(self) -> Any:
        from rasterio.windows import Window as RioWindow

        return RioWindow(self.col_off, self.row_off, self.width, self.height)

    def relative_to(self, outer: PixelWindow) -> PixelWindow:
        """This window in the pixel coordinates of ``outer``."""
        return PixelWindow(
            self.row_off - outer.row_off, self.col_off - outer.col_off, self.height, self.width
        )

    def shifted(self, rows: int, cols: int) -> PixelWindow:
        return PixelWindow(self.row_off + rows, self.col_off + cols, self.height, self.width)

    def intersection(self, other: PixelWindow) -> PixelWindow | None:
        r0, c0 = max(self.row_off, other.row_off), max(self.col_off, other.col_off)
        r1, c1 = min(self.row_end, other.row_end), min(self.col_end, other.col_end)
        if r1 <= r0 or c1 <= c0:
            return None
        return PixelWindow(r0, c0, r1 - r0, c1 - c0)

    def contains(self, other: PixelWindow) -> bool:
        return (
            self.row_off <= other.row_off
            and self.col_off <= other.col_off
            and other.row_end <= self.row_end
            and other.col_end <= self.col_end
        )


def crs_equal(a: CRS | None, b: CRS | None) -> bool:
    """True when two CRSs describe the same projection, however they are written.

    GDAL's ``OSRIsSame`` (rasterio's ``==``) already ignores names and authority codes; the
    fallback compares PROJ parameters so an all-zero TOWGS84 or a missing datum name (as in
    the nc-landsat7 band files against their EPSG:3358 ``strata.tif``) does not matter.
    """
    if a is None or b is None:
        return a is None and b is None
    if a == b:
        return True
    return _proj_params(a) == _proj_params(b)


def _proj_params(crs: CRS) -> dict[str, Any]:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "you will likely lose information": we only compare
        params = dict(CRS.from_user_input(crs).to_dict())
    for key in ("no_defs", "type", "wktext"):
        params.pop(key, None)
    towgs = params.get("towgs84")
    if towgs is not None and all(float(v) == 0.0 for v in str(towgs).split(",")):
        params.pop("towgs84")
    return {k: round(v, 9) if isinstance(v, float) else v for k, v in params.items()}


@dataclass(frozen=True)
class Grid:
    """Shape ``(height, width)``, affine ``transform`` and ``crs`` of a raster."""

    shape: tuple[int, int]
    transform: Affine
    crs: CRS | None

    def __post_init__(self) -> None:
        h, w = self.shape
        if h <= 0 or w <= 0:
            raise WindowError(f"grid shape {self.shape} must be positive")
        object.__setattr__(self, "shape", (int(h), int(w)))

    @classmethod
    def from_dataset(cls, ds: Any) -> Grid:
        """The grid of an open rasterio dataset."""
        return cls((ds.height, ds.width), ds.transform, ds.crs)

    @property
    def height(self) -> int:
        return self.shape[0]

    @property
    def width(self) -> int:
        return self.shape[1]

    @property
    def res(self) -> tuple[float, float]:
        """Pixel size (x, y), both positive, for north-up grids."""
        return (abs(self.transform.a), abs(self.transform.e))

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(left, bottom, right, top) in CRS units."""
        xs, ys = [], []
        for r, c in ((0, 0), (0, self.width), (self.height, 0), (self.height, self.width)):
            x, y = self.transform @ (c, r)
            xs.append(x)
            ys.append(y)
        return (min(xs), min(ys), max(xs), max(ys))

    @property
    def window(self) -> PixelWindow:
        """The whole grid as a window."""
        return PixelWindow(0, 0, self.height, self.width)

    def window_grid(self, window: PixelWindow) -> Grid:
        """The sub-grid under ``window`` (which may reach past the edges)."""
        transform = self.transform @ Affine.translation(window.col_off, window.row_off)
        return Grid((window.height, window.width), transform, self.crs)

    def __getitem__(self, key: tuple[slice, slice]) -> Grid:
        rows, cols = key
        r0, r1, _ = rows.indices(self.height)
        c0, c1, _ = cols.indices(self.width)
        if r1 <= r0 or c1 <= c0:
            raise WindowError(f"slice {key} of grid {self.shape} is empty")
        return self.window_grid(PixelWindow(r0, c0, r1 - r0, c1 - c0))

    def same_as(self, other: Grid, tolerance: float = 1e-6) -> bool:
        """Same shape, same CRS (up to notation) and transforms within a fraction of a pixel."""
        if self.shape != other.shape or not crs_equal(self.crs, other.crs):
            return False
        return self.transform.almost_equals(other.transform, precision=tolerance * max(self.res))

    def require_same(self, other: Grid, what: str = "rasters") -> None:
        if not self.same_as(other):
            raise GridMismatchError(
                f"{what} are not on the same grid: {self.describe()} vs {other.describe()}"
            )

    @property
    def pixel_size_m(self) -> float | None:
        """The pixel's width in metres (at the grid's centre for a geographic CRS); None
        without a CRS. Used to compare a scene's resolution with a model's."""
        if self.crs is None:
            return None
        width = abs(self.transform.a)
        if self.crs.is_geographic:  # degrees of longitude, shrinking with latitude
            _, bottom, _, top = self.bounds
            lat = math.radians((bottom + top) / 2)
            return width * 111_320.0 * math.cos(lat)
        factor = self.crs.linear_units_factor[1] if self.crs.linear_units_factor else 1.0
        return width * factor

    def describe(self) -> str:
        crs = self.crs.to_string() if self.crs else "no CRS"
        return f"{self.width}x{self.height} px, {crs}, origin {self.transform.c:.6g},{self.transform.f:.6g}, pixel {self.res[0]:.6g}"

    def tiles(self, size: int, overlap: int = 0) -> list[Tile]:
        """Tiles of core ``size`` x ``size`` with ``overlap`` pixels of halo each side."""
        return list(iter_tiles(self.shape, size, overlap))


@dataclass(frozen=True)
class Tile:
    """One tile: ``core`` (written out, inside the grid) and ``read`` (core plus halo)."""

    row: int
    col: int
    core: PixelWindow
    read: PixelWindow

    @property
    def core_in_read(self) -> PixelWindow:
        """Where the core sits inside the array read for this tile."""
        return self.core.relative_to(self.read)

    @property
    def key(self) -> str:
        return f"{self.row}-{self.col}"


#: the largest prediction tile: a model's working memory grows with it (GBs at 4096^2 on
#: a CPU), while the context a tile needs comes from its overlap
MAX_TILE = 4096


def iter_tiles(shape: tuple[int, int], size: int, overlap: int = 0) -> Iterator[Tile]:
    """Tile a ``(height, width)`` grid; cores partition it exactly, row-major order.

    Edge tiles have smaller cores but the same read size as the others: their read
    window is anchored to stay ``size + 2*overlap`` wide where the raster allows, so a
    batch stacks without reshaping; what is left past the raster is padded by the read.
    Along an axis shorter than ``size`` the read is that axis plus a halo each side.
    """
    if size <= 0:
        raise WindowError(f"tile size must be positive, got {size}")
    if overlap < 0:
        raise WindowError(f"overlap must be zero or positive, got {overlap}")
    height, width = shape
    n_rows, n_cols = math.ceil(height / size), math.ceil(width / size)
    # A raster smaller than a tile is read once with its halo, not padded out to a whole
    # tile (a 512^2 image in 100000-px tiles would read 10^10 pixels of padding)
    span_h = min(size, height) + 2 * overlap
    span_w = min(size, width) + 2 * overlap
    for i in range(n_rows):
        r0 = i * size
        r1 = min(r0 + size, height)
        # The last row/column of tiles has a thin core; slide its read window back so it
        # holds real context instead of padding (never past one halo before the edge).
        read_r0 = min(r0 - overlap, max(-overlap, height - size - overlap))
        for j in range(n_cols):
            c0 = j * size
            c1 = min(c0 + size, width)
            read_c0 = min(c0 - overlap, max(-overlap, width - size - overlap))
            core = PixelWindow(r0, c0, r1 - r0, c1 - c0)
            yield Tile(i, j, core, PixelWindow(read_r0, read_c0, span_h, span_w))


def batch_tiles(tiles: Sequence[Tile], size: int, lanes: int = 1) -> list[list[Tile]]:
    """Group ``tiles`` into batches of at most ``size`` for ``lanes`` parallel workers.

    A batch is up to ``size`` tiles of one tile row and one *strip* (tile columns
    ``[k * size, (k + 1) * size)``), so its read windows overlap into one compact read.
    Batches come strip group by strip group (``lanes`` strips side by side), row by row
    inside a group: with workers taking batches in order, each one tends to walk down its
    own strip, and the batch it reads next overlaps the rows it read last (the halos and
    the file blocks they share), which a kept-open reader still has decoded. Done
    (missing) tiles leave gaps; every tile given is in exactly one batch.
    """
    if size < 1 or lanes < 1:
        raise ValueError(f"batch size and lanes must be at least 1, got {size} and {lanes}")
    strips: dict[int, dict[int, list[Tile]]] = {}
    for t in tiles:
        strips.setdefault(t.col // size, {}).setdefault(t.row, []).append(t)
    order = sorted(strips)
    out: list[list[Tile]] = []
    for g in range(0, len(order), lanes):
        group = order[g : g + lanes]
        for row in sorted({r for k in group for r in strips[k]}):
            out.extend(sorted(strips[k][row], key=lambda t: t.col) for k in group if row in strips[k])
    return out
