"""Vectors: class raster -> polygons block by block, merged exactly across seams; sieve; areas; layer writers and styles."""

from __future__ import annotations

from geoseg.vector._areas import AreaModel, area_model
from geoseg.vector._blockpass import block_windows, pixel_areas
from geoseg.vector._gpkg import LayerCopy, list_layers, merge_layers, read_provenance
from geoseg.vector._options import DEFAULT_LAYER, VectorizeOptions, VectorizeSettings
from geoseg.vector._outputs import (
    GpkgBuilder,
    ScratchRaster,
    StagedOutputs,
    check_outputs,
    min_area_filter,
    polygon_batches,
    provenance_tags,
)
from geoseg.vector._polygonize import PolygonizeStats, polygonize_frame
from geoseg.vector._styles import (
    LayerStyle,
    change_style,
    landcover_style,
    loss_year_palette,
    loss_year_style,
    read_styles,
    single_style,
    transition_colour,
)
from geoseg.vector._vectorize import VectorizeResult, vectorize, vectorize_style

__all__ = [
    "DEFAULT_LAYER",
    "AreaModel",
    "GpkgBuilder",
    "LayerCopy",
    "LayerStyle",
    "PolygonizeStats",
    "ScratchRaster",
    "StagedOutputs",
    "VectorizeOptions",
    "VectorizeResult",
    "VectorizeSettings",
    "area_model",
    "block_windows",
    "change_style",
    "check_outputs",
    "landcover_style",
    "list_layers",
    "loss_year_palette",
    "loss_year_style",
    "merge_layers",
    "min_area_filter",
    "pixel_areas",
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
