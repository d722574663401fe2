"""The options of vectorising a class map, declared once."""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import model_validator

from geoseg.cluster import DaskOptions
from geoseg.options import ClassPairs, Options, PathText, option
from geoseg.raster import LegendEntry, load_legend

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


class LegendOptions(Options):
    """What a class map's classes are called, when the map does not say or says otherwise:
    the same two options for vectorize, change and track."""

    classes: ClassPairs | None = option(
        None, "Name classes by id, e.g. 1=forest,2=cropland (over the map's own names) [default: the "
        "map's: geoseg metadata, a raster attribute table, category names, a .qml/.clr beside it; "
        "else the ids].", metavar="ID=NAME",
    )  # fmt: skip
    legend: PathText | None = option(
        None, "Legend file naming the classes: CSV, JSON or YAML of id,name[,colour], a QGIS .qml "
        "style or a .clr colour map.", metavar="FILE",
    )  # fmt: skip

    @model_validator(mode="before")
    @classmethod
    def _table_file_as_legend(cls, values: Any) -> Any:
        """``classes`` once took a class table file: one value that is not ID=NAME, given
        where ``legend`` is not, still means that file."""
        if not isinstance(values, dict):
            return values
        given = values.get("classes")
        if isinstance(given, (tuple, list)) and len(given) == 1:
            given = given[0]
        if (
            isinstance(given, (str, os.PathLike))
            and "=" not in os.fspath(given)
            and values.get("legend") is None
        ):
            values = {**values, "classes": None, "legend": os.fspath(given)}
        return values

    def legend_entries(self) -> list[LegendEntry] | None:
        """The classes named by ``legend`` (read now) and then ``classes``; None when neither is given."""
        if self.legend is None and self.classes is None:
            return None
        by_id = {e.id: e for e in (load_legend(self.legend) if self.legend is not None else [])}
        for i, name in self.classes or ():
            old = by_id.get(i)
            by_id[i] = LegendEntry(i, name, old.colour if old else None)
        return [by_id[i] for i in sorted(by_id)]


class VectorizeOptions(DaskOptions, LegendOptions, VectorizeSettings):
    """Every option of ``geoseg vectorize`` / :func:`geoseg.vectorize`."""

    force: bool = option(
        False, "Vectorize a raster even when it does not look like a class map (more than 255 values in a "
        "sample: imagery, a DEM).",
    )  # fmt: skip
