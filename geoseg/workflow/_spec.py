"""What a workflow is: items, references, steps and the keys of each step kind."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from geoseg.raster import MAX_TILE

STATE_FILE = ".geoseg-run.json"


WORK_DIR = ".geoseg-run"


STATE_VERSION = 1


KINDS = ("synthetic", "predict", "vectorize", "change", "track", "train", "report")


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


MIN_SYNTHETIC_SIZE, MAX_SYNTHETIC_SIZE = 64, 65536


@dataclass(frozen=True)
class Param:
    """One key of a step kind: its type, default and whether it must be given."""

    type: str  # int, float, bool, str, strs, date, dates, classes, ref, refs, model, mapping, list
    default: Any = None
    required: bool = False
    choices: tuple[Any, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    keys: Mapping[str, Param] | None = None  # for mapping / list-of-mapping values
    help: str = ""


COMMON = {
    "name": Param("str", required=True, help="the step's name: how later steps refer to its outputs"),
    "kind": Param("str", required=True, choices=KINDS),
    "description": Param("str", ""),
}


_CLASSIFY = {
    "method": Param("str", "spectral", choices=("spectral",)),
    "ndvi_min": Param("float", 0.70),
    "nbr_min": Param("float", 0.28),
    "water_ndvi_max": Param("float", 0.10),
    "water_nbr_min": Param("float", 0.0),
}


_ACCURACY = {
    "name": Param("str", required=True),
    "map": Param("ref", required=True),
    "truth": Param("ref", required=True),
}


_LOSS_ACCURACY = {
    "name": Param("str", required=True),
    "before": Param("ref", required=True),
    "after": Param("ref", required=True),
    "truth_before": Param("ref", required=True),
    "truth_after": Param("ref", required=True),
    "forest": Param("classes", ["forest"]),
}


_EVALUATE = {
    "model": Param("model", required=True),
    "dataset": Param("str", required=True),
    "split": Param("str", "validation"),
}


SPECS: dict[str, dict[str, Param]] = {
    "synthetic": {
        # 65536^2 is 34 GB of 4-band uint16; a larger region is real imagery's job
        "size": Param("int", 2048, minimum=MIN_SYNTHETIC_SIZE, maximum=MAX_SYNTHETIC_SIZE),
        "seed": Param("int", 3),
        "bands": Param("int", 4, choices=(4, 6)),
        "after_change": Param("bool", False, help="the region after its clearings and regrowth"),
        "date": Param("date", None, help="nominal acquisition date (YYYY[-MM[-DD]])"),
        "pixel_size": Param("float", 10.0, minimum=0.01),
    },
    "predict": {
        "images": Param("refs", required=True),
        "model": Param("model", required=True),
        "split": Param("str", "validation", help="the split of a label set to map"),
        "dates": Param("dates", None, help="the dates of a time series to map [default: all]"),
        "bands": Param("strs", None),
        "tile_size": Param("int", 512, minimum=16, maximum=MAX_TILE),
        "overlap": Param("int", 64, minimum=0),
        "batch_size": Param(
            "int", None, minimum=1, help="tiles per batch; default: sized to tile and device"
        ),
        "device": Param("str", "auto"),
        "backend": Param("str", "auto", choices=("auto", "torch", "onnx")),
        "threads": Param("int", 1, minimum=1),
        "tta": Param("bool", False, help="mean over the 8 rotations/flips of each tile (8x the model time)"),
        "zoom": Param(
            "float", None, help="resample each tile by this factor for the model [default: the model's]"
        ),
    },
    "vectorize": {
        "map": Param("ref", required=True),
        "layer": Param("str", None, help="layer name in the GeoPackage [default: the step name]"),
        "min_area_ha": Param("float", None, minimum=0),
        "simplify_m": Param("float", None, minimum=0),
        "connectivity": Param("int", 4, choices=(4, 8)),
        "block_size": Param("int", 2048, minimum=16),
    },
    "change": {
        "before": Param("ref", required=True),
        "after": Param("ref", required=True),
        "from": Param("classes", None),
        "to": Param("classes", None),
        "min_area_ha": Param("float", 0.0, minimum=0),
        "landcover": Param("bool", False, help="also the before/after land-cover polygons"),
        "report": Param("bool", True),
        "layer_prefix": Param("str", ""),
        "block_size": Param("int", 1024, minimum=16),
    },
    "track": {
        "maps": Param("refs", required=True),
        "dates": Param("dates", None),
        "forest": Param("classes", required=True),
        "persist": Param("int", None, minimum=1),
        "min_area_ha": Param("float", 0.0, minimum=0),
        "classify": Param("mapping", None, keys=_CLASSIFY),
        "bands": Param("strs", None, help="with classify: the imagery's band names in file order"),
        "report": Param("bool", True),
        "layer_prefix": Param("str", ""),
        "block_size": Param("int", 1024, minimum=16),
    },
    "train": {
        "config": Param("str", None, help="a training YAML (its train: section), instead of inline keys"),
    },
    "report": {
        "title": Param("str", None),
        "include": Param("strs", None, help="steps to show [default: every earlier step]"),
        "accuracy": Param("list", [], keys=_ACCURACY),
        "loss_accuracy": Param("list", [], keys=_LOSS_ACCURACY),
        "evaluate": Param("mapping", None, keys=_EVALUATE),
        "max_maps": Param("int", 12, minimum=1),
    },
}


TOP_KEYS = {
    "workflow": Param("str", None),
    "description": Param("str", ""),
    "out_dir": Param("str", None),
    "gpkg": Param("str", None),
    "dask": Param(
        "mapping", None, keys={"workers": Param("int", None, minimum=0), "scheduler": Param("str", None)}
    ),
    "steps": Param("list", required=True),
}


#: Output names of each kind; the first is what a bare ``STEP`` reference means.
OUTPUTS: dict[str, tuple[str, ...]] = {
    "synthetic": ("image", "truth"),
    "predict": ("map",),
    "vectorize": (),
    "change": ("raster", "report"),
    "track": ("loss_year", "classified", "report"),
    "train": ("model",),
    "report": ("html",),
}


#: What each raster output is, for STAC and for checking references.
OUTPUT_KINDS = {
    ("synthetic", "image"): "image",
    ("synthetic", "truth"): "truth",
    ("predict", "map"): "classmap",
    ("change", "raster"): "change",
    ("track", "loss_year"): "loss_year",
    ("track", "classified"): "classmap",
    ("train", "model"): "model",
    ("change", "report"): "folder",
    ("track", "report"): "folder",
    ("report", "html"): "folder",
}


CHANGE_LAYERS = ("change", "transitions", "transition_matrix", "class_change")


TRACK_LAYERS = ("forest_loss", "regrowth", "loss_by_period", "forest_by_date")


@dataclass(frozen=True)
class Step:
    """One validated step: its parameters (defaults filled in) and resolved references."""

    name: str
    kind: str
    params: dict[str, Any]
    refs: dict[str, tuple[Ref, ...]]  # "images", "model", "accuracy.0.map", ...
    outputs: dict[str, tuple[Item, ...]]  # planned, final paths
    layers: dict[str, str]  # scratch layer name -> layer name in the workflow GeoPackage
    train_config: Any = None  # TrainConfig for train steps

    def output(self, name: str | None = None) -> tuple[Item, ...]:
        """The items of output ``name`` (default: the kind's main output)."""
        names = OUTPUTS[self.kind]
        return self.outputs.get(name or (names[0] if names else ""), ())


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
