"""The COG check: rio-cogeo's and geoseg's own."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from geoseg.raster import validate_cog


def _write(path: Path, driver: str = "GTiff", size: int = 1200, **profile: object) -> Path:
    prof = {"driver": driver, "count": 1, "height": size, "width": size, "dtype": "uint8",
            "crs": "EPSG:32720", "transform": Affine(10, 0, 500_000, 0, -10, 9_000_000), **profile}  # fmt: skip
    with rasterio.open(path, "w", **prof) as ds:
        ds.write((np.arange(size * size).reshape(1, size, size) % 7).astype("uint8"))
    return path


def test_cog_check_combines_rio_cogeo_and_geoseg(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    assert validate_cog(_write(tmp_path / "cog.tif", "COG", compress="deflate")) == (True, [], [])

    ok, errors, warnings = validate_cog(_write(tmp_path / "plain.tif"))
    assert not ok and "not written with the COG layout (IFDs and overviews before the data)" in errors
    assert "The file is greater than 512xH or 512xW, but is not tiled" in errors  # rio-cogeo's
    assert "no overviews on a raster larger than one block" in errors and "not tiled" not in errors  # once
    assert "not compressed" in warnings and not any(
        "recommended to include internal overviews" in w for w in warnings
    )

    # A small tiled GeoTIFF has its IFD before its data, which is all rio-cogeo asks of it;
    # without GDAL's COG layout declared, geoseg refuses it.
    from rio_cogeo.cogeo import cog_validate

    small = _write(
        tmp_path / "small.tif", size=256, tiled=True, blockxsize=128, blockysize=128, compress="deflate"
    )
    assert cog_validate(small, quiet=True) == (True, [], [])
    assert validate_cog(small) == (
        False,
        ["not written with the COG layout (IFDs and overviews before the data)"],
        [],
    )

    # small and in strips: rio-cogeo lets it pass, geoseg wants tiles
    strips = _write(tmp_path / "strips.tif", size=256, compress="deflate")
    assert cog_validate(strips, quiet=True)[0]
    assert "not tiled" in validate_cog(strips)[1]
    assert capfd.readouterr().err == ""  # the library prints nothing
