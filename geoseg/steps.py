"""What each kind of workflow step does: thin calls into the library, plus the run report.

:mod:`geoseg.workflow` validates and plans steps, :mod:`geoseg.runner` decides which to
run and moves their files into place; a runner here gets a :class:`~geoseg.runner.Context`
(inputs, the staging folder, Dask settings, a provenance record) and writes its outputs to
``ctx.staged(final_path)``. Vector layers go to a scratch GeoPackage that the workflow
merges into its own. Every COG a step writes carries the step's provenance record as
``GEOSEG_PROVENANCE`` (JSON: model name and sha256, inputs and their sha256, parameters,
geoseg version).
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from geoseg.errors import ConfigError, GridMismatchError
from geoseg.io import ClassInfo
from geoseg.progress import Progress
from geoseg.report import html_page, html_table

if TYPE_CHECKING:
    from geoseg.export import LayerStyle
    from geoseg.metrics import Scores
    from geoseg.runner import Context
    from geoseg.workflow import Item, Step


@dataclass
class Outcome:
    """What a step made besides its planned files."""

    gpkg: Path | None = None  # scratch GeoPackage with the step's layers
    layer_counts: dict[str, int] = field(default_factory=dict)
    styles: dict[str, LayerStyle] = field(default_factory=dict)  # by scratch layer name
    summary: dict[str, Any] = field(default_factory=dict)


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


# ======================================================================================
# synthetic, predict, train


def _synthetic(ctx: Context) -> Outcome:
    from geoseg.synthetic import SceneSpec, write_scene

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
    from geoseg.stack import write_stack_vrt

    return write_stack_vrt(item.path, item.sources, item.band_names, item.nodata)


def _readable(item: Item) -> Path:
    return stack_vrt(item) if item.sources else item.path


def _predict(ctx: Context) -> Outcome:
    from concurrent.futures import ThreadPoolExecutor

    from geoseg.cluster import close_client
    from geoseg.mosaic import open_region
    from geoseg.pipeline import connect, predict

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
        bar = MapsProgress(ctx.progress, totals)

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


class MapsProgress:
    """One progress callback over several maps predicted at once: tiles done of all maps
    (``totals``: each map's tile count)."""

    def __init__(self, progress: Progress | None, totals: Sequence[int]) -> None:
        import threading

        self._progress = progress
        self._done = [0] * len(totals)
        self._total = list(totals)
        self._lock = threading.Lock()

    def part(self, k: int) -> Progress | None:
        if self._progress is None:
            return None

        def report(done: int, total: int, postfix: str = "") -> None:
            with self._lock:
                self._done[k], self._total[k] = done, total
                if self._progress is not None:  # the bar draws from one thread at a time
                    self._progress(sum(self._done), sum(self._total), postfix)

        return report


def _train(ctx: Context) -> Outcome:
    from geoseg.train import train

    result = train(ctx.step.train_config, progress=ctx.progress)
    return Outcome(summary={"validation": result.scores.as_dict(), "epochs": len(result.history)})


# ======================================================================================
# vectorize, change, track


def _vectorize(ctx: Context) -> Outcome:
    from geoseg.export import landcover_style
    from geoseg.io import read_classes
    from geoseg.vectorize import vectorize

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
    from geoseg.change import detect_change
    from geoseg.export import change_style, landcover_style

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
    from geoseg.change import track_loss
    from geoseg.export import loss_year_style, single_style

    p = ctx.step.params
    dates = list(p["_dates"])
    maps = [i.path for i in ctx.inputs["maps"]]
    imagery = None
    if p["classify"] is not None:
        from geoseg.spectral import ForestThresholds, classify_series, open_imagery

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


# ======================================================================================
# report


def _report(ctx: Context) -> Outcome:
    """An HTML page over the workflow's products: quick-looks with legends, change and loss
    figures (from the steps' own report folders), area tables from the GeoPackage,
    accuracy against known truth, and links to every product."""
    wf = ctx.workflow
    p = ctx.step.params
    final = ctx.step.outputs["html"][0].path
    folder = ctx.staged(final)
    folder.mkdir(parents=True)
    sections: list[str] = []
    accuracy: dict[str, Any] = {}
    shown = 0
    map_figs: list[tuple[str, str]] = []
    area_tables: list[tuple[str, dict[str, list[Any]]]] = []
    for name in p["include"]:
        step = wf.step(name)
        for out_name, kind_label in (("image", "image"), ("truth", "truth"), ("map", "classmap")):
            for item in step.outputs.get(out_name, ()):
                if shown >= p["max_maps"] or not item.path.exists():
                    continue
                stem = f"{name}{'_' + item.key if item.key else ''}{'_truth' if out_name == 'truth' else ''}"
                png = f"{stem}.jpg" if kind_label == "image" else f"{stem}.png"
                title = f"{name}{' ' + item.key if item.key else ''}"
                if kind_label == "image":
                    _plot_image(item.path, folder / png, f"{title}: imagery")
                    map_figs.append((png, f"{title}: the imagery (false colour)"))
                else:
                    classes, areas = class_areas(item.path)
                    from geoseg.report import plot_class_map

                    label = "known truth" if out_name == "truth" else "land cover"
                    plot_class_map(item.path, classes, folder / png, f"{title}: {label}", areas_ha=areas)
                    map_figs.append((png, f"{title}: {label}, with each class's area"))
                    area_tables.append(
                        (f"{title}: {label} area by class (ha)",
                         {"class_id": [c.id for c in classes], "class_name": [c.name for c in classes],
                          "area_ha": [round(a, 2) for a in areas]})
                    )  # fmt: skip
                shown += 1
    if map_figs:
        sections.append(
            _section("Maps", _figures(map_figs) + "".join(html_table(c, t) for c, t in area_tables))
        )

    rel = os.path.relpath(wf.out_dir, final)
    for name in p["include"]:
        step = wf.step(name)
        if step.kind == "change":
            sections.append(_section(f"Change: {name}", _change_html(ctx, step, rel)))
        elif step.kind == "track":
            sections.append(_section(f"Forest loss: {name}", _track_html(ctx, step, rel)))

    acc_html = []
    for k, entry in enumerate(p["accuracy"]):
        m = ctx.inputs[f"accuracy[{k}].map"][0]
        t = ctx.inputs[f"accuracy[{k}].truth"][0]
        scores = score_map(m.path, t)
        accuracy[entry["name"]] = scores.as_dict()
        acc_html.append(_scores_html(f"{entry['name']}: {m.path.name} against {t.path.name}", scores))
    for k, entry in enumerate(p["loss_accuracy"]):
        b, a, tb, ta = (
            ctx.inputs[f"loss_accuracy[{k}].{r}"][0]
            for r in ("before", "after", "truth_before", "truth_after")
        )
        res = score_loss(b, a, tb, ta, forest=entry["forest"])
        accuracy[entry["name"]] = res
        acc_html.append(_loss_html(entry["name"], res))
    if p["evaluate"] is not None:
        ev = p["evaluate"]
        from geoseg.train import evaluate

        model = ctx.inputs["evaluate.model"][0].path
        res = evaluate(model, ev["dataset"], ev["split"])
        res.pop("table", None)
        accuracy["evaluate"] = res
        acc_html.append(_evaluate_html(res))
    if acc_html:
        sections.append(_section("Accuracy against known truth", "".join(acc_html)))
    if accuracy:
        (folder / "accuracy.json").write_text(json.dumps(accuracy, indent=2))
    if wf.gpkg.exists():
        sections.append(_section(f"GeoPackage layers: {wf.gpkg.name}", _layers_html(wf.gpkg, rel)))
    sections.append(_section("Products", _products_html(ctx, rel)))
    title = p["title"] or f"geoseg: {wf.name}"
    meta = [
        wf.description,
        f"workflow {wf.path.name} (sha256 {wf.sha256[:12]}…); geoseg {ctx.provenance['geoseg_version']}",
    ]
    (folder / "index.html").write_text(html_page(title, meta, "\n".join(sections)), encoding="utf-8")
    return Outcome(summary={"accuracy": {k: _headline(v) for k, v in accuracy.items()}})


def _headline(v: dict[str, Any]) -> dict[str, Any]:
    return {k: v[k] for k in ("accuracy", "miou", "kappa", "precision", "recall", "f1", "mapped_ha", "truth_ha")
            if k in v}  # fmt: skip


def _plot_image(path: Path, out: Path, title: str) -> None:
    from geoseg.io import open_raster
    from geoseg.report import plot_image

    names = [n.lower() for n in open_raster(path, require_crs=False).band_names]
    want = [("nir", "red", "green"), ("red", "green", "blue")]
    for combo in want:
        if all(b in names for b in combo):
            bands = [names.index(b) + 1 for b in combo]
            break
    else:
        bands = [1, 2, 3] if len(names) >= 3 else [1, 1, 1]
    # Imagery is photographic: as JPEG it is a tenth of the PNG's size for the same look.
    tmp = out.with_suffix(".tmp.png")
    plot_image(path, bands, tmp, title)
    from PIL import Image

    with Image.open(tmp) as im:
        im.convert("RGB").save(out, "JPEG", quality=85, optimize=True)
    tmp.unlink()


def class_areas(path: Path) -> tuple[list[ClassInfo], list[float]]:
    """The class table of a class map and the area of each class in hectares (on the
    ellipsoid, like the polygons), read block by block."""
    import rasterio

    from geoseg.areas import area_model
    from geoseg.grid import Grid, iter_tiles
    from geoseg.io import read_classes

    classes = read_classes(path)
    ids = np.array([c.id for c in classes], dtype=np.int64)
    totals = np.zeros(len(classes))
    with rasterio.open(path) as ds:
        grid = Grid.from_dataset(ds)
        model = area_model(grid)
        for tile in iter_tiles(grid.shape, 1024):
            w = tile.core
            data = ds.read(1, window=w.to_rasterio()).astype(np.int64)
            pos = np.searchsorted(ids, data).clip(0, max(len(ids) - 1, 0))
            hit = ids[pos] == data if len(ids) else np.zeros(data.shape, bool)
            weights = model.pixel_weights(w)
            wts = (np.broadcast_to(weights, data.shape) if weights is not None
                   else np.full(data.shape, model.pixel_area_m2))  # fmt: skip
            totals += np.bincount(pos[hit], weights=wts[hit], minlength=len(ids))
    return classes, (totals / 1e4).tolist()


def _blocks(*paths: Path) -> Any:
    """Yield aligned blocks ``[(values, valid), ...]`` of rasters on one grid."""
    import rasterio

    from geoseg.grid import Grid, iter_tiles

    dss = [rasterio.open(p) for p in paths]
    try:
        grids = [Grid.from_dataset(d) for d in dss]
        for p, g in zip(paths[1:], grids[1:], strict=True):
            if not g.same_as(grids[0]):
                raise GridMismatchError(
                    f"is not on the grid of {paths[0]} ({g.describe()} vs {grids[0].describe()}); "
                    "accuracy needs the map and its truth on one grid",
                    p,
                )
        for tile in iter_tiles(grids[0].shape, 1024):
            w = tile.core.to_rasterio()
            out = []
            for d in dss:
                v = d.read(1, window=w)
                m = d.read_masks(1, window=w) > 0
                out.append((v, m))
            yield out
    finally:
        for d in dss:
            d.close()


def _name_index(values: np.ndarray, valid: np.ndarray, table: dict[int, str], names: list[str]) -> np.ndarray:
    """Raster values -> index of their class name in ``names`` (255: nodata or unnamed)."""
    out = np.full(values.shape, 255, dtype=np.uint8)
    pos = {n: k for k, n in enumerate(names)}
    for v in np.unique(values[valid]):
        name = table.get(int(v)) if float(v).is_integer() else None
        if name is not None and name in pos:
            out[valid & (values == v)] = pos[name]
    return out


def _table_of(item: Item) -> dict[int, str]:
    from geoseg.io import read_classes

    if item.classes is not None:
        return {int(v): n for v, n in item.classes}
    return {c.id: c.name for c in read_classes(item.path)}


def score_map(pred: Path, truth: Item) -> Scores:
    """Accuracy of a class map against a truth raster on the same grid, classes matched by
    *name* (a catalog label raster's values need not be the model's class ids)."""
    from geoseg.io import read_classes
    from geoseg.metrics import Scores, confusion

    classes = read_classes(pred)
    names = [c.name for c in classes]
    ptable = {c.id: c.name for c in classes}
    ttable = _table_of(truth)
    if not set(ttable.values()) & set(names):
        raise ConfigError(
            f"{truth.path.name} names classes {sorted(set(ttable.values()))} and {pred.name} "
            f"{names}: none in common, so they cannot be compared"
        )
    matrix = np.zeros((len(names), len(names)), dtype=np.int64)
    for (pv, pm), (tv, tm) in _blocks(pred, truth.path):
        matrix += confusion(
            _name_index(tv, tm, ttable, names), _name_index(pv, pm, ptable, names), len(names)
        )
    return Scores(matrix, names)


def score_loss(
    before: Item, after: Item, truth_before: Item, truth_after: Item, forest: Sequence[str]
) -> dict[str, Any]:
    """Mapped forest loss (forest in ``before``, not in ``after``) against the truth's:
    areas and pixel precision, recall, F1 and IoU of the loss."""
    from geoseg.areas import area_model
    from geoseg.grid import Grid

    tables = [_table_of(i) for i in (before, after, truth_before, truth_after)]
    forest_set = {str(f) for f in forest}
    ids = [{v for v, n in t.items() if n in forest_set or str(v) in forest_set} for t in tables]
    if not all(ids):
        raise ConfigError(f"forest class {sorted(forest_set)} is missing from one of the maps or truths")
    import rasterio

    with rasterio.open(before.path) as ds:
        pixel_ha = area_model(Grid.from_dataset(ds)).pixel_area_m2 / 1e4
    tp = fp = fn = 0
    for blocks in _blocks(before.path, after.path, truth_before.path, truth_after.path):
        valid = np.logical_and.reduce([m for _, m in blocks])
        f = [np.isin(v, list(i)) for (v, _), i in zip(blocks, ids, strict=True)]
        mapped = valid & f[0] & ~f[1]
        truth = valid & f[2] & ~f[3]
        tp += int((mapped & truth).sum())
        fp += int((mapped & ~truth).sum())
        fn += int((~mapped & truth).sum())
    precision = tp / (tp + fp) if tp + fp else float("nan")
    recall = tp / (tp + fn) if tp + fn else float("nan")
    f1 = 2 * precision * recall / (precision + recall) if tp else 0.0

    def r(x: float) -> float | None:
        return None if x != x else round(x, 6)

    return {
        "mapped_ha": round((tp + fp) * pixel_ha, 2),
        "truth_ha": round((tp + fn) * pixel_ha, 2),
        "precision": r(precision),
        "recall": r(recall),
        "f1": r(f1),
        "iou": r(tp / (tp + fp + fn) if tp + fp + fn else float("nan")),
        "pixels": {"true_positive": tp, "false_positive": fp, "false_negative": fn},
        "forest": sorted(forest_set),
    }


# ---------------------------------------------------------------------- HTML pieces


def _section(title: str, body: str) -> str:
    return f"<h2>{html.escape(title)}</h2>\n{body}"


def _figures(figs: Sequence[tuple[str, str]]) -> str:
    return "".join(
        f'<figure><img src="{html.escape(src)}" alt="{html.escape(cap)}"><figcaption>{html.escape(cap)}'
        "</figcaption></figure>"
        for src, cap in figs
    )


def _gpkg_table(gpkg: Path, layer: str) -> dict[str, list[Any]] | None:
    import pyogrio.raw

    from geoseg.export import list_layers

    if layer not in list_layers(gpkg):
        return None
    meta, _, _, data = pyogrio.raw.read(str(gpkg), layer=layer)
    return {
        str(n): [v.item() if hasattr(v, "item") else v for v in col]
        for n, col in zip(meta["fields"], data, strict=True)
    }


def _report_html(
    ctx: Context, step: Step, rel: str, figures: Sequence[tuple[str, str]], tables: Sequence[tuple[str, str]]
) -> str:
    """A step's figures (PNGs of its own report folder), a link to that report, and tables
    (``(layer without the step's prefix, caption)``) read back from the workflow's GeoPackage."""
    gpkg = ctx.workflow.gpkg
    parts = []
    rep = step.outputs.get("report")
    if rep:
        folder = f"{rel}/{rep[0].path.name}"
        parts.append(_figures([(f"{folder}/{png}", caption) for png, caption in figures]))
        parts.append(
            f'<p>The step\'s own report: <a href="{folder}/index.html">{html.escape(rep[0].path.name)}</a>.</p>'
        )
    for layer, caption in tables:
        t = _gpkg_table(gpkg, step.params["layer_prefix"] + layer) if gpkg.exists() else None
        if t:
            parts.append(html_table(caption, t))
    return "".join(parts)


def _change_html(ctx: Context, step: Step, rel: str) -> str:
    prefix = step.params["layer_prefix"]
    return _report_html(
        ctx, step, rel,
        [("change.png", "where the class changed; the largest transitions in colour"),
         ("transitions.png", "the largest transitions by area")],
        [("class_change", f"area per class before and after (ha) — table {prefix}class_change"),
         ("transition_matrix", f"transition matrix (ha): rows before, columns after — table {prefix}transition_matrix")],
    )  # fmt: skip


def _track_html(ctx: Context, step: Step, rel: str) -> str:
    return _report_html(
        ctx, step, rel,
        [("loss_year.png", "date of first confirmed forest loss"),
         ("loss_per_period.png", "forest loss and regrowth per period, and cumulative loss")],
        [("loss_by_period", "forest loss per period (ha)")],
    )  # fmt: skip


def _f3(values: Any) -> list[str]:
    return ["–" if v is None or v != v else f"{float(v):.3f}" for v in values]


def _scores_html(caption: str, s: Scores) -> str:
    per: dict[str, list[Any]] = {
        "class": list(s.names),
        "IoU": _f3(s.iou),
        "precision": _f3(s.precision),
        "recall": _f3(s.recall),
        "F1": _f3(s.f1),
        "pixels (truth)": [int(v) for v in s.matrix.sum(1)],
    }
    return (
        f"<p><b>{html.escape(caption)}</b>: overall accuracy {s.accuracy:.4f}, mIoU {s.miou:.4f}, "
        f"kappa {s.kappa:.4f}.</p>" + html_table("per class (classes matched by name)", per)
    )


def _loss_html(name: str, r: dict[str, Any]) -> str:
    def f(v: Any) -> str:
        return "–" if v is None else f"{v:.4f}"

    return (
        f"<p><b>{html.escape(name)}</b> (forest = {html.escape(', '.join(r['forest']))}): "
        f"{r['mapped_ha']:,.2f} ha of loss mapped, {r['truth_ha']:,.2f} ha in the truth; "
        f"loss pixels: precision {f(r['precision'])}, recall {f(r['recall'])}, F1 {f(r['f1'])}, "
        f"IoU {f(r['iou'])}.</p>"
    )


def _evaluate_html(r: dict[str, Any]) -> str:
    per = r.get("per_class", {})
    out = (
        f"<p><b>{html.escape(Path(str(r['model'])).name)}</b> on {html.escape(r['dataset'])} "
        f"({html.escape(r['split'])}): pooled accuracy {r['accuracy']:.4f}, mIoU {r['miou']:.4f}, "
        f"kappa {r['kappa']:.4f}.</p>"
    )
    if per:
        out += html_table("per class, pooled over the split", {
            "class": list(per), "IoU": _f3(v["iou"] for v in per.values()),
            "precision": _f3(v["precision"] for v in per.values()),
            "recall": _f3(v["recall"] for v in per.values()), "F1": _f3(v["f1"] for v in per.values()),
        })  # fmt: skip
    paper = r.get("paper")
    if paper:
        out += (
            f"<p>The paper's metric (John &amp; Zhang 2022: per-tile accuracy and weighted precision/recall, "
            f"averaged over {paper['tiles']} tiles): accuracy {paper['accuracy']:.4f}, precision "
            f"{paper['precision']:.4f}, recall {paper['recall']:.4f}, F1 {paper['f1']:.4f}.</p>"
        )
    return out


#: What each layer geoseg writes holds (the README lists the same).
LAYER_NOTES = {
    "change": "change polygons: class_id/class_name (the transition), from_id, from_class, to_id, to_class, area_ha",
    "landcover_before": "land cover of the first map: class_id, class_name, area_ha, perimeter_m",
    "landcover_after": "land cover of the second map: class_id, class_name, area_ha, perimeter_m",
    "transitions": "one row per (from, to) pair: pixels and area_ha",
    "transition_matrix": "the transition matrix in ha, one row per class before",
    "class_change": "per class: before_ha, after_ha, gain_ha, loss_ha, net_ha",
    "forest_loss": "forest-loss polygons: year, date, period, area_ha",
    "regrowth": "regrowth polygons: year, date, period, area_ha",
    "loss_by_period": "forest loss and regrowth per period (ha)",
    "forest_by_date": "forest and observed area per date (ha)",
    "layer_styles": "QGIS default styles of the layers (QML and SLD)",
}


def _layers_html(gpkg: Path, rel: str) -> str:
    import pyogrio

    from geoseg.export import list_layers

    rows: dict[str, list[Any]] = {"layer": [], "geometry": [], "features": [], "what": []}
    for layer, geom in list_layers(gpkg).items():
        rows["layer"].append(layer)
        rows["geometry"].append(geom or "table")
        rows["features"].append(int(pyogrio.read_info(str(gpkg), layer=layer)["features"]))
        base = next((k for k in LAYER_NOTES if layer.endswith(k)), None)
        rows["what"].append(
            LAYER_NOTES[base] if base else "polygons: class_id, class_name, area_ha, perimeter_m"
        )
    return (
        f'<p><a href="{rel}/{gpkg.name}">{html.escape(gpkg.name)}</a> opens in QGIS with each layer styled in '
        "its classes' colours; provenance (model, inputs and their sha256, parameters, geoseg version) is in "
        "its metadata tables.</p>" + html_table("layers and tables", rows)
    )


def _products_html(ctx: Context, rel: str) -> str:
    """Every product of the workflow so far, with relative links."""
    wf = ctx.workflow
    links = []
    for step in wf.steps:
        if step.name == ctx.step.name:
            break
        rec = ctx.records.get(step.name)
        if rec is None or step.kind == "train":
            continue
        for name, items in rec.outputs.items():
            for d in items:
                path = wf.out_dir / d["path"]
                target = path / "index.html" if path.is_dir() else path
                if not target.exists():
                    continue
                label = f"{step.name}.{name}" + (f"@{d['key']}" if d.get("key") and len(items) > 1 else "")
                href = f"{rel}/{target.relative_to(wf.out_dir).as_posix()}"
                links.append((label, href, target.stat().st_size))
    if any(s.layers for s in wf.steps):
        links.append((f"GeoPackage ({wf.gpkg.name}: every layer and table)", f"{rel}/{wf.gpkg.name}", None))
    links.append(("STAC collection (one Item per product)", f"{rel}/stac/collection.json", None))
    body = "".join(
        f'<tr><td>{html.escape(label)}</td><td><a href="{html.escape(href)}">{html.escape(href.split("/", 1)[-1])}</a></td>'
        f'<td class="num">{"" if size is None else f"{size / 1e6:,.2f} MB"}</td></tr>'
        for label, href, size in links
    )
    return f"<table><thead><tr><th>product</th><th>file</th><th>size</th></tr></thead><tbody>{body}</tbody></table>"


__all__ = ["Outcome", "class_areas", "run", "score_loss", "score_map", "stack_vrt"]
