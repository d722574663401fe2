"""``track``: the first year of forest loss over a dated series of class maps (or imagery)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Literal

from geoseg.errors import ConfigError
from geoseg.options import option
from geoseg.temporal import TrackSettings
from geoseg.workflow._context import Context, Outcome, provenance_tags, readable, report_back
from geoseg.workflow._kind import Kind, StepModel, StepRefs, register
from geoseg.workflow._spec import Item, Step

if TYPE_CHECKING:
    from geoseg.workflow._plan import Planner

LAYERS = ("forest_loss", "regrowth", "loss_by_period", "forest_by_date")


class TrackStep(StepModel, TrackSettings):
    key_order = (
        "maps",
        "dates",
        "forest",
        "persist",
        "min_area_ha",
        "classify",
        "bands",
        "report",
        "layer_prefix",
        "block_size",
    )

    kind: Literal["track"] = "track"
    maps: StepRefs = option(
        ..., "A dated series (a time series or an earlier step's maps), or a list of maps."
    )
    report: bool = option(True, "Also write the loss maps, chart and tables (NAME_report/).")
    layer_prefix: str = option("", "Prefix of the step's layer names (two track steps in one workflow).")


def plan(planner: Planner, step: Step, spec: Any, where: str) -> Step:
    from geoseg.temporal import NEEDED, check_dates, check_persist

    if spec.classify is None:  # with classify, the maps are imagery
        planner.no_imagery(step, "maps", where)
    items = tuple(i for r in step.refs["maps"] for i in r.items)
    dates = list(spec.dates) if spec.dates else [i.date for i in items]
    if any(d is None for d in dates):
        raise ConfigError(
            f"{where}: the maps carry no dates; give dates: [one per map, oldest first]", planner.path
        )
    try:
        check_dates([str(d) for d in dates], len(items))
        check_persist(spec.persist, len(items))
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}", planner.path) from None
    params = {**step.params, "_dates": [str(d) for d in dates]}
    outs: dict[str, tuple[Item, ...]] = {"loss_year": (Item(planner.out / f"{step.name}_loss_year.tif"),)}
    if spec.classify is not None:
        outs["classified"] = tuple(
            Item(planner.out / f"{step.name}_classified" / f"{d}.tif", key=str(d), date=str(d)) for d in dates
        )
        names = (
            list(spec.bands) if spec.bands else (list(items[0].band_names) if items[0].band_names else None)
        )
        if names is None or not all(n in names for n in NEEDED):
            raise ConfigError(
                f"{where}.classify needs the bands {', '.join(NEEDED)} by name; give bands: [...] "
                "(the imagery's band names in file order)",
                planner.path,
            )
        params["_bands"] = names
    if spec.report:
        outs["report"] = (Item(planner.out / f"{step.name}_report"),)
    layers = {n: spec.layer_prefix + n for n in LAYERS}
    return dataclasses.replace(step, outputs=outs, params=params, layers=layers)


def run(ctx: Context) -> Outcome:
    from geoseg.api import track
    from geoseg.temporal import TrackOptions, track_styles

    s: TrackStep = ctx.step.spec
    p = ctx.step.params
    dates = list(p["_dates"])
    maps = [readable(i) if s.classify is not None else i.path for i in ctx.inputs["maps"]]
    scratch = ctx.staging / "layers.gpkg"
    report = ctx.step.outputs.get("report")
    settings = {k: getattr(s, k) for k in TrackSettings.model_fields}
    opts = TrackOptions.build({
        **settings, "dates": dates, "bands": p.get("_bands"), "workers": ctx.workers, "scheduler": ctx.scheduler,
    })  # fmt: skip
    classified = ctx.staged(ctx.step.outputs["classified"][0].path.parent) if s.classify is not None else None
    res = track(
        maps, scratch, opts, loss_year=ctx.staged(ctx.step.outputs["loss_year"][0].path),
        report_dir=ctx.staged(report[0].path) if report else None,
        report_back=report_back(ctx, report[0].path) if report else None, classified=classified,
        progress=ctx.progress, tags=provenance_tags(ctx),
    )  # fmt: skip
    summary = {
        "total_loss_ha": round(float(res.loss_ha.sum()), 4),
        "persist": res.persist,
        "input_dates": [{"date": d} for d in dates],
        "periods": res.period_table(),
    }
    return Outcome(scratch, dict(res.layers), track_styles(res), summary)


register(
    Kind(
        "track", TrackStep, plan, run, ("loss_year", "classified", "report"),
        {"loss_year": "loss_year", "classified": "classmap", "report": "folder"},
    )
)  # fmt: skip
