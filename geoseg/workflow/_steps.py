"""What each kind of workflow step does: thin calls into the library, plus the run report.

:mod:`geoseg.workflow` validates and plans steps, :mod:`geoseg.runner` decides which to
run and moves their files into place; a runner here gets a :class:`~geoseg.runner.Context`
(inputs, the staging folder, Dask settings, a provenance record) and writes its outputs to
``ctx.staged(final_path)``. Vector layers go to a scratch GeoPackage that the workflow
merges into its own. Every COG a step writes carries the step's provenance record as
``GEOSEG_PROVENANCE`` (JSON: model name and sha256, inputs and their sha256, parameters,
geoseg version)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from geoseg.progress import Parts

if TYPE_CHECKING:
    from geoseg.vector import LayerStyle
    from geoseg.workflow._context import Context
    from geoseg.workflow._spec import Item
from geoseg.workflow._context import Outcome
from geoseg.workflow._report_step import _report


def run(ctx: Context) -> Outcome:
    """Run ``ctx.step`` with the runner of its kind."""
    runner = {
        "synthetic": _synthetic,
        "predict": _predict,
        "vectorize": _vectorize,
        "change": _change,
        "track": _track,
        "train": _train,
        "report": _report,
    }[ctx.step.kind]
    return runner(ctx)


def _tags(ctx: Context) -> dict[str, str]:
    return {"GEOSEG_PROVENANCE": json.dumps(ctx.provenance, sort_keys=True)}


def _client_settings(ctx: Context) -> dict[str, Any]:
    return {"workers": ctx.workers, "scheduler": ctx.scheduler}


def _synthetic(ctx: Context) -> Outcome:
    from geoseg.data import SceneSpec, write_scene

    p = ctx.step.params
    spec = SceneSpec(p["size"], p["size"], seed=p["seed"], bands=p["bands"], pixel_size=p["pixel_size"])
    image = ctx.step.outputs["image"][0].path
    truth = ctx.step.outputs["truth"][0].path
    write_scene(
        spec, ctx.staged(image), truth_path=ctx.staged(truth), date=2 if p["after_change"] else 1,
        progress=ctx.progress,
    )  # fmt: skip
    return Outcome(summary={"size": p["size"], "seed": p["seed"]})


def stack_vrt(item: Item) -> Path:
    """A VRT stacking ``item.sources`` into one image with the catalog's band names."""
    from geoseg.raster import write_stack_vrt

    return write_stack_vrt(item.path, item.sources, item.band_names, item.nodata)


def _readable(item: Item) -> Path:
    return stack_vrt(item) if item.sources else item.path


def _predict(ctx: Context) -> Outcome:
    from concurrent.futures import ThreadPoolExecutor

    from geoseg.cluster import close_client
    from geoseg.inference import connect, predict
    from geoseg.raster import open_region

    p = ctx.step.params
    model = ctx.inputs["model"][0].path
    items = ctx.inputs["images"]
    outs = ctx.step.outputs["map"]
    groups = [items] if len(outs) == 1 else [[i for i in items if i.key == o.key] for o in outs]
    # one cluster for all of the step's maps; forked when safe (no other thread runs GDAL
    # here); none with workers 0: this process predicts them, one after another
    here = ctx.workers == 0 and not ctx.scheduler
    client = None if here else connect(ctx.scheduler, ctx.workers, p["threads"])
    try:
        # every map's tile count up front (a file open each), so the count's total is right
        # from the first tile on, whichever map finishes first
        totals = [
            len(open_region([_readable(i) for i in g]).grid.tiles(p["tile_size"], p["overlap"]))
            for g in groups
        ]
        bar = Parts(ctx.progress, totals)  # tiles done of all maps, summed

        def one(k: int) -> dict[str, Any]:
            out = outs[k]
            r = predict(
                [_readable(i) for i in groups[k]], model, ctx.staged(out.path),
                tile_size=p["tile_size"], overlap=p["overlap"], batch_size=p["batch_size"], device=p["device"],
                backend=p["backend"], threads=p["threads"], client=client, workers=0 if here else None,
                bands=p["bands"], progress=bar.part(k), tags=_tags(ctx), tta=p["tta"], zoom=p["zoom"],
            )  # fmt: skip
            return {"map": out.key or ctx.step.name, "tiles": r.tiles, "seconds": round(r.seconds, 2),
                    "megapixels": round(r.megapixels, 3)}  # fmt: skip

        # Maps smaller than a batch per worker (a label set's 512^2 tiles) would leave all
        # but one worker idle one after another: as many maps at a time as the cluster has
        # worker threads share it (15 Amazon tiles on 2 workers: 8.2 -> 4.5 s).
        lanes = max(1, min(len(outs), sum(client.nthreads().values()))) if client is not None else 1
        with ThreadPoolExecutor(lanes, thread_name_prefix="geoseg-map") as pool:
            results = list(pool.map(one, range(len(outs))))
    finally:
        if client is not None:
            close_client(client)  # a remote scheduler's client owns no cluster
    return Outcome(summary={"maps": results})


