"""Areas and perimeters in metres, whatever the raster's CRS.

Polygons from a class raster are built in *pixel* coordinates (integer corners, so merging
them is exact) and measured here. Two ways of measuring:

- ``planar``: the CRS is projected and its areal scale stays within ``PLANAR_TOLERANCE``
  (0.25 %) of 1 over the raster: equal-area projections, UTM inside its zone, national
  grids. Areas are then pixel-space areas times the pixel area, so an unsimplified polygon
  of ``n`` pixels has exactly ``n`` pixel areas, the number users compare with raster
  statistics. The error against the ellipsoid is the projection's own scale error (UTM:
  -0.08 % on the central meridian, +0.2 % at the zone edge).
- ``ellipsoidal``: geographic CRSs (EPSG:4326...) and projections that distort area (Web
  Mercator). Vertices go to longitude/latitude and then to a cylindrical equal-area
  projection on the raster's own ellipsoid, where planar area *is* ellipsoidal area.
  In a geographic grid, pixel edges are meridians and parallels, which stay straight in
  that projection, so pixel-exact polygons are measured exactly; other edges are densified
  first. Perimeters are geodesic lengths (pyproj.Geod).

An ``AreaModel`` holds only plain values so it can travel in a Dask task; the pyproj
objects it needs are rebuilt (and cached) in each process."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import shapely
from pyproj import CRS, Geod, Proj, Transformer

from geoseg.raster import Grid, PixelWindow

PLANAR_TOLERANCE = 0.0025


DENSIFY_PX = 8.0  # densify non-grid edges to this many pixels before reprojecting them


@dataclass(frozen=True)
class AreaModel:
    """How to turn pixel-space geometries into CRS geometries, m² and metres."""

    crs_wkt: str
    transform: tuple[float, float, float, float, float, float]  # affine a, b, c, d, e, f
    planar: bool
    geographic: bool
    unit_m: float  # metres per linear unit of the CRS (planar only)
    lon0: float  # central longitude of the equal-area projection
    ellipsoid: tuple[float, float]  # semi-major axis (m), inverse flattening (0: sphere)
    centre_px: tuple[int, int] = (0, 0)  # (col, row) of the raster's central pixel

    # ---------------------------------------------------------------- geometry helpers

    def to_crs(self, geoms_px: np.ndarray) -> np.ndarray:
        """Pixel coordinates -> CRS coordinates, the same affine for every vertex."""
        a, b, c, d, e, f = self.transform

        def affine(xy: np.ndarray) -> np.ndarray:
            x, y = xy[:, 0], xy[:, 1]
            return np.column_stack((a * x + b * y + c, d * x + e * y + f))

        return shapely.transform(geoms_px, affine)

    @property
    def pixel_area_m2(self) -> float:
        """Area of one pixel: exact when planar, at the raster's centre otherwise."""
        a, b, _, d, e, _ = self.transform
        if self.planar:
            return abs(a * e - b * d) * self.unit_m**2
        col, row = self.centre_px
        return float(self.measure(np.array([shapely.box(col, row, col + 1, row + 1)]))[0][0])

    @property
    def pixel_size_m(self) -> float:
        """Side of a square with the area of one pixel: turns metres into pixels."""
        return math.sqrt(self.pixel_area_m2)

    def measure(
        self, geoms_px: np.ndarray, geoms_crs: np.ndarray | None = None, grid_edges: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """(area m², perimeter m) of pixel-space polygons.

        ``grid_edges`` says every edge runs along the pixel grid (true straight out of
        polygonisation, false after simplification); such edges need no densifying.
        """
        if len(geoms_px) == 0:
            return np.zeros(0), np.zeros(0)
        if geoms_crs is None:
            geoms_crs = self.to_crs(geoms_px)
        if self.planar:
            a, b, _, d, e, _ = self.transform
            area = shapely.area(geoms_px) * abs(a * e - b * d) * self.unit_m**2
            return area, shapely.length(geoms_crs) * self.unit_m
        dense = geoms_px
        if not (self.geographic and grid_edges):
            dense = shapely.segmentize(geoms_px, DENSIFY_PX)
        lonlat = self._lonlat(self.to_crs(dense))
        area = shapely.area(shapely.transform(lonlat, _cea_fn(self.lon0, *self.ellipsoid)))
        return area, _geodesic_perimeter(lonlat, _geod(*self.ellipsoid))

    def pixel_weights(self, window: PixelWindow) -> np.ndarray | None:
        """Area of each pixel of ``window`` in m², broadcastable; None when all are equal.

        Used to measure regions for the minimum mapping unit in the same way polygons
        are measured.
        """
        if self.planar:
            return None
        h = window.height
        if self.geographic:
            # Rows are bounded by parallels: one area per row, exact in the equal-area projection.
            a, _, c, _, e, f = self.transform
            lat = f + e * (window.row_off + np.arange(h + 1))
            proj = _cea(self.lon0, *self.ellipsoid)
            _, y = proj(np.full(h + 1, self.lon0), lat)
            x0, _ = proj(self.lon0, 0.0)
            x1, _ = proj(self.lon0 + abs(a), 0.0)
            return (np.abs(np.diff(y)) * abs(x1 - x0))[:, None]
        rows, cols = np.mgrid[window.row_off : window.row_end + 1, window.col_off : window.col_end + 1]
        a, b, c, d, e, f = self.transform
        x, y = a * cols + b * rows + c, d * cols + e * rows + f
        lon, lat = _to_lonlat(self.crs_wkt)(x.ravel(), y.ravel())
        X, Y = _cea(self.lon0, *self.ellipsoid)(lon, lat)
        X, Y = X.reshape(x.shape), Y.reshape(y.shape)
        # Shoelace on each pixel's quadrilateral of projected corners.
        return 0.5 * np.abs(
            (X[:-1, :-1] - X[1:, 1:]) * (Y[:-1, 1:] - Y[1:, :-1])
            - (X[:-1, 1:] - X[1:, :-1]) * (Y[:-1, :-1] - Y[1:, 1:])
        )

    def threshold(self, area_m2: float) -> float:
        """An area in m² in the units ``pixel_weights`` sums to (pixels when planar)."""
        return area_m2 / self.pixel_area_m2 if self.planar else area_m2

    # ---------------------------------------------------------------- internals

    def _lonlat(self, geoms_crs: np.ndarray) -> np.ndarray:
        if self.geographic:
            return geoms_crs
        to_ll = _to_lonlat(self.crs_wkt)
        return shapely.transform(geoms_crs, lambda xy: np.column_stack(to_ll(xy[:, 0], xy[:, 1])))


def area_model(grid: Grid, tolerance: float = PLANAR_TOLERANCE) -> AreaModel:
    """Pick planar or ellipsoidal measurement for ``grid`` (see the module docstring)."""
    t = grid.transform
    transform = (t.a, t.b, t.c, t.d, t.e, t.f)
    if grid.crs is None:
        return AreaModel("", transform, True, False, 1.0, 0.0, (6378137.0, 298.257223563))
    crs = CRS.from_wkt(grid.crs.to_wkt())
    ell = crs.ellipsoid
    ellipsoid = (6378137.0, 298.257223563)  # WGS 84 when the CRS names none
    if ell is not None:
        rf = float(ell.inverse_flattening)
        ellipsoid = (float(ell.semi_major_metre), rf if math.isfinite(rf) and rf > 0 else 0.0)
    unit = 1.0
    if crs.axis_info and crs.axis_info[0].unit_conversion_factor:
        unit = float(crs.axis_info[0].unit_conversion_factor)
    # Sample the raster's extent (5 x 5 points, corners included).
    h, w = grid.shape
    centre = (w // 2, h // 2)
    rows, cols = np.meshgrid(np.linspace(0, h, 5), np.linspace(0, w, 5), indexing="ij")
    xs, ys = t.a * cols + t.b * rows + t.c, t.d * cols + t.e * rows + t.f
    if crs.is_geographic:
        lon0 = float(np.mean(xs))
        return AreaModel(crs.to_wkt(), transform, False, True, unit, lon0, ellipsoid, centre)
    try:
        lon, lat = _to_lonlat(crs.to_wkt())(xs.ravel(), ys.ravel())
        lon0 = float(np.mean(lon)) if np.all(np.isfinite(lon)) else 0.0
    except Exception:  # an engineering or local CRS: nothing to project to; trust the plane
        return AreaModel(crs.to_wkt(), transform, True, False, unit, 0.0, ellipsoid, centre)
    planar = False
    if crs.is_projected:
        try:
            scale = np.asarray(Proj(crs).get_factors(lon, lat).areal_scale, dtype=float)
            planar = bool(np.all(np.isfinite(scale)) and np.max(np.abs(scale - 1.0)) <= tolerance)
        except Exception:  # PROJ cannot give factors: measure on the ellipsoid to be safe
            planar = False
    return AreaModel(crs.to_wkt(), transform, planar, False, unit, lon0, ellipsoid, centre)


@lru_cache(maxsize=16)
def _to_lonlat(crs_wkt: str) -> Any:
    crs = CRS.from_wkt(crs_wkt)
    return Transformer.from_crs(crs, crs.geodetic_crs, always_xy=True).transform


@lru_cache(maxsize=16)
def _cea(lon0: float, a: float, rf: float) -> Proj:
    shape = f"+R={a}" if rf == 0 else f"+a={a} +rf={rf}"
    return Proj(f"+proj=cea +lon_0={lon0!r} +lat_ts=0 {shape} +units=m +no_defs")


def _cea_fn(lon0: float, a: float, rf: float) -> Any:
    proj = _cea(lon0, a, rf)
    return lambda xy: np.column_stack(proj(xy[:, 0], xy[:, 1]))


@lru_cache(maxsize=16)
def _geod(a: float, rf: float) -> Geod:
    return Geod(a=a, b=a) if rf == 0 else Geod(a=a, rf=rf)


def _geodesic_perimeter(lonlat: np.ndarray, geod: Geod) -> np.ndarray:
    """Geodesic length of every ring of every (multi)polygon, summed per geometry."""
    out = np.zeros(len(lonlat))
    parts, part_of = shapely.get_parts(lonlat, return_index=True)
    rings, ring_of = shapely.get_rings(parts, return_index=True)
    coords, vertex_of = shapely.get_coordinates(rings, return_index=True)
    if len(coords) < 2:
        return out
    same = vertex_of[1:] == vertex_of[:-1]
    start, end = coords[:-1][same], coords[1:][same]
    _, _, dist = geod.inv(start[:, 0], start[:, 1], end[:, 0], end[:, 1])
    owner = part_of[ring_of[vertex_of[:-1][same]]]
    np.add.at(out, owner, np.asarray(dist, dtype=float))
    return out
