"""Vectors: class raster -> polygons block by block, merged exactly across seams; sieve; areas; layer writers (GeoPackage, GeoParquet, FlatGeobuf, PMTiles) and styles."""

from __future__ import annotations

from geoseg.vector._areas import AreaModel, area_model
from geoseg.vector._blockpass import block_windows, pixel_areas
from geoseg.vector._formats import FORMATS, beside, output_driver, pmtiles_zooms
from geoseg.vector._gpkg import GPKG_VERSION, LayerCopy, list_layers, merge_layers, read_provenance
from geoseg.vector._options import DEFAULT_LAYER, LegendOptions, VectorizeOptions, VectorizeSettings
from geoseg.vector._outputs import (
    GpkgBuilder,
    LayerFiles,
    ScratchRaster,
    StagedOutputs,
    check_outputs,
    layer_set,
    min_area_filter,
    polygon_batches,
    provenance_tags,
)
from geoseg.vector._polygonize import PolygonizeStats, polygonize_frame
from geoseg.vector._styles import (
    LayerStyle,
    change_style,
    landcover_style,
    loss_year_legend,
    loss_year_palette,
    loss_year_style,
    read_styles,
    single_style,
    transition_colour,
)
from geoseg.vector._vectorize import VectorizeResult, vectorize, vectorize_style

__all__ = [
    "DEFAULT_LAYER",
    "FORMATS",
    "GPKG_VERSION",
    "AreaModel",
    "GpkgBuilder",
    "LayerCopy",
    "LayerFiles",
    "LayerStyle",
    "LegendOptions",
    "PolygonizeStats",
    "ScratchRaster",
    "StagedOutputs",
    "VectorizeOptions",
    "VectorizeResult",
    "VectorizeSettings",
    "area_model",
    "beside",
    "block_windows",
    "change_style",
    "check_outputs",
    "landcover_style",
    "layer_set",
    "list_layers",
    "loss_year_legend",
    "loss_year_palette",
    "loss_year_style",
    "merge_layers",
    "min_area_filter",
    "output_driver",
    "pixel_areas",
    "pmtiles_zooms",
    "polygon_batches",
    "polygonize_frame",
    "provenance_tags",
    "read_provenance",
    "read_styles",
    "single_style",
    "transition_colour",
    "vectorize",
    "vectorize_style",
]
