"""The report step: a summary first, then sections over a workflow's products.

The page's markup is the template ``workflow_report.html.j2`` of ``geoseg.products``;
this module gathers what it shows: sections, each a list of *parts* (dicts with a
``kind`` the template lays out: headlines, text, figures, legend, tiles, table,
step_report, scores, loss, evaluation, layers, products), and a table of contents that
links to each section's id. The summary is :mod:`._report_summary`'s, the maps and tile
galleries :mod:`._report_maps`'s.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from geoseg.products import render_html, score_loss, score_map
from geoseg.workflow._report_maps import maps_sections
from geoseg.workflow._report_summary import gpkg_table, summary_parts

if TYPE_CHECKING:
    from geoseg.training import Scores
    from geoseg.workflow._context import Context
    from geoseg.workflow._spec import Step
from geoseg.workflow._context import Outcome
from geoseg.workflow._spec import slug

#: A section of the page: ``{"title": str, "id": str, "parts": [part, ...]}``; a part: ``{"kind": str, ...}``.
Part = dict[str, Any]


def _report(ctx: Context) -> Outcome:
    """An HTML page over the workflow's products: a summary (headline areas, change, loss
    and accuracy), then the maps (tile galleries as image | mask | map), change and loss
    figures (from the steps' own report folders, which link back here), accuracy per
    class, the GeoPackage's layers and links to every product."""
    wf = ctx.workflow
    p = ctx.step.params
    final = ctx.step.outputs["html"][0].path
    folder = ctx.staged(final)
    folder.mkdir(parents=True)
    accuracy: dict[str, Any] = {}
    rel = os.path.relpath(wf.out_dir, final)
    maps = maps_sections(ctx, folder, p["include"], p["max_maps"])
    details: list[tuple[str, Sequence[Part]]] = list(maps.sections)
    for name in p["include"]:
        step = wf.step(name)
        if step.kind == "change":
            details.append((f"Change: {name}", _change_parts(ctx, step, rel)))
        elif step.kind == "track":
            details.append((f"Forest loss: {name}", _track_parts(ctx, step, rel)))

    acc_parts: list[Part] = []
    rows: list[dict[str, Any]] = []
    losses: list[tuple[str, dict[str, Any]]] = []
    for k, entry in enumerate(p["accuracy"]):
        m = ctx.inputs[f"accuracy[{k}].map"][0]
        t = ctx.inputs[f"accuracy[{k}].truth"][0]
        scores = score_map(m.path, t)
        accuracy[entry["name"]] = scores.as_dict()
        acc_parts.append(_scores_part(f"{entry['name']}: {m.path.name} against {t.path.name}", scores))
        rows.append({"scored": f"{entry['name']}: {m.path.name}", "against": t.path.name,
                     "accuracy": scores.accuracy, "miou": scores.miou, "kappa": scores.kappa})  # fmt: skip
    for k, entry in enumerate(p["loss_accuracy"]):
        b, a, tb, ta = (
            ctx.inputs[f"loss_accuracy[{k}].{r}"][0]
            for r in ("before", "after", "truth_before", "truth_after")
        )
        res = score_loss(b, a, tb, ta, forest=entry["forest"])
        accuracy[entry["name"]] = res
        losses.append((entry["name"], res))
        acc_parts.append(_loss_part(entry["name"], res))
    if p["evaluate"] is not None:
        ev = p["evaluate"]
        from geoseg.training import evaluate

        model = ctx.inputs["evaluate.model"][0].path
        res = evaluate(model, ev["dataset"], ev["split"])
        res.pop("table", None)
        accuracy["evaluate"] = res
        acc_parts.append(_evaluate_part(res))
        tiles = f", {res['paper']['tiles']} tiles" if res.get("paper") else ""
        rows.append({"scored": f"{Path(str(res['model'])).name} on {ev['dataset']} ({ev['split']})",
                     "against": f"its masks (whole tiles through the model, pooled{tiles})", "accuracy": res["accuracy"], "miou": res["miou"],
                     "kappa": res["kappa"]})  # fmt: skip
    if acc_parts:
        details.append(("Accuracy against known truth", acc_parts))
    if accuracy:
        (folder / "accuracy.json").write_text(json.dumps(accuracy, indent=2))
    if wf.gpkg.exists():
        details.append((f"GeoPackage layers: {wf.gpkg.name}", [_layers_part(wf.gpkg, rel)]))
    details.append(("Products", [_products_part(ctx, rel)]))
    paper = [_paper_line(accuracy["evaluate"])] if "paper" in accuracy.get("evaluate", {}) else []
    summary = summary_parts(ctx, p["include"], maps, rows, losses, paper)
    sections = _with_ids([("Summary", summary), *details])
    title = p["title"] or f"geoseg: {wf.name}"
    meta = [
        wf.description,
        f"workflow {wf.path.name} (sha256 {wf.sha256[:12]}…); geoseg {ctx.provenance['geoseg_version']}",
    ]
    toc = [(s["id"], s["title"]) for s in sections]
    page = render_html("workflow_report.html.j2", title=title, meta=meta, sections=sections, toc=toc)
    (folder / "index.html").write_text(page, encoding="utf-8")
    return Outcome(summary={"accuracy": {k: _headline(v) for k, v in accuracy.items()}})


def _paper_line(r: dict[str, Any]) -> str:
    pm = r["paper"]
    return (
        f"{Path(str(r['model'])).name} by the paper's metric (John & Zhang 2022: per-tile scores averaged "
        f"over {pm['tiles']} tiles): F1 {pm['f1']:.4f}, accuracy {pm['accuracy']:.4f}."
    )


def _with_ids(sections: Sequence[tuple[str, Sequence[Part]]]) -> list[dict[str, Any]]:
    """Sections with an id each (the table of contents links to them), unique on the page."""
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for title, parts in sections:
        base = slug(title.lower().replace(": ", "-").replace(" ", "-")).replace("_", "-")
        sid, k = base, 2
        while sid in seen:
            sid, k = f"{base}-{k}", k + 1
        seen.add(sid)
        out.append({"title": title, "id": sid, "parts": list(parts)})
    return out


def _headline(v: dict[str, Any]) -> dict[str, Any]:
    return {k: v[k] for k in ("accuracy", "miou", "kappa", "precision", "recall", "f1", "mapped_ha", "truth_ha")
            if k in v}  # fmt: skip


def _figures(figs: Sequence[tuple[str, str]]) -> Part:
    """Figures ``(image path relative to the page, caption)``."""
    return {"kind": "figures", "figures": list(figs)}


def _table(caption: str, columns: dict[str, list[Any]]) -> Part:
    """A captioned table of equal-length ``columns`` (name -> values)."""
    return {"kind": "table", "caption": caption, "columns": columns}


def _report_parts(
    ctx: Context, step: Step, rel: str, figures: Sequence[tuple[str, str]], tables: Sequence[tuple[str, str]]
) -> list[Part]:
    """A step's figures (PNGs of its own report folder), a link to that report, and tables
    (``(layer without the step's prefix, caption)``) read back from the workflow's GeoPackage."""
    gpkg = ctx.workflow.gpkg
    parts: list[Part] = []
    rep = step.outputs.get("report")
    if rep:
        folder = f"{rel}/{rep[0].path.name}"
        parts.append(_figures([(f"{folder}/{png}", caption) for png, caption in figures]))
        parts.append({"kind": "step_report", "href": f"{folder}/index.html", "name": rep[0].path.name})
    for layer, caption in tables:
        t = gpkg_table(gpkg, step.params["layer_prefix"] + layer)
        if t:
            parts.append(_table(caption, t))
    return parts


def _change_parts(ctx: Context, step: Step, rel: str) -> list[Part]:
    prefix = step.params["layer_prefix"]
    return _report_parts(
        ctx, step, rel,
        [("change.png", "where the class changed: unchanged pixels in a pale tint of their class, the largest "
                        "transitions in the chart's colours (the change raster's and the QGIS style's too)"),
         ("transitions.png", "the largest transitions by area")],
        [("class_change", f"area per class before and after (ha) — table {prefix}class_change"),
         ("transition_matrix", f"transition matrix (ha): rows before, columns after — table {prefix}transition_matrix")],
    )  # fmt: skip


def _track_parts(ctx: Context, step: Step, rel: str) -> list[Part]:
    return _report_parts(
        ctx, step, rel,
        [("loss_year.png", "date of first confirmed forest loss"),
         ("loss_per_period.png", "forest loss and regrowth per period, and cumulative loss")],
        [("loss_by_period", "forest loss per period (ha)")],
    )  # fmt: skip


def _f3(values: Any) -> list[str]:
    return ["–" if v is None or v != v else f"{float(v):.3f}" for v in values]


def _scores_part(caption: str, s: Scores) -> Part:
    per: dict[str, list[Any]] = {
        "class": list(s.names),
        "IoU": _f3(s.iou),
        "precision": _f3(s.precision),
        "recall": _f3(s.recall),
        "F1": _f3(s.f1),
        "pixels (truth)": [int(v) for v in s.matrix.sum(1)],
    }
    return {"kind": "scores", "caption": caption, "accuracy": s.accuracy, "miou": s.miou, "kappa": s.kappa,
            "per_class": per}  # fmt: skip


def _loss_part(name: str, r: dict[str, Any]) -> Part:
    return {"kind": "loss", "name": name, **{k: r[k] for k in ("forest", "mapped_ha", "truth_ha", "precision",
                                                                  "recall", "f1", "iou")}}  # fmt: skip


def _evaluate_part(r: dict[str, Any]) -> Part:
    per = r.get("per_class", {})
    table = {
        "class": list(per), "IoU": _f3(v["iou"] for v in per.values()),
        "precision": _f3(v["precision"] for v in per.values()),
        "recall": _f3(v["recall"] for v in per.values()), "F1": _f3(v["f1"] for v in per.values()),
    } if per else None  # fmt: skip
    return {"kind": "evaluation", "model": Path(str(r["model"])).name, "dataset": r["dataset"],
            "split": r["split"], "accuracy": r["accuracy"], "miou": r["miou"], "kappa": r["kappa"],
            "per_class": table, "paper": r.get("paper")}  # fmt: skip


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


def layer_note(layer: str) -> str:
    """What a GeoPackage layer or table holds, from its name (a step's prefix and a known layer).

    The longest known name the layer ends with wins: ``pucallpa_class_change`` is the
    per-class table, not the ``change`` polygons (a first match said so before).
    """
    base = max((k for k in LAYER_NOTES if layer.endswith(k)), key=len, default=None)
    return LAYER_NOTES[base] if base else "polygons: class_id, class_name, area_ha, perimeter_m"


def _layers_part(gpkg: Path, rel: str) -> Part:
    import pyogrio

    from geoseg.vector import list_layers

    rows: dict[str, list[Any]] = {"layer": [], "geometry": [], "features": [], "what": []}
    for layer, geom in list_layers(gpkg).items():
        rows["layer"].append(layer)
        rows["geometry"].append(geom or "table")
        rows["features"].append(int(pyogrio.read_info(str(gpkg), layer=layer)["features"]))
        rows["what"].append(layer_note(layer))
    return {"kind": "layers", "href": f"{rel}/{gpkg.name}", "name": gpkg.name, "rows": rows}


def _products_part(ctx: Context, rel: str) -> Part:
    """Every product of the workflow so far, with relative links."""
    wf = ctx.workflow
    links: list[dict[str, Any]] = []

    def link(label: str, href: str, size: int | None) -> None:
        links.append({"label": label, "href": href, "text": href.split("/", 1)[-1], "size": size})

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
                link(label, f"{rel}/{target.relative_to(wf.out_dir).as_posix()}", target.stat().st_size)
    if any(s.layers for s in wf.steps):
        link(f"GeoPackage ({wf.gpkg.name}: every layer and table)", f"{rel}/{wf.gpkg.name}", None)
    link("STAC collection (one Item per product)", f"{rel}/stac/collection.json", None)
    return {"kind": "products", "links": links}
