"""``synthetic``: a synthetic region (imagery and its known land cover) to map and score."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BeforeValidator, field_validator

from geoseg.errors import ConfigError
from geoseg.options import Options, option
from geoseg.temporal import parse_date
from geoseg.workflow._context import Context, Outcome
from geoseg.workflow._kind import Kind, StepModel, register
from geoseg.workflow._spec import Item, Step

if TYPE_CHECKING:
    from geoseg.workflow._plan import Planner

# 65536^2 is 34 GB of 4-band uint16; a larger region is real imagery's job
MIN_SYNTHETIC_SIZE, MAX_SYNTHETIC_SIZE = 64, 65536


def _date_text(value: Any) -> Any:
    # YAML reads 2024-07-01 as a date; the step keeps the text as written
    return (
        value.isoformat() if isinstance(value, dt.date) else str(value) if isinstance(value, int) else value
    )


class RegionSize(Options):
    """The size of a synthetic region (also ``geoseg demo --size``)."""

    size: int = option(
        2048,
        "Region width and height in pixels.",
        ge=MIN_SYNTHETIC_SIZE,
        le=MAX_SYNTHETIC_SIZE,
        unit="pixels",
    )


class SyntheticStep(StepModel, RegionSize):
    key_order = ("size", "seed", "bands", "after_change", "date", "pixel_size")

    kind: Literal["synthetic"] = "synthetic"
    seed: int = option(3, "Which synthetic region.")
    bands: Literal[4, 6] = option(4, "4 bands (blue, green, red, nir) or 6 (adds swir1, swir2).")
    after_change: bool = option(False, "The region after its clearings and regrowth.")
    date: Annotated[str, BeforeValidator(_date_text)] | None = option(
        None, "Nominal acquisition date (YYYY[-MM[-DD]])."
    )
    pixel_size: float = option(10.0, "Pixel size in metres.", ge=0.01)

    @field_validator("date")
    @classmethod
    def _parses(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                parse_date(v)
            except ConfigError as exc:
                raise ValueError(f": {exc}") from None
        return v


def plan(planner: Planner, step: Step, spec: Any, where: str) -> Step:
    d = spec.date
    return _with(step, outputs={
        "image": (Item(planner.out / f"{step.name}.tif", date=d),),
        "truth": (Item(planner.out / f"{step.name}_truth.tif", date=d),),
    })  # fmt: skip


def run(ctx: Context) -> Outcome:
    from geoseg.data import SceneSpec, write_scene

    s: SyntheticStep = ctx.step.spec
    scene = SceneSpec(s.size, s.size, seed=s.seed, bands=s.bands, pixel_size=s.pixel_size)
    image = ctx.step.outputs["image"][0].path
    truth = ctx.step.outputs["truth"][0].path
    write_scene(
        scene, ctx.staged(image), truth_path=ctx.staged(truth), date=2 if s.after_change else 1,
        progress=ctx.progress,
    )  # fmt: skip
    return Outcome(summary={"size": s.size, "seed": s.seed})


def _with(step: Step, **changes: Any) -> Step:
    import dataclasses

    return dataclasses.replace(step, **changes)


register(
    Kind("synthetic", SyntheticStep, plan, run, ("image", "truth"), {"image": "image", "truth": "truth"})
)
