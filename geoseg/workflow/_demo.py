"""The end-to-end demo: the README's first command, as a workflow ``geoseg run`` can rerun.

Everything it needs ships with geoseg (no download, no server). It writes a workflow file
into the output folder (``demo.yaml``) and runs it:

- two dates of a synthetic Sentinel-2-like region with known truth (the second after
  clearings and regrowth);
- land-cover maps of both dates with the shipped demo model, tile by tile on Dask
  (class COGs);
- polygons of both maps, change between them (change COG, change polygons, transition
  tables) and forest loss (first-loss-year COG, loss polygons by year), all polygons with a
  minimum mapping unit of ``DEMO_MIN_AREA_HA`` (0.5 ha);
- one GeoPackage holding every layer and table, with QGIS default styles and provenance;
- quick-looks with legends and an HTML report: a summary first (change, loss, accuracy,
  areas, the minimum mapping unit), then the maps, the change map beside its transition
  chart, area tables, and accuracy against the region's known truth (per date, and of the
  loss);
- STAC Items for every product and a Collection.

``real=True`` maps the Amazon validation tiles of the catalog with the forest model, scores
them against their masks (``geoseg.train.evaluate``) and shows every tile as image | mask |
map."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from geoseg.cluster import DaskOptions
from geoseg.errors import ModelError
from geoseg.options import option
from geoseg.workflow._kinds.synthetic import RegionSize

DEMO_MODEL = "demo-synthetic"


DEMO_SEED = 3  # a region the demo model never saw (it was trained on seed 7)


FOREST_MODEL = "forest-s2-rgb"


REAL_DATASET = "amazon-s2-rgb"


DATES = ("2020-07-01", "2024-07-01")  # nominal dates of the two synthetic scenes


# The demo's minimum mapping unit (50 pixels of 10 m), measured on the demo region (seed 3,
# 2048 px) against its known truth: of the 8,509 change polygons without one, 85 % were under
# 0.05 ha and 8,305 of the 8,314 under 0.5 ha were mostly spurious (edge slivers), while
# 99.8 % of the truly changed area lies in polygons of 0.5 ha or more (100 % at 0.2 ha, 99.5 %
# at 1 ha). Sieving the land-cover maps at 0.5 ha agrees best with the truth (0.9874 / 0.9849
# of the pixels for the two dates; 0.9871 / 0.9843 unsieved, and worse again at 1 ha), and
# 0.5 ha is the FAO's minimum area of a forest.
DEMO_MIN_AREA_HA = 0.5


@dataclass
class DemoResult:
    out_dir: Path
    products: dict[str, Path] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


def demo_workflow(size: int = 2048, seed: int = DEMO_SEED, model: str = DEMO_MODEL) -> dict[str, Any]:
    """The synthetic demo as a workflow document."""
    steps: list[dict[str, Any]] = []
    for k, date in enumerate(DATES, start=1):
        steps.append({"name": f"scene_date{k}", "kind": "synthetic", "size": size, "seed": seed,
                      "after_change": k == 2, "date": date})  # fmt: skip
    for k in (1, 2):
        steps.append(
            {"name": f"landcover_date{k}", "kind": "predict", "images": f"scene_date{k}", "model": model}
        )
    for k in (1, 2):
        steps.append({"name": f"polygons_date{k}", "kind": "vectorize", "map": f"landcover_date{k}",
                      "layer": f"landcover_date{k}", "min_area_ha": DEMO_MIN_AREA_HA})  # fmt: skip
    steps.append({"name": "change", "kind": "change", "before": "landcover_date1", "after": "landcover_date2",
                  "min_area_ha": DEMO_MIN_AREA_HA})  # fmt: skip
    steps.append({"name": "deforestation", "kind": "track", "maps": ["landcover_date1", "landcover_date2"],
                  "forest": ["forest"], "persist": 1, "min_area_ha": DEMO_MIN_AREA_HA})  # fmt: skip
    steps.append({
        "name": "report", "kind": "report",
        "title": f"geoseg demo: a synthetic {size} x {size} region at two dates",
        "accuracy": [{"name": f"date{k}", "map": f"landcover_date{k}", "truth": f"scene_date{k}.truth"}
                     for k in (1, 2)],
        "loss_accuracy": [{"name": "forest_loss", "before": "landcover_date1", "after": "landcover_date2",
                           "truth_before": "scene_date1.truth", "truth_after": "scene_date2.truth",
                           "forest": ["forest"]}],
    })  # fmt: skip
    return {
        "workflow": "geoseg-demo",
        "description": (
            f"A synthetic Sentinel-2-like region of {size} x {size} px at 10 m (seed {seed}) at two dates, "
            f"mapped with the model {model}, vectorised, compared, and scored against its known truth."
        ),
        "gpkg": "geoseg-demo.gpkg",
        "steps": steps,
    }


def real_workflow(model: str = FOREST_MODEL, dataset: str = REAL_DATASET) -> dict[str, Any]:
    """The real-data demo: forest maps of the Amazon validation tiles, scored on their masks."""
    return {
        "workflow": "geoseg-demo-real",
        "description": f"Forest / non-forest maps of the {dataset} validation tiles with {model}, "
        "scored against their masks.",
        "gpkg": "geoseg-demo-real.gpkg",
        "steps": [
            {
                "name": "forest",
                "kind": "predict",
                "images": dataset,
                "split": "validation",
                "model": model,
            },
            {
                "name": "report",
                "kind": "report",
                "title": f"Forest maps of the {dataset} validation tiles",
                "evaluate": {"model": model, "dataset": dataset, "split": "validation"},
                "max_maps": "all",  # every tile scored is shown: image | mask | map
            },
        ],
    }


def _check_real_model(model: str) -> None:
    """A clear message while the forest model is not shipped yet."""
    from geoseg.data import load_catalog

    p = Path(model)
    if p.suffix or "/" in model:
        return  # a path: the workflow checks it exists
    if model not in load_catalog():
        raise ModelError(
            f"model {model!r} is not in the catalog: the forest model is not shipped yet (it appears in "
            "geoseg/models/ and data_catalog.yaml once `geoseg run workflows/train_forest_amazon.yaml` has "
            "trained it and `geoseg model ship` shipped it); pass --model NAME_OR_PATH to use another "
            "3-band (red, green, blue) model"
        )


class DemoOptions(DaskOptions, RegionSize):
    """The options of ``geoseg demo`` / :func:`run_demo` (the region's size is the synthetic step's)."""

    seed: int = option(DEMO_SEED, "Which synthetic region (the model was trained on 7).")
    model: str | None = option(
        None, f"Catalog model name or checkpoint [default: {DEMO_MODEL}; with --real: {FOREST_MODEL}]."
    )
    real: bool = option(
        False, "Map the Amazon validation tiles of the catalog and score them against their masks."
    )
    force: bool = option(False, "Redo every step (by default a rerun skips what is done).")


def run_demo(
    out_dir: str | Path = "geoseg-demo",
    options: DemoOptions | None = None,
    *,
    progress: Any = None,
    on_event: Any = None,
    **keywords: Any,
) -> DemoResult:
    """Write the demo workflow into ``out_dir`` and run it (see the module docstring).

    ``options`` (or the same by name in ``keywords``) are :class:`DemoOptions`.
    ``progress(step)`` gives each step a ``Progress`` callback; ``on_event`` hears of each
    step (see :func:`geoseg.workflow.run_workflow`).
    """
    from geoseg.workflow._load import load_workflow
    from geoseg.workflow._runner import check_out_dir, run_workflow
    from geoseg.workflow._spec import STATE_FILE

    opts = DemoOptions.build({**(options.model_dump() if options else {}), **keywords})
    size, seed, model, real = opts.size, opts.seed, opts.model, opts.real
    workers, force = opts.workers, opts.force
    t0 = time.perf_counter()
    out = Path(out_dir).absolute()
    check_out_dir(out)
    if real:
        name = str(model or FOREST_MODEL)
        _check_real_model(name)
        doc = real_workflow(name)
    else:
        doc = demo_workflow(size, seed, str(model or DEMO_MODEL))
    text = (
        "# Written by `geoseg demo`; rerun it with `geoseg run` (steps already done are skipped).\n"
        + yaml.safe_dump(doc, sort_keys=False, width=100)
    )
    # Validate from a scratch copy first: a bad model or missing data must leave nothing behind.
    with tempfile.TemporaryDirectory(prefix="geoseg-demo-") as tmp:
        scratch = Path(tmp) / "demo.yaml"
        scratch.write_text(text)
        load_workflow(scratch, out)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    wf_path = out / ("demo_real.yaml" if real else "demo.yaml")
    if not wf_path.exists() or wf_path.read_text() != text:
        wf_path.write_text(text)
    try:
        wf = load_workflow(wf_path, out)
        run = run_workflow(
            wf, force=force, workers=workers, scheduler=opts.scheduler, on_event=on_event, progress=progress
        )
    except BaseException:
        # a folder this call made, in which no step finished, holds only the demo's
        # workflow file and the runner's lock: nothing to keep
        if created and not (out / STATE_FILE).exists():
            shutil.rmtree(out, ignore_errors=True)
        raise
    res = DemoResult(out, seconds=time.perf_counter() - t0)
    res.products = {"workflow": wf_path, **run.products}
    acc_path = out / "report" / "accuracy.json"
    if acc_path.exists():
        res.metrics = json.loads(acc_path.read_text())
        res.products["accuracy"] = acc_path
    res.products["report"] = out / "report" / "index.html"
    res.lines = _summary(res.metrics, real)
    if real:
        res.lines.append(_tiles_line(out))
    else:
        res.lines.append(
            f"minimum mapping unit {DEMO_MIN_AREA_HA:g} ha: smaller land-cover regions join their neighbours "
            "and smaller change and loss polygons are left out of the GeoPackage (the rasters and tables "
            "count every pixel)"
        )
    res.lines.append(
        f"{len(run.ran)} steps ran, {len(run.skipped)} skipped (unchanged) in {res.seconds:.1f} s"
    )
    return res


def _tiles_line(out: Path) -> str:
    """How many tiles the real demo's report shows, from the maps it wrote."""
    maps = sorted((out / "forest").glob("*.tif"))
    shown = len(list((out / "report").glob("forest_*_mask.png")))
    return (
        f"{len(maps)} tiles mapped; the report shows {shown} of them as image | mask | map, "
        "each scored against its mask"
    )


def _summary(m: dict[str, Any], real: bool) -> list[str]:
    lines = []
    if real and "evaluate" in m:
        e = m["evaluate"]
        lines.append(f"{e['dataset']} {e['split']}: accuracy {e['accuracy']:.3f}, mIoU {e['miou']:.3f}")
        if e.get("paper"):
            lines.append(f"  the paper's metric: F1 {e['paper']['f1']:.3f} over {e['paper']['tiles']} tiles")
    for k in (1, 2):
        s = m.get(f"date{k}")
        if s:
            lines.append(
                f"date {k}: accuracy against the known truth {s['accuracy']:.3f}, mIoU {s['miou']:.3f}"
            )
    loss = m.get("forest_loss")
    if loss:
        lines.append(
            f"forest lost between the dates: {loss['mapped_ha']:.1f} ha mapped, {loss['truth_ha']:.1f} ha in the "
            f"truth (loss pixels: precision {loss['precision']:.3f}, recall {loss['recall']:.3f})"
        )
    return lines