def _train(ctx: Context) -> Outcome:
    from geoseg.training import train

    result = train(ctx.step.train_config, progress=ctx.progress)
    return Outcome(summary={"validation": result.scores.as_dict(), "epochs": len(result.history)})


def _vectorize(ctx: Context) -> Outcome:
    from geoseg.raster import read_classes
    from geoseg.vector import landcover_style, vectorize

    p = ctx.step.params
    (layer,) = ctx.step.layers
    src = ctx.inputs["map"][0].path
    scratch = ctx.staging / "layers.gpkg"
    res = vectorize(
        src, scratch, layer=layer, min_area_ha=p["min_area_ha"], simplify_m=p["simplify_m"],
        connectivity=p["connectivity"], block_size=p["block_size"], progress=ctx.progress, **_client_settings(ctx),
    )  # fmt: skip
    classes = read_classes(src)
    styles = {layer: landcover_style(layer, classes)} if classes else {}
    return Outcome(scratch, {layer: res.polygons}, styles, {"polygons": res.polygons, "source": str(src)})


def _change(ctx: Context) -> Outcome:
    from geoseg.temporal import detect_change
    from geoseg.vector import change_style, landcover_style

    p = ctx.step.params
    before, after = ctx.inputs["before"][0], ctx.inputs["after"][0]
    scratch = ctx.staging / "layers.gpkg"
    report = ctx.step.outputs.get("report")
    res = detect_change(
        before.path, after.path, scratch, raster=ctx.staged(ctx.step.outputs["raster"][0].path),
        from_classes=p["from"], to_classes=p["to"], min_area_ha=p["min_area_ha"], landcover=p["landcover"],
        report_dir=ctx.staged(report[0].path) if report else None, block_size=p["block_size"],
        progress=ctx.progress, tags=_tags(ctx), **_client_settings(ctx),
    )  # fmt: skip
    classes = list(res.classes)
    pairs = [(i, j) for i, j in res.selected if res.pixels[i, j] > 0]
    styles: dict[str, LayerStyle] = {"change": change_style("change", classes, pairs)}
    for name in ("landcover_before", "landcover_after"):
        styles[name] = landcover_style(name, classes)
    changed = float(res.area_ha.sum() - np.trace(res.area_ha))
    summary = {
        "changed_ha": round(changed, 4),
        "compared_ha": round(float(res.area_ha.sum()), 4),
        "input_dates": [{"date": before.date}, {"date": after.date}],
    }
    return Outcome(scratch, dict(res.layers), styles, summary)


def _track(ctx: Context) -> Outcome:
    from geoseg.temporal import track_loss
    from geoseg.vector import loss_year_style, single_style

    p = ctx.step.params
    dates = list(p["_dates"])
    maps = [i.path for i in ctx.inputs["maps"]]
    imagery = None
    if p["classify"] is not None:
        from geoseg.temporal import ForestThresholds, classify_series, open_imagery

        c = p["classify"]
        t = ForestThresholds(c["ndvi_min"], c["nbr_min"], c["water_ndvi_max"], c["water_nbr_min"])
        images = [_readable(i) for i in ctx.inputs["maps"]]
        folder = ctx.staged(ctx.step.outputs["classified"][0].path.parent)
        maps = classify_series(
            images, dates, folder, band_names=p["_bands"], thresholds=t, progress=ctx.progress
        )
        if p["report"]:
            src = open_imagery(images[0], p["_bands"])
            order = [b.index for b in src.bands]
            names = "/".join(b.name.upper() for b in src.bands)
            imagery = [(dates[k], images[k], order, names) for k in (0, len(images) - 1)]
    scratch = ctx.staging / "layers.gpkg"
    report = ctx.step.outputs.get("report")
    res = track_loss(
        maps, dates, p["forest"], scratch, loss_year=ctx.staged(ctx.step.outputs["loss_year"][0].path),
        persist=p["persist"], min_area_ha=p["min_area_ha"],
        report_dir=ctx.staged(report[0].path) if report else None, block_size=p["block_size"],
        report_imagery=imagery, progress=ctx.progress, tags=_tags(ctx), **_client_settings(ctx),
    )  # fmt: skip
    years = res.years[1:]
    styles = {
        "forest_loss": loss_year_style("forest_loss", years),
        "regrowth": single_style("regrowth", "year", years, (65, 171, 93), "regrowth by"),
    }
    summary = {
        "total_loss_ha": round(float(res.loss_ha.sum()), 4),
        "persist": res.persist,
        "input_dates": [{"date": d} for d in dates],
        "periods": res.period_table(),
    }
    return Outcome(scratch, dict(res.layers), styles, summary)
