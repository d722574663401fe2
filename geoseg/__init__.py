"""geoseg: land-cover mapping over whole regions with tiled segmentation on Dask.

The front door::

    import geoseg

    geoseg.predict("scene.tif", "forest-s2-rgb", "forest.tif", tile_size=512)
    geoseg.vectorize("forest.tif", "forest.gpkg", min_area_ha=0.5)
    geoseg.change("forest_2019.tif", "forest_2024.tif", "change.gpkg", report_dir="report")
    geoseg.track(["1985.tif", "1990.tif", "1995.tif"], "loss.gpkg", forest="forest")
    scene = geoseg.open_scene("scene.tif")  # a dask-backed xarray DataArray

Each takes the options of its operation as keywords, checked by that operation's options
model (``geoseg.inference.PredictOptions``, ``geoseg.vector.VectorizeOptions``, ...), or as
one ``options`` object. Importing geoseg is light and changes nothing in the caller's
environment: the packages behind these names load when first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# name -> the module that defines it; loaded on first use, so `import geoseg` (and
# `geoseg --help`) stays fast and never imports torch, GDAL or Dask by itself
_FRONT_DOOR = {
    "predict": "geoseg.api",
    "predict_many": "geoseg.api",
    "vectorize": "geoseg.api",
    "change": "geoseg.api",
    "track": "geoseg.api",
    "open_scene": "geoseg.inference",
    "predict_xr": "geoseg.inference",
    "load_workflow": "geoseg.workflow",
    "run_workflow": "geoseg.workflow",
}

__all__ = [
    "__version__",
    "change",
    "load_workflow",
    "open_scene",
    "predict",
    "predict_many",
    "predict_xr",
    "run_workflow",
    "track",
    "vectorize",
]

if TYPE_CHECKING:
    from geoseg.api import change, predict, predict_many, track, vectorize
    from geoseg.inference import open_scene, predict_xr
    from geoseg.workflow import load_workflow, run_workflow


def __getattr__(name: str) -> Any:
    module = _FRONT_DOOR.get(name)
    if module is None:
        raise AttributeError(f"module 'geoseg' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_FRONT_DOOR])
