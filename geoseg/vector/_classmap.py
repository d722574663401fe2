"""A class map as vectorize reads it: opened, its class table found, its parameters and classes checked."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from geoseg.classes import CLASS_NODATA, ClassInfo
from geoseg.errors import (
    BadRasterError,
    ConfigError,
)
from geoseg.raster import LegendEntry, RasterSource, find_classes, load_legend, open_raster, sample_values

#: at most this many classes: a uint8 class map's values besides nodata
MAX_CLASSES = 255


def open_class_map(path: str | os.PathLike[str] | RasterSource) -> RasterSource:
    """Open a single-band class raster; nodata is the declared value, else 255."""
    src = path if isinstance(path, RasterSource) else open_raster(path)
    name = src.paths[0]
    if src.count != 1:
        raise BadRasterError(
            f"has {src.count} bands; a class map has one (pick one with `gdal_translate -b N`)", name
        )
    if src.nodata is None and not src.uses_mask:
        src = replace(src, nodata=float(CLASS_NODATA))
    return src


def load_class_table(path: str | os.PathLike[str]) -> list[ClassInfo]:
    """Read a legend file (CSV, JSON, YAML, QGIS .qml, .clr) as a class table; see
    :func:`geoseg.raster.load_legend`. Classes without a colour get the default grey."""
    return [
        ClassInfo(e.id, e.name, e.colour) if e.colour else ClassInfo(e.id, e.name) for e in load_legend(path)
    ]


def check_class_map(src: RasterSource, force: bool = False) -> None:
    """Refuse a raster that does not look like a class map, judged on a sample of its pixels.

    A class map holds whole values (a float raster of whole class codes, like
    nc-landsat7/strata.tif, is one) and at most 255 of them; imagery or a DEM holds
    thousands. ``force`` skips the count (non-whole values are refused anyway: a
    polygon's ``class_id`` is an integer).
    """
    values = sample_values(src)
    name = src.paths[0]
    if values.dtype.kind == "f":
        whole = np.floor(values) == values
        if not whole.all():
            raise BadRasterError(
                f"holds the non-whole value {values[~whole][0]:g}; a class map holds whole class ids "
                "(round or reclassify it, or declare that value as nodata)",
                name,
            )
    if force:
        return
    distinct = int(np.unique(values).size)
    if distinct > MAX_CLASSES:
        raise BadRasterError(
            f"does not look like a class map: {distinct:,} distinct values in a sample of {values.size:,} "
            f"pixels, where a class map holds at most {MAX_CLASSES} (imagery or a DEM?); classify it "
            "first, or pass --force to vectorize it anyway",
            name,
        )


def _check_params(
    connectivity: int, block_size: int, min_area_ha: float | None, simplify_m: float | None
) -> None:
    if connectivity not in (4, 8):
        raise ConfigError(f"connectivity must be 4 or 8, got {connectivity}")
    if block_size < 4:
        raise ConfigError(f"block size must be at least 4 pixels, got {block_size}")
    if min_area_ha is not None and not min_area_ha >= 0:
        raise ConfigError(f"minimum area must be zero or positive hectares, got {min_area_ha}")
    if simplify_m is not None and not simplify_m >= 0:
        raise ConfigError(f"simplification tolerance must be zero or positive metres, got {simplify_m}")


def _class_names(
    raster: str, classes: str | os.PathLike[str] | Sequence[ClassInfo] | Sequence[LegendEntry] | None
) -> tuple[dict[int, str], bool, str | None]:
    """id -> name, whether every value must be named, and the legend file's path.

    The raster's own names (:func:`geoseg.raster.find_classes`), overridden by ``classes``:
    a legend file (the map's whole table: every value it holds must be named), or
    classes given one by one (``1=forest``: :class:`LegendEntry`), which name just those;
    ClassInfo from Python are a whole table, like a file.
    Values nothing names are left unnamed (a NULL ``class_name``).
    """
    table = find_classes(raster)
    if classes is None:
        return table.names(), False, None
    if isinstance(classes, (str, os.PathLike)):
        return table.with_legend(load_legend(classes)).names(), True, str(classes)
    entries = [c if isinstance(c, LegendEntry) else LegendEntry(c.id, c.name, c.colour) for c in classes]
    # a whole table from Python (ClassInfo) is held to the map like a legend file
    strict = not all(isinstance(c, LegendEntry) for c in classes)
    return table.with_legend(entries).names(), strict, None


def _check_classes(
    values: set[int], names: dict[int, str], strict: bool, table: str | None, raster: str
) -> None:
    missing = sorted(values - set(names))
    if strict and missing:
        listed = ", ".join(map(str, sorted(names)))
        raise ConfigError(
            f"does not match {raster}: the raster holds class {missing[0]}"
            f"{' (and ' + str(len(missing) - 1) + ' more)' if len(missing) > 1 else ''} but the table lists only {listed}; "
            "pass the table that goes with this raster",
            table,
        )
