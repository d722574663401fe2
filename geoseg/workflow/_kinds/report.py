"""``report``: one HTML page over the workflow's products, with accuracy against known truth."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BeforeValidator

from geoseg.errors import ConfigError
from geoseg.options import Labels, Names, Options, option, suggest
from geoseg.workflow._context import Context, Outcome
from geoseg.workflow._kind import Kind, ModelRef, StepModel, StepRef, register
from geoseg.workflow._spec import Item, Step

if TYPE_CHECKING:
    from geoseg.workflow._plan import Planner


def _all_maps(value: Any) -> Any:
    if value == "all":
        return None  # no cap
    if isinstance(value, str):
        raise ValueError(f"must be a whole number or all, got {value!r}")
    return value


#: a number of quick-looks; ``all`` (or null): no cap
MaxMaps = Annotated[int | None, BeforeValidator(_all_maps)]


class Accuracy(Options):
    """A class map scored against its known truth."""

    name: str = option(..., "What the score is called in the report.")
    map: StepRef = option(..., "The class map.")
    truth: StepRef = option(..., "Its known truth (a class map on the same grid).")


class LossAccuracy(Options):
    """Forest loss between two maps scored against the loss between their truths."""

    name: str = option(..., "What the score is called in the report.")
    before: StepRef = option(..., "The earlier class map.")
    after: StepRef = option(..., "The later class map.")
    truth_before: StepRef = option(..., "The earlier truth.")
    truth_after: StepRef = option(..., "The later truth.")
    forest: Labels = option(("forest",), "The forest class(es).")


class Evaluate(Options):
    """A model scored on a catalog label set (the paper's metric beside the pooled scores)."""

    model: ModelRef = option(..., "A catalog model, a checkpoint path, or a train step.")
    dataset: str = option(..., "A label set of the catalog.")
    split: str = option("validation", "Its split to score on.")


class ReportStep(StepModel):
    kind: Literal["report"] = "report"
    title: str | None = option(None, "The page's title [default: the workflow's description].")
    include: Names | None = option(None, "Steps to show [default: every earlier step].")
    accuracy: list[Accuracy] = option([], "Class maps to score against their known truth.")
    loss_accuracy: list[LossAccuracy] = option([], "Forest loss to score against the truths' loss.")
    evaluate: Evaluate | None = option(None, "A model to score on a catalog label set.")
    max_maps: MaxMaps = option(
        12,
        "At most this many quick-looks (a gallery's tile is one), or all; the page says what it leaves out.",
        ge=1,
    )


def plan(planner: Planner, step: Step, spec: Any, where: str) -> Step:
    from geoseg.data import LabelSetEntry

    include = list(spec.include) if spec.include is not None else [
        s for s, st in planner.steps.items() if st.kind not in ("train", "report")
    ]  # fmt: skip
    for s in include:
        if s not in planner.steps:
            raise ConfigError(
                f"{where}.include: no earlier step {s!r}{suggest(s, list(planner.steps))}", planner.path
            )
    if spec.evaluate is not None:
        entry = planner.entry(spec.evaluate.dataset, where, "evaluate.dataset")
        if not isinstance(entry, LabelSetEntry):
            raise ConfigError(
                f"{where}.evaluate.dataset {spec.evaluate.dataset!r} is not a label set", planner.path
            )
        entry.require()
    for k, r in step.refs.items():
        if k.startswith(("accuracy", "loss_accuracy")) and len(r[0].items) != 1:
            raise ConfigError(
                f"{where}.{k}: {r[0].text!r} must be one raster; pick one with @KEY", planner.path
            )
    params = {**step.params, "include": include}
    return dataclasses.replace(step, outputs={"html": (Item(planner.out / step.name),)}, params=params)


def run(ctx: Context) -> Outcome:
    from geoseg.workflow._report_step import _report

    return _report(ctx)


register(Kind("report", ReportStep, plan, run, ("html",), {"html": "folder"}, whole_workflow=True))
