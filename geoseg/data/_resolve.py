"""Catalog scenes as images: a name (or NAME@DATE) resolved to a file to read."""

from __future__ import annotations

import hashlib
from pathlib import Path

from geoseg.errors import CatalogError
from geoseg.raster._stack import write_stack_vrt


def catalog_image(name: str) -> Path | None:
    """The image a catalog name stands for, or None when ``name`` is not a scene of the catalog.

    ``NAME`` is a scene entry, ``NAME@DATE`` one date of a time series. A scene of one file
    is that file; a scene of single-band files (``nc-landsat7``) is a VRT stacking them
    with the catalog's band names, kept in the cache folder under a name that changes
    with the files. Data that is not on disk raises the ``geoseg data fetch`` line.
    """
    from geoseg.data._catalog import load_catalog
    from geoseg.data._entries import SceneEntry, TimeSeriesEntry

    base, _, date = name.partition("@")
    catalog = load_catalog()
    if base not in catalog:
        return None
    entry = catalog.get(base)
    if isinstance(entry, TimeSeriesEntry) and date:
        entry = entry.scene(date)
    elif date:
        raise CatalogError(f"{base!r} is a {entry.kind} of the catalog, not a time series: it has no @{date}")
    if not isinstance(entry, SceneEntry):
        raise CatalogError(
            f"{base!r} is a {entry.kind} of the catalog, not one image; give a scene, NAME@DATE of a "
            "time series, or a file"
        )
    entry.require()
    paths = entry.raster_paths()
    if len(paths) == 1 and entry.nodata is None:
        return paths[0]
    digest = hashlib.sha256("\n".join([*map(str, paths), str(entry.bands), str(entry.nodata)]).encode())
    from geoseg.inference import cache_dir

    vrt = cache_dir() / "inputs" / f"{entry.name.replace('@', '_')}-{digest.hexdigest()[:12]}.vrt"
    return write_stack_vrt(vrt, paths, entry.bands, entry.nodata)
