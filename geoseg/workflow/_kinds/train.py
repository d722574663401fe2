"""``train``: a model trained from a training config (inline keys or ``config: FILE``)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import ConfigDict

from geoseg.errors import ConfigError
from geoseg.options import InFile, option
from geoseg.workflow._context import Context, Outcome
from geoseg.workflow._kind import Kind, StepModel, register
from geoseg.workflow._spec import Item, Ref, Step

if TYPE_CHECKING:
    from geoseg.workflow._plan import Planner


class TrainStep(StepModel):
    # the inline keys are the training config's own, checked by its model in plan(); a
    # relative out is in the workflow's output folder, like every other step's output
    model_config = ConfigDict(extra="allow")

    kind: Literal["train"] = "train"
    config: str | None = option(None, "A training YAML (its train: section), instead of inline keys.")


def plan(planner: Planner, step: Step, spec: Any, where: str) -> Step:
    from geoseg.data import LabelSetEntry
    from geoseg.files import check_writable
    from geoseg.training import TrainConfig, in_folder, load_config

    body = dict(spec.model_extra or {})
    if spec.config is not None:
        if body:
            raise ConfigError(
                f"{where}: give either config or inline train keys, not both ({sorted(body)[0]})",
                planner.path,
            )
        cfg = load_config(spec.config, base=planner.out)
    else:
        # refused at once when it names a shipped model (geoseg/models/): shipping is `geoseg model ship`
        cfg = TrainConfig.build(in_folder(body, planner.out), InFile(planner.path, where))
    if cfg.dataset is not None:
        entry = planner.entry(cfg.dataset, where, "dataset")
        if not isinstance(entry, LabelSetEntry):
            raise ConfigError(
                f"{where}: dataset {cfg.dataset!r} is a {entry.kind}, not a labelset", planner.path
            )
        entry.require()
    model = Path(cfg.out).absolute()
    if not model.is_relative_to(planner.out):  # the output folder is checked (and made) by the runner
        check_writable(cfg.out)  # its folder exists and is writable: checked now, not after the data loads
    params = {"config": cfg.model_dump(mode="json")}
    refs: dict[str, tuple[Ref, ...]] = {}
    if cfg.pseudo_labels is not None:
        # The teacher is an input like any model: an earlier train step (which then runs
        # first), a catalog model or a checkpoint, fingerprinted by its sha256, so a
        # retrained teacher retrains the student
        teacher = planner.resolve_model(cfg.pseudo_labels.teacher, where, "pseudo_labels.teacher")
        refs["teacher"] = (teacher,)
        cfg = cfg.replace(pseudo_labels=cfg.pseudo_labels.replace(teacher=str(teacher.items[0].path)))
    return dataclasses.replace(step, params=params, refs=refs, outputs={"model": (Item(model),)}, spec=cfg)


def run(ctx: Context) -> Outcome:
    from geoseg.training import train

    model = Path(ctx.step.spec.out).absolute()
    if model.is_relative_to(ctx.workflow.out_dir):  # e.g. out: models/forest.safetensors
        model.parent.mkdir(parents=True, exist_ok=True)
    result = train(ctx.step.spec, progress=ctx.progress)
    return Outcome(summary={"validation": result.scores.as_dict(), "epochs": len(result.history)})


register(Kind("train", TrainStep, plan, run, ("model",), {"model": "model"}, in_place=True))
