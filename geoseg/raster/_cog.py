"""COG validation."""

from __future__ import annotations

import os

from geoseg.classes import ClassInfo as ClassInfo  # re-exported: io is where most callers look
from geoseg.classes import default_colour as default_colour
from geoseg.raster._read import GDAL_ENV, _open
from geoseg.raster._write import COG_BLOCK

# rio-cogeo's warning for a large raster without overviews; geoseg makes that an error
# of its own (below), so the warning would only say it twice.
_RIO_NO_OVERVIEWS = "it is recommended to include internal overviews"


def validate_cog(path: str | os.PathLike[str]) -> tuple[bool, list[str], list[str]]:
    """Check that ``path`` is a Cloud-Optimized GeoTIFF.

    rio-cogeo's ``cog_validate`` checks the layout (the port of GDAL's
    ``validate_cloud_optimized_geotiff.py``: IFD and block offsets in COG order, internal
    and sorted overviews, a tiled file and tiled overviews above 512 px, optimizations not
    invalidated by later edits). geoseg then adds what it does not check:

    - GDAL reports ``LAYOUT=COG`` for it: the file's structural-metadata header declares
      the COG layout, as the COG driver writes it (rio-cogeo only checks the offsets it
      can see, so a small tiled GeoTIFF written plainly, IFD first, passes there);
    - it is tiled at any size (rio-cogeo accepts strips up to 512 px);
    - a raster larger than one block has overviews (an error here, a warning there);
    - it is compressed, and its blocks are square (warnings).

    Parameters
    ----------
    path
        The GeoTIFF (a local path or a GDAL ``/vsi`` path or URL).

    Returns
    -------
    tuple of (bool, list of str, list of str)
        ``(ok, errors, warnings)``; ``ok`` is True when there are no errors.
    """
    from rio_cogeo.cogeo import cog_validate

    errors: list[str] = []
    warnings: list[str] = []
    p = str(path)
    with _open(p) as ds:  # a missing or unreadable file is one clear geoseg error first
        if ds.driver != "GTiff":
            errors.append(f"driver is {ds.driver}, not GTiff")
            return False, errors, warnings
        layout = ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT")
        tiled = ds.profile.get("tiled", False)
        no_overviews = (ds.width > COG_BLOCK or ds.height > COG_BLOCK) and not ds.overviews(1)
        compressed = ds.compression is not None
        block_h, block_w = ds.block_shapes[0]
    # quiet: a library never prints (rio-cogeo would list its findings on stderr)
    _, rio_errors, rio_warnings = cog_validate(p, quiet=True, config=GDAL_ENV)
    errors += rio_errors
    warnings += [w for w in rio_warnings if not (no_overviews and _RIO_NO_OVERVIEWS in w)]
    if layout != "COG":
        errors.append("not written with the COG layout (IFDs and overviews before the data)")
    if not tiled and not any("not tiled" in e for e in rio_errors):  # said once is enough
        errors.append("not tiled")
    if no_overviews:
        errors.append("no overviews on a raster larger than one block")
    if not compressed:
        warnings.append("not compressed")
    if block_w != block_h:
        warnings.append(f"blocks are not square ({block_w}x{block_h})")
    return not errors, errors, warnings
