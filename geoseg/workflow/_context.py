"""What a step's runner gets: its inputs, a staging folder, Dask settings, a provenance record."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from geoseg.progress import Progress
from geoseg.vector import LayerStyle
from geoseg.workflow._spec import (
    Item,
    Step,
    Workflow,
)
from geoseg.workflow._state import HashCache, StepRecord


@dataclass
class Context:
    """Everything a step runner needs; see :mod:`geoseg.steps`."""

    workflow: Workflow
    step: Step
    staging: Path
    inputs: dict[str, list[Item]]
    hashes: HashCache
    records: dict[str, StepRecord]
    workers: int | None
    scheduler: str | None
    progress: Progress | None
    provenance: dict[str, Any]

    def staged(self, final: Path) -> Path:
        """Where a step writes ``final`` (a path in the output directory) until it succeeds;
        its folder exists."""
        staged = self.staging / final.relative_to(self.workflow.out_dir)
        staged.parent.mkdir(parents=True, exist_ok=True)
        return staged


@dataclass
class Outcome:
    """What a step made besides its planned files."""

    gpkg: Path | None = None  # scratch GeoPackage with the step's layers
    layer_counts: dict[str, int] = field(default_factory=dict)
    styles: dict[str, LayerStyle] = field(default_factory=dict)  # by scratch layer name
    summary: dict[str, Any] = field(default_factory=dict)


def provenance_tags(ctx: Context) -> dict[str, str]:
    """The step's provenance record as the tag every COG it writes carries."""
    return {"GEOSEG_PROVENANCE": json.dumps(ctx.provenance, sort_keys=True)}


def stack_vrt(item: Item) -> Path:
    """A VRT stacking ``item.sources`` into one image with the catalog's band names."""
    from geoseg.raster import write_stack_vrt

    return write_stack_vrt(item.path, item.sources, item.band_names, item.nodata)


def readable(item: Item) -> Path:
    """The file to open for ``item``: itself, or the VRT of its band files."""
    return stack_vrt(item) if item.sources else item.path


def report_back(ctx: Context, folder: Path) -> tuple[str, str] | None:
    """A link from the step's own report ``folder`` (its final path) to the workflow report
    that shows the step, when a later report step does: ``(relative href, its title)``."""
    for step in ctx.workflow.steps:
        if step.kind == "report" and ctx.step.name in step.params.get("include", ()):
            page = step.outputs["html"][0].path / "index.html"
            title = step.params.get("title") or f"geoseg: {ctx.workflow.name}"
            return os.path.relpath(page, folder), f"{title} (the workflow's report)"
    return None
