"""What a planned workflow is: items (files), resolved references, steps, the workflow."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STATE_FILE = ".geoseg-run.json"
WORK_DIR = ".geoseg-run"
STATE_VERSION = 1

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class Item:
    """One file a step reads or writes.

    ``path`` is the file to read (for a stack of single-band files, where its VRT will
    be); ``sources`` the files that make it up when they are not just ``path``. ``key``
    names it inside a multi-file output (a date or a tile), ``date`` its acquisition date.
    """

    path: Path
    key: str | None = None
    date: str | None = None
    sources: tuple[Path, ...] = ()
    band_names: tuple[str, ...] | None = None
    nodata: float | None = None
    classes: tuple[tuple[int, str], ...] | None = None  # value -> name, for catalog labels

    def files(self) -> tuple[Path, ...]:
        """The files whose content this item is."""
        return self.sources or (self.path,)


@dataclass(frozen=True)
class Ref:
    """A resolved reference: an earlier step's output, a catalog entry or a path."""

    text: str
    step: str | None = None
    output: str | None = None
    entry: str | None = None
    key: str | None = None  # @KEY selector
    items: tuple[Item, ...] = ()  # known now for catalog entries and paths


@dataclass(frozen=True)
class Step:
    """One validated step: its parameters (defaults filled in) and resolved references."""

    name: str
    kind: str
    params: dict[str, Any]
    refs: dict[str, tuple[Ref, ...]]  # "images", "model", "accuracy[0].map", ...
    outputs: dict[str, tuple[Item, ...]]  # planned, final paths
    layers: dict[str, str]  # scratch layer name -> layer name in the workflow GeoPackage
    spec: Any = None  # the step's validated model (its kind's StepModel)
    main: str = ""  # the output a bare ``STEP`` reference means

    def output(self, name: str | None = None) -> tuple[Item, ...]:
        """The items of output ``name`` (default: the kind's main output)."""
        return self.outputs.get(name or self.main, ())


@dataclass(frozen=True)
class Workflow:
    """A validated workflow, its steps planned against an output directory."""

    path: Path
    name: str
    description: str
    out_dir: Path
    gpkg: Path
    steps: tuple[Step, ...]
    workers: int | None = None
    scheduler: str | None = None
    sha256: str = ""

    def step(self, name: str) -> Step:
        for s in self.steps:
            if s.name == name:
                return s
        raise KeyError(name)


def slug(text: str) -> str:
    """``text`` as a file or layer name: letters, digits, - and _ (else ``workflow``)."""
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in text).strip("_") or "workflow"
