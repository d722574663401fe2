"""``change``: two class maps compared: change raster, transition tables, change polygons, report."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from geoseg.options import option
from geoseg.temporal import ChangeSettings
from geoseg.workflow._context import Context, Outcome, provenance_tags, report_back
from geoseg.workflow._kind import Kind, StepModel, StepRef, register
from geoseg.workflow._spec import Item, Step

if TYPE_CHECKING:
    from geoseg.workflow._plan import Planner

LAYERS = ("change", "transitions", "transition_matrix", "class_change")


class ChangeStep(StepModel, ChangeSettings):
    key_order = (
        "before",
        "after",
        "from",
        "to",
        "min_area_ha",
        "landcover",
        "report",
        "layer_prefix",
        "block_size",
    )

    kind: Literal["change"] = "change"
    before: StepRef = option(..., "The earlier class map.")
    after: StepRef = option(..., "The later class map (reprojected onto the earlier one's grid).")
    report: bool = option(True, "Also write the change maps, charts and tables (NAME_report/).")
    layer_prefix: str = option("", "Prefix of the step's layer names (two change steps in one workflow).")


def plan(planner: Planner, step: Step, spec: Any, where: str) -> Step:
    for key in ("before", "after"):
        planner.one_raster(step, key, where)
        planner.no_imagery(step, key, where)
    names = list(LAYERS) + (["landcover_before", "landcover_after"] if spec.landcover else [])
    outs: dict[str, tuple[Item, ...]] = {"raster": (Item(planner.out / f"{step.name}.tif"),)}
    if spec.report:
        outs["report"] = (Item(planner.out / f"{step.name}_report"),)
    return dataclasses.replace(step, outputs=outs, layers={n: spec.layer_prefix + n for n in names})


def run(ctx: Context) -> Outcome:
    from geoseg.api import change
    from geoseg.temporal import ChangeOptions, change_styles

    s: ChangeStep = ctx.step.spec
    before, after = ctx.inputs["before"][0], ctx.inputs["after"][0]
    scratch = ctx.staging / "layers.gpkg"
    report = ctx.step.outputs.get("report")
    settings = {k: getattr(s, k) for k in ChangeSettings.model_fields}
    opts = ChangeOptions.build({**settings, "workers": ctx.workers, "scheduler": ctx.scheduler})
    res = change(
        before.path, after.path, scratch, opts, raster=ctx.staged(ctx.step.outputs["raster"][0].path),
        report_dir=ctx.staged(report[0].path) if report else None,
        report_back=report_back(ctx, report[0].path) if report else None, progress=ctx.progress,
        tags=provenance_tags(ctx),
    )  # fmt: skip
    changed = float(res.area_ha.sum() - np.trace(res.area_ha))
    summary = {
        "changed_ha": round(changed, 4),
        "compared_ha": round(float(res.area_ha.sum()), 4),
        "input_dates": [{"date": before.date}, {"date": after.date}],
    }
    return Outcome(scratch, dict(res.layers), change_styles(res), summary)


register(
    Kind("change", ChangeStep, plan, run, ("raster", "report"), {"raster": "change", "report": "folder"})
)
