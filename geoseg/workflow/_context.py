"""What a step's runner gets: its inputs, a staging folder, Dask settings, a provenance record."""

from __future__ import annotations

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
