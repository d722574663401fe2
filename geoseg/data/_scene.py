"""A synthetic scene's specification, classes and bands; its grid."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from affine import Affine
from rasterio.crs import CRS

from geoseg.classes import ClassInfo
from geoseg.errors import ConfigError, WindowError
from geoseg.raster import Grid, PixelWindow

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
    def window(self) -> PixelWindow:
        return PixelWindow(0, 0, self.height, self.width)


def scene_grid(spec: SceneSpec) -> Grid:
    """The scene's georeferencing: north-up, ``pixel_size`` metres, top-left at ``origin``."""
    x0, y0 = spec.origin
    transform = Affine(spec.pixel_size, 0.0, x0, 0.0, -spec.pixel_size, y0)
    return Grid(spec.shape, transform, CRS.from_user_input(spec.crs))


def _check_window(spec: SceneSpec, window: PixelWindow | None) -> PixelWindow:
    if window is None:
        return spec.window
    if window.height == 0 or window.width == 0 or not spec.window.contains(window):
        raise WindowError(f"window {window} is empty or not inside the {spec.height} x {spec.width} scene")
    return window
