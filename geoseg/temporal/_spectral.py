"""A spectral forest / non-forest / water baseline for imagery without labels or a model.

For the Pucallpa Landsat composites (``pucallpa-landsat``: SWIR1, NIR, red, green, 8-bit
stretched, nodata 0) there is no training data, so forest is mapped with two indices:

- NDVI = (NIR - red) / (NIR + red): dense canopy is ~0.80-0.88 in every year's
  composite; pasture, crops, bare soil and the city fall below ~0.7 (bare soil and
  built-up 0.3-0.5).
- NBR-like = (NIR - SWIR1) / (NIR + SWIR1): closed forest is dark in SWIR1 and peaks at
  0.35-0.40 (the mode of every year's histogram, 1985-2020); cleared land, pasture and
  secondary regrowth are brighter in SWIR1 and form a long tail down to below 0. In a
  SWIR1/NIR/red composite the forest is the dark olive tone, the cleared land the
  yellow, pink and brown tones west of the city.

A pixel is **forest** when NDVI >= 0.70 and NBR >= 0.28 (0.28 sits about 0.1 below the
forest mode, in the tail of the forest peak, so degraded forest still counts while
pasture does not), **water** when NDVI < 0.10 and NBR > 0 (open water reflects almost no
SWIR1, so its NBR is high while its NDVI is negative; sand bars, also low in NDVI, are
brighter in SWIR1 than NIR and stay non-forest), else **non-forest**. Thresholds were
chosen by looking at the 2-D NDVI x NBR histograms of all eight dates and at the
classified maps against the composites; they are parameters, not truths, and an 8-bit
stretched composite is not calibrated reflectance, so other imagery needs them checked."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from geoseg.classes import CLASS_NODATA, ClassInfo
from geoseg.errors import BandError, ConfigError
from geoseg.files import check_writable
from geoseg.options import Options, option
from geoseg.progress import Progress, report
from geoseg.raster import RasterSource, class_map_writer, iter_tiles, open_raster

FOREST, NON_FOREST, WATER = 0, 1, 2


SPECTRAL_CLASSES: list[ClassInfo] = [
    ClassInfo(FOREST, "forest", (0, 100, 0)),
    ClassInfo(NON_FOREST, "non-forest", (230, 200, 120)),
    ClassInfo(WATER, "water", (0, 100, 200)),
]


NEEDED = ("swir1", "nir", "red")


class ForestThresholds(Options):
    """The spectral rule (see the module docstring for how the values were chosen); also how
    imagery is classified before tracking (``classify:`` of a track step, ``--spectral``)."""

    method: Literal["spectral"] = option("spectral", "The classifier: the spectral baseline.")
    ndvi_min: float = option(0.70, "Forest: NDVI at least this (and NBR at least nbr_min).")
    nbr_min: float = option(0.28, "Forest: NBR at least this.")
    water_ndvi_max: float = option(0.10, "Water: NDVI below this (and NBR above water_nbr_min).")
    water_nbr_min: float = option(0.0, "Water: NBR above this.")

    def describe(self) -> str:
        return (
            f"forest: NDVI >= {self.ndvi_min} and NBR >= {self.nbr_min}; water: NDVI < {self.water_ndvi_max} "
            f"and NBR > {self.water_nbr_min}; else non-forest (NDVI = (nir-red)/(nir+red), "
            "NBR = (nir-swir1)/(nir+swir1))"
        )


#: the ``classify`` options of tracking: the spectral rule
ClassifyOptions = ForestThresholds


def classify_pixels(
    swir1: np.ndarray, nir: np.ndarray, red: np.ndarray, valid: np.ndarray, t: ForestThresholds
) -> np.ndarray:
    """Class codes (uint8, 255 where invalid) from three bands of any numeric type."""
    s, n, r = (np.asarray(b, dtype=np.float32) for b in (swir1, nir, red))
    with np.errstate(divide="ignore", invalid="ignore"):
        ndvi = (n - r) / (n + r)
        nbr = (n - s) / (n + s)
    ok = valid & np.isfinite(ndvi) & np.isfinite(nbr)
    out = np.full(s.shape, NON_FOREST, dtype=np.uint8)
    out[(ndvi >= t.ndvi_min) & (nbr >= t.nbr_min)] = FOREST
    out[(ndvi < t.water_ndvi_max) & (nbr > t.water_nbr_min)] = WATER
    out[~ok] = CLASS_NODATA
    return out


def open_imagery(path: str | os.PathLike[str], band_names: Sequence[str] | None = None) -> RasterSource:
    """Open imagery and select SWIR1, NIR and red by name (renaming the bands first if asked)."""
    src = open_raster(path, band_names=band_names)
    names = [n.lower() for n in src.band_names]
    missing = [b for b in NEEDED if b not in names]
    if missing:
        raise BandError(
            f"has no band named {', '.join(missing)} (its bands: {', '.join(src.band_names)}); "
            "name them in file order with --bands, e.g. --bands swir1,nir,red,green",
            path,
        )
    return open_raster(path, bands=list(NEEDED), band_names=band_names)


def classify_forest(
    image: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    band_names: Sequence[str] | None = None,
    thresholds: ForestThresholds | None = None,
    date: str | None = None,
    block_size: int = 1024,
    progress: Progress | None = None,
) -> Path:
    """Classify ``image`` into forest / non-forest / water; writes a class-map COG."""
    t = thresholds or ForestThresholds()
    src = open_imagery(image, band_names)
    out_path = check_writable(out, [image])
    tags = {"GEOSEG_CLASSIFIER": "spectral baseline: " + t.describe(), "GEOSEG_SOURCE": str(image)}
    if date is not None:
        tags["GEOSEG_DATE"] = str(date)
    tiles = list(iter_tiles(src.grid.shape, block_size))
    with class_map_writer(out_path, src.grid, SPECTRAL_CLASSES, tags) as writer:
        for k, tile in enumerate(tiles, start=1):
            data, valid = src.read(tile.core)
            writer.write(tile.core, classify_pixels(data[0], data[1], data[2], valid, t))
            report(progress, k, len(tiles))
    return out_path


def classify_series(
    images: Sequence[str | os.PathLike[str]],
    dates: Sequence[str],
    out_dir: str | os.PathLike[str],
    *,
    band_names: Sequence[str] | None = None,
    thresholds: ForestThresholds | None = None,
    progress: Progress | None = None,
) -> list[Path]:
    """Classify every date's image into ``out_dir/<date>.tif``; returns the paths in order."""
    if len(images) != len(dates):
        raise ConfigError(f"{len(dates)} dates for {len(images)} images; give one date per image")
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    for image in images:  # every input first: a bad last file should not cost the others' work
        open_imagery(image, band_names)
    out = []
    for k, (image, date) in enumerate(zip(images, dates, strict=True)):
        out.append(
            classify_forest(
                image, folder / f"{date}.tif", band_names=band_names, thresholds=thresholds, date=date
            )
        )
        report(progress, k + 1, len(images), str(date))
    return out
