"""Workflows: a YAML list of named steps, validated whole before any work, rerun incrementally.

A workflow file (``geoseg run FILE``) names its steps in order. Each step has a ``kind``
(``synthetic``, ``predict``, ``vectorize``, ``change``, ``track``, ``train``, ``report``:
one module each in :mod:`geoseg.workflow._kinds`) and the keys of that kind; inputs are
*references*:

- ``STEP`` or ``STEP.OUTPUT``: an earlier step's output (``STEP@KEY`` picks one date or
  tile of a multi-map output, e.g. ``landcover@2020``);
- a catalog entry name (``nc-landsat7``, ``pucallpa-landsat``, ``pucallpa-landsat@1985``,
  ``demo-synthetic``), resolved through ``data_catalog.yaml`` and the data root;
- a path (relative to the current directory).

Loading (:func:`load_workflow`) checks everything that can be checked without doing the
work: unknown or missing keys (with a "did you mean"), value types and ranges (the same
options models as the CLI's), references to steps that do not exist (or come later),
catalog names, catalog files that are absent (with `geoseg data fetch NAME`), models and
input files, band counts against the model, output names that collide. A problem is one
line naming the file, the step (``steps[2]``) and the key. Nothing is written until all
of that passes.

Running a loaded workflow (what reruns, staging, the state file) is :mod:`._runner`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from geoseg.cluster import DaskOptions
from geoseg.errors import ConfigError
from geoseg.files import sha256_file
from geoseg.options import InFile, Options, option, suggest
from geoseg.workflow._kind import StepModel, kinds
from geoseg.workflow._plan import Planner
from geoseg.workflow._spec import PathLike, Step, Workflow, slug
from geoseg.yamlfile import read_yaml


class WorkflowFile(Options):
    """The top level of a workflow file."""

    what = "workflow"

    workflow: str | None = option(
        None, "The workflow's name: the STAC collection id and the GeoPackage name."
    )
    description: str = option("", "What the workflow does.")
    out_dir: str | None = option(
        None, "Output folder, relative to the current one [default: out/<workflow>]."
    )
    gpkg: str | None = option(
        None, "The GeoPackage's file name in the output folder [default: <workflow>.gpkg]."
    )
    dask: DaskOptions | None = option(
        None, "Where every step runs: {workers: N, scheduler: tcp://HOST:PORT}."
    )
    steps: list[dict[str, Any]] = option(..., "The steps, in order: each a mapping with name and kind.")


def read_workflow_file(path: PathLike) -> dict[str, Any]:
    """The workflow file as a mapping (strict YAML); a bare ``train:`` file becomes one step."""
    p = Path(path)
    doc = read_yaml(p, what="workflow file")
    if not isinstance(doc, dict):
        raise ConfigError("a workflow file is a mapping with a `steps:` list (or a `train:` section)", p)
    if "steps" not in doc and "train" in doc:
        extra = sorted(set(doc) - {"train", "workflow", "description", "out_dir"})
        if extra:
            raise ConfigError(f"unknown top-level key {extra[0]!r} beside `train:`", p)
        return {
            "workflow": doc.get("workflow") or p.stem,
            "description": doc.get("description", ""),
            "out_dir": doc.get("out_dir"),
            "steps": [{"name": "train", "kind": "train", **(doc["train"] or {})}],
        }
    if "steps" not in doc and "track" in doc:
        raise ConfigError(
            "is a `geoseg track` parameter file, not a workflow; run workflows/track_deforestation.yaml "
            "(the same job as workflow steps) or the `geoseg track` command line in its comments",
            p,
        )
    return doc


def load_workflow(path: PathLike, out_dir: PathLike | None = None) -> Workflow:
    """Read, validate and plan a workflow file; raises ``GeosegError`` (nothing is written).

    ``out_dir`` overrides the file's ``out_dir`` (default ``out/<workflow name>``).
    """
    p = Path(path)
    top = WorkflowFile.build(read_workflow_file(p), InFile(p))
    name = top.workflow or p.stem
    if not top.steps:
        raise ConfigError("steps must be a non-empty list of steps", p)
    out = _output_folder(out_dir, top.out_dir, name)
    gpkg = out / (top.gpkg or f"{slug(name)}.gpkg")
    if gpkg.suffix.lower() != ".gpkg" or gpkg.parent != out:
        raise ConfigError(f"gpkg must be a file name ending in .gpkg, got {top.gpkg!r}", p)
    planner = Planner(p, out, gpkg)
    steps = tuple(planner.add(plan_step(planner, raw, i)) for i, raw in enumerate(top.steps))
    planner.check_collisions()
    dask = top.dask or DaskOptions()
    return Workflow(
        p.absolute(), name, top.description, out, gpkg, steps, dask.workers, dask.scheduler,
        sha256_file(p),
    )  # fmt: skip


def _output_folder(given: PathLike | None, in_file: str | None, name: str) -> Path:
    """The run's output folder: ``given`` (``--out-dir``), else the file's ``out_dir``, else
    ``out/<workflow name>``; relative to the current folder, made absolute."""
    return (Path(given) if given is not None else Path(in_file or Path("out") / name)).absolute()


def output_folder(path: PathLike) -> Path:
    """The output folder ``geoseg run FILE`` writes into, read from the file without planning it.

    ``geoseg train FILE`` puts a relative ``out`` there too, so both commands write a
    training file's model to the same place. A file that is not a workflow (a bare
    training config) has ``out/<file stem>``.
    """
    p = Path(path)
    doc = read_yaml(p, what="workflow file")
    if isinstance(doc, dict) and ("steps" in doc or "train" in doc):
        in_file, name = doc.get("out_dir"), doc.get("workflow") or p.stem
        if isinstance(in_file, str | None) and isinstance(name, str):
            return _output_folder(None, in_file, name)
    return _output_folder(None, None, p.stem)


def plan_step(planner: Planner, raw: Any, index: int) -> Step:
    """Check step ``index`` against its kind's model and plan it."""
    where = f"steps[{index}]"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a mapping with name and kind, got {raw!r}", planner.path)
    known = kinds()
    kind = raw.get("kind")
    if kind not in known:
        names = list(known)
        raise ConfigError(
            f"{where}.kind must be one of {', '.join(names)}, got {kind!r}{suggest(str(kind), names)}",
            planner.path,
        )
    k = known[kind]
    spec: StepModel = k.model.build(raw, InFile(planner.path, where, ("name", "kind", "description")))
    if spec.name in planner.steps:
        raise ConfigError(
            f"{where}.name: a step called {spec.name!r} already exists; names must be unique", planner.path
        )
    split = getattr(spec, "split", None)
    planner.split = split if isinstance(split, str) else "validation"
    step = Step(
        spec.name, kind, spec.params(), planner.references(spec, where), {}, {}, spec,
        main=k.outputs[0] if k.outputs else "",
    )  # fmt: skip
    return k.plan(planner, step, spec, where)
