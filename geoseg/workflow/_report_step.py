"""The report step's HTML: sections over a workflow's products."""

from __future__ import annotations

import html
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from geoseg.products import html_page, html_table

if TYPE_CHECKING:
    from geoseg.training import Scores
    from geoseg.workflow._context import Context
    from geoseg.workflow._spec import Step
from geoseg.products import class_areas, score_loss, score_map
from geoseg.workflow._context import Outcome


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
                    from geoseg.products import plot_class_map

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
        from geoseg.training import evaluate

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
    from geoseg.products import plot_image
    from geoseg.raster import open_raster

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

    from geoseg.vector import list_layers

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

    from geoseg.vector import list_layers

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
