"""``vectorize``: a class map's polygons, as a layer of the workflow's GeoPackage."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Literal

from geoseg.options import option
from geoseg.vector import VectorizeSettings
from geoseg.workflow._context import Context, Outcome
from geoseg.workflow._kind import Kind, StepModel, StepRef, register
from geoseg.workflow._spec import Step

if TYPE_CHECKING:
    from geoseg.workflow._plan import Planner


class VectorizeStep(StepModel, VectorizeSettings):
    kind: Literal["vectorize"] = "vectorize"
    map: StepRef = option(..., "The class map: an earlier step's map, a catalog label raster or a path.")


def plan(planner: Planner, step: Step, spec: Any, where: str) -> Step:
    planner.one_raster(step, "map", where)
    planner.no_imagery(step, "map", where)
    layer = spec.layer or step.name
    return dataclasses.replace(step, layers={layer: layer})


def run(ctx: Context) -> Outcome:
    from geoseg.api import vectorize
    from geoseg.vector import VectorizeOptions, vectorize_style

    s: VectorizeStep = ctx.step.spec
    (layer,) = ctx.step.layers
    src = ctx.inputs["map"][0].path
    scratch = ctx.staging / "layers.gpkg"
    settings = {k: getattr(s, k) for k in VectorizeSettings.model_fields}
    opts = VectorizeOptions.build(
        {**settings, "layer": layer, "workers": ctx.workers, "scheduler": ctx.scheduler}
    )
    res = vectorize(src, scratch, opts, progress=ctx.progress)
    style = vectorize_style(layer, src, None)
    styles = {layer: style} if style is not None else {}
    return Outcome(scratch, {layer: res.polygons}, styles, {"polygons": res.polygons, "source": str(src)})


register(Kind("vectorize", VectorizeStep, plan, run))
