"""The options of vectorising a class map, declared once."""

from __future__ import annotations

from typing import Literal

from geoseg.cluster import DaskOptions
from geoseg.options import Options, PathText, option

DEFAULT_LAYER = "landcover"
# 2048 px: ~4 MP of class codes a task, seconds of polygonising, few seams
DEFAULT_BLOCK = 2048


class VectorizeSettings(Options):
    """How a class map becomes polygons; the keys of a workflow's vectorize step too."""

    what = "vectorize"

    layer: str | None = option(
        None, f"Layer name [default: {DEFAULT_LAYER}; in a workflow, the step's name]."
    )
    min_area_ha: float | None = option(
        None,
        "Minimum mapping unit: smaller regions join the class they share the longest boundary with.",
        flag="--min-area",
        metavar="HECTARES",
        ge=0,
    )
    simplify_m: float | None = option(
        None,
        "Simplify edges by about this much, keeping neighbours' shared edges (no gaps, no overlaps).",
        flag="--simplify",
        metavar="METRES",
        ge=0,
    )
    connectivity: Literal[4, 8] = option(
        4, "Pixels touching only at a corner belong to one polygon with 8, to two with 4 (as GDAL)."
    )
    # 16 px: below that a block is mostly seam and the merge costs more than it saves
    block_size: int = option(DEFAULT_BLOCK, "Block side in pixels (one Dask task).", ge=16)


class VectorizeOptions(DaskOptions, VectorizeSettings):
    """Every option of ``geoseg vectorize`` / :func:`geoseg.vectorize`."""

    classes: PathText | None = option(
        None, "Class table (YAML, JSON or CSV of id,name[,colour]) when the raster names no classes."
    )
