"""COG validation."""

from __future__ import annotations

import os

from geoseg.classes import ClassInfo as ClassInfo  # re-exported: io is where most callers look
from geoseg.classes import default_colour as default_colour
from geoseg.raster._read import _open
from geoseg.raster._write import COG_BLOCK


def validate_cog(path: str | os.PathLike[str]) -> tuple[bool, list[str], list[str]]:
    """Check that ``path`` is a Cloud-Optimized GeoTIFF -> (ok, errors, warnings).

    Relies on GDAL's own layout check (the ``LAYOUT=COG`` structural metadata the COG
    driver writes, confirmed by the IFD/data ordering GDAL reports) plus tiling and
    overview checks.
    """
    errors: list[str] = []
    warnings: list[str] = []
    p = str(path)
    with _open(p) as ds:
        if ds.driver != "GTiff":
            errors.append(f"driver is {ds.driver}, not GTiff")
            return False, errors, warnings
        layout = ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT")
        if layout != "COG":
            errors.append("not written with the COG layout (IFDs and overviews before the data)")
        if not ds.profile.get("tiled", False):
            errors.append("not tiled")
        if (ds.width > COG_BLOCK or ds.height > COG_BLOCK) and not ds.overviews(1):
            errors.append("no overviews on a raster larger than one block")
        if ds.compression is None:
            warnings.append("not compressed")
        block_h, block_w = ds.block_shapes[0]
        if block_w != block_h:
            warnings.append(f"blocks are not square ({block_w}x{block_h})")
    return not errors, errors, warnings
