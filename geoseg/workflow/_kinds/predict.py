"""``predict``: class maps of imagery with a model: one scene, a mosaic, or every date or tile."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from geoseg.errors import ConfigError
from geoseg.inference import PredictSettings
from geoseg.options import Labels, option
from geoseg.workflow._context import Context, Outcome, provenance_tags, readable
from geoseg.workflow._kind import Kind, ModelRef, StepModel, StepRefs, register
from geoseg.workflow._spec import Item, Step

if TYPE_CHECKING:
    from geoseg.workflow._plan import Planner


class PredictStep(StepModel, PredictSettings):
    kind: Literal["predict"] = "predict"
    images: StepRefs = option(..., "The imagery: an earlier step, a catalog entry (scene, time series, "
                              "label set) or a path; several scenes form a mosaic.")  # fmt: skip
    model: ModelRef = option(..., "A catalog model, a checkpoint path, or a train step.")
    split: str = option("validation", "The split of a label set to map.")
    dates: Labels | None = option(None, "The dates of a time series to map [default: all].")


def plan(planner: Planner, step: Step, spec: Any, where: str) -> Step:
    refs = step.refs["images"]
    for r in refs:
        if planner.output_kind(r) not in ("image", None):
            raise ConfigError(f"{where}.images: {r.text!r} is not imagery", planner.path)
    groups = [r.items for r in refs]
    if len(groups) == 1 and len(groups[0]) > 1:
        items = groups[0]
        if spec.dates:
            wanted = set(spec.dates)
            items = tuple(i for i in items if i.key in wanted)
            missing = wanted - {i.key for i in items}
            if missing:
                raise ConfigError(
                    f"{where}.dates: {sorted(missing)[0]} is not in {refs[0].text}", planner.path
                )
        outs = tuple(Item(planner.out / step.name / f"{i.key}.tif", key=i.key, date=i.date) for i in items)
        inputs: list[tuple[Item, ...]] = [(i,) for i in items]
        step = dataclasses.replace(
            step, refs={**step.refs, "images": (dataclasses.replace(refs[0], items=items),)}
        )
    else:
        if any(len(g) != 1 for g in groups):
            raise ConfigError(
                f"{where}.images: give one time series or label set, or scenes to mosaic, not both",
                planner.path,
            )
        outs = (Item(planner.out / f"{step.name}.tif", date=groups[0][0].date),)
        inputs = [tuple(g[0] for g in groups)]
    model = step.refs["model"][0].items[0].path
    if step.refs["model"][0].step is None and all(r.step is None for r in refs):
        _check_bands(planner, model, inputs[0], spec, where)  # both known now
    return dataclasses.replace(step, outputs={"map": outs})


def _check_bands(planner: Planner, model: Path, images: tuple[Item, ...], spec: Any, where: str) -> None:
    """The model's band count against the first input's, before any work."""
    from geoseg.inference import read_spec
    from geoseg.raster import open_raster

    m = read_spec(model)
    first = images[0]
    if spec.bands:
        count = len(spec.bands)
    elif first.sources:
        count = len(first.sources)
    else:
        count = open_raster(first.path, require_crs=False).count
        if count != len(m.bands):
            names = {n.lower() for n in open_raster(first.path, require_crs=False).band_names}
            if all(b.lower() in names for b in m.bands):
                count = len(m.bands)
    if count != len(m.bands):
        raise ConfigError(
            f"{where}: model {model.name} expects {len(m.bands)} bands ({', '.join(m.bands)}) but "
            f"{first.path.name} has {count}; choose bands with bands: [...]",
            planner.path,
        )


def run(ctx: Context) -> Outcome:
    from geoseg.api import predict_many
    from geoseg.inference import PredictOptions

    s: PredictStep = ctx.step.spec
    model = ctx.inputs["model"][0].path
    items = ctx.inputs["images"]
    outs = ctx.step.outputs["map"]
    groups = [items] if len(outs) == 1 else [[i for i in items if i.key == o.key] for o in outs]
    settings = {k: getattr(s, k) for k in PredictSettings.model_fields}
    opts = PredictOptions.build({**settings, "workers": ctx.workers, "scheduler": ctx.scheduler})
    jobs = [([readable(i) for i in g], ctx.staged(o.path)) for g, o in zip(groups, outs, strict=True)]
    results = predict_many(jobs, model, opts, progress=ctx.progress, tags=provenance_tags(ctx))
    maps = [
        {"map": o.key or ctx.step.name, "tiles": r.tiles, "seconds": round(r.seconds, 2),
         "megapixels": round(r.megapixels, 3)}
        for o, r in zip(outs, results, strict=True)
    ]  # fmt: skip
    return Outcome(summary={"maps": maps})


register(Kind("predict", PredictStep, plan, run, ("map",), {"map": "classmap"}))
