"""Shared fixtures: real data location, and geometry -> array -> GeoTIFF fixture chains."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from hypothesis import settings

# Hypothesis: CI runs a derandomised profile (the same examples every run, no example
# database), so a red build is reproducible; day to day, random examples find new cases.
settings.register_profile("ci", derandomize=True, database=None, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("GEOSEG_DATA", REPO.parent / "shared" / "data"))
# the official STAC JSON Schemas by URL path, beside the data (README.md there)
STAC_SCHEMAS = Path(os.environ.get("GEOSEG_STAC_SCHEMAS", SHARED_DATA.parent / "stac-schemas"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real data beside the checkout. Tests that need it skip only when it is truly absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def stac_schemas() -> Path:
    """The STAC 1.1.0 and extension JSON Schemas, offline. Tests skip only when truly absent."""
    if not (STAC_SCHEMAS / "schemas.stacspec.org").is_dir():
        pytest.skip(f"STAC JSON Schemas not found at {STAC_SCHEMAS}")
    return STAC_SCHEMAS


WriteTif = Callable[..., Path]


@pytest.fixture
def write_tif(tmp_path: Path) -> WriteTif:
    """Write an array as a GeoTIFF in tmp_path: ``write_tif("a.tif", array, **profile)``."""

    def write(name: str, array: np.ndarray, **profile: object) -> Path:
        if array.ndim == 2:
            array = array[None]
        path = tmp_path / name
        base = {
            "driver": "GTiff",
            "count": array.shape[0],
            "height": array.shape[1],
            "width": array.shape[2],
            "dtype": array.dtype.name,
            "crs": "EPSG:32720",
            "transform": Affine(10, 0, 500_000, 0, -10, 9_000_000),
        }
        base.update(profile)  # type: ignore[arg-type]
        descriptions = base.pop("descriptions", None)
        with rasterio.open(path, "w", **base) as ds:
            ds.write(array)
            if descriptions:
                for i, d in enumerate(descriptions, start=1):  # type: ignore[arg-type]
                    ds.set_band_description(i, d)
        return path

    return write


def coordinate_image(height: int, width: int, bands: int = 2) -> np.ndarray:
    """Pixels whose values encode their own (row, col), so stitching is checked exactly."""
    rows, cols = np.mgrid[0:height, 0:width]
    out = [rows.astype("float32"), cols.astype("float32")]
    for k in range(2, bands):
        out.append((rows * width + cols + k).astype("float32"))
    return np.stack(out[:bands])
