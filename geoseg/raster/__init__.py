"""Rasters: the grid and its tiles; open, validate, stack and read any GDAL source; class tables and legends; the class-map COG writer."""

from __future__ import annotations

from geoseg.raster._classfiles import LegendEntry, load_legend, parse_colour
from geoseg.raster._classtable import ClassTable, class_values, find_classes, sample_values
from geoseg.raster._cog import validate_cog
from geoseg.raster._grid import MAX_TILE, Grid, PixelWindow, Tile, batch_tiles, crs_equal, iter_tiles
from geoseg.raster._mosaic import Mosaic, open_region
from geoseg.raster._read import (
    GDAL_ENV,
    KEPT_PER_THREAD,
    BandRef,
    RasterSource,
    close_kept,
    kept_dataset,
    open_raster,
    read_window,
)
from geoseg.raster._sidecars import move_raster, remove_raster, sidecar_paths
from geoseg.raster._stack import write_stack_vrt
from geoseg.raster._write import RasterWriter, class_map_writer, class_tags, read_classes

__all__ = [
    "GDAL_ENV",
    "KEPT_PER_THREAD",
    "MAX_TILE",
    "BandRef",
    "ClassTable",
    "Grid",
    "LegendEntry",
    "Mosaic",
    "PixelWindow",
    "RasterSource",
    "RasterWriter",
    "Tile",
    "batch_tiles",
    "class_map_writer",
    "class_tags",
    "class_values",
    "close_kept",
    "crs_equal",
    "find_classes",
    "iter_tiles",
    "kept_dataset",
    "load_legend",
    "move_raster",
    "open_raster",
    "open_region",
    "parse_colour",
    "read_classes",
    "read_window",
    "remove_raster",
    "sample_values",
    "sidecar_paths",
    "validate_cog",
    "write_stack_vrt",
]
