"""Data: the catalog of scenes, time series, label sets and models; downloads checked by sha256; synthetic scenes."""

from __future__ import annotations

from geoseg.data._catalog import Catalog, load_catalog
from geoseg.data._entries import (
    Archive,
    DatedRaster,
    Entry,
    FileRecord,
    LabelClass,
    LabelSetEntry,
    ModelEntry,
    SceneEntry,
    Source,
    Split,
    TimeSeriesEntry,
)
from geoseg.data._fetch import fetch
from geoseg.data._landscape import class_map
from geoseg.data._paths import CATALOG_ENV, DATA_ENV, MODELS_DIR, data_root, default_catalog_path
from geoseg.data._resolve import Resolved, catalog_image, resolve
from geoseg.data._scene import (
    BAND_NAMES,
    BARE_SOIL,
    BUILT_UP,
    CLASSES,
    CROPLAND,
    FOREST,
    GRASSLAND,
    SCALE,
    WATER,
    SceneSpec,
    scene_grid,
)
from geoseg.data._synthetic import change_events, change_truth, make_change, scene_bands, write_scene

__all__ = [
    "BAND_NAMES",
    "BARE_SOIL",
    "BUILT_UP",
    "CATALOG_ENV",
    "CLASSES",
    "CROPLAND",
    "DATA_ENV",
    "FOREST",
    "GRASSLAND",
    "MODELS_DIR",
    "SCALE",
    "WATER",
    "Archive",
    "Catalog",
    "DatedRaster",
    "Entry",
    "FileRecord",
    "LabelClass",
    "LabelSetEntry",
    "ModelEntry",
    "Resolved",
    "SceneEntry",
    "SceneSpec",
    "Source",
    "Split",
    "TimeSeriesEntry",
    "catalog_image",
    "change_events",
    "change_truth",
    "class_map",
    "data_root",
    "default_catalog_path",
    "fetch",
    "load_catalog",
    "make_change",
    "resolve",
    "scene_bands",
    "scene_grid",
    "write_scene",
]
