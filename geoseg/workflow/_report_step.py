"""The report step: sections over a workflow's products.

The page's markup is the template ``workflow_report.html.j2`` of ``geoseg.products``;
this module gathers what it shows: sections, each a list of *parts* (dicts with a
``kind`` the template lays out: figures, table, step_report, scores, loss, evaluation,
layers, products).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from geoseg.products import class_areas, render_html, score_loss, score_map

if TYPE_CHECKING:
    from geoseg.training import Scores
    from geoseg.workflow._context import Context
    from geoseg.workflow._spec import Step
from geoseg.workflow._context import Outcome

#: A section of the page: ``{"title": str, "parts": [part, ...]}``; a part: ``{"kind": str, ...}``.
Part = dict[str, Any]


def _report(ctx: Context) -> Outcome:
    """An HTML page over the workflow's products: quick-looks with legends, change and loss
    figures (from the steps' own report folders), area tables from the GeoPackage,
    accuracy against known truth, and links to every product."""
    wf = ctx.workflow
    p = ctx.step.params
    final = ctx.step.outputs["html"][0].path
    folder = ctx.staged(final)
    folder.mkdir(parents=True)
    sections: list[dict[str, Any]] = []
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
        sections.append(_section("Maps", [_figures(map_figs), *(_table(c, t) for c, t in area_tables)]))

    rel = os.path.relpath(wf.out_dir, final)
    for name in p["include"]:
        step = wf.step(name)
        if step.kind == "change":
            sections.append(_section(f"Change: {name}", _change_parts(ctx, step, rel)))
        elif step.kind == "track":
            sections.append(_section(f"Forest loss: {name}", _track_parts(ctx, step, rel)))

    acc_parts: list[Part] = []
    for k, entry in enumerate(p["accuracy"]):
        m = ctx.inputs[f"accuracy[{k}].map"][0]
        t = ctx.inputs[f"accuracy[{k}].truth"][0]
        scores = score_map(m.path, t)
        accuracy[entry["name"]] = scores.as_dict()
        acc_parts.append(_scores_part(f"{entry['name']}: {m.path.name} against {t.path.name}", scores))
    for k, entry in enumerate(p["loss_accuracy"]):
        b, a, tb, ta = (
            ctx.inputs[f"loss_accuracy[{k}].{r}"][0]
            for r in ("before", "after", "truth_before", "truth_after")
        )
        res = score_loss(b, a, tb, ta, forest=entry["forest"])
        accuracy[entry["name"]] = res
        acc_parts.append(_loss_part(entry["name"], res))
    if p["evaluate"] is not None:
        ev = p["evaluate"]
        from geoseg.training import evaluate

        model = ctx.inputs["evaluate.model"][0].path
        res = evaluate(model, ev["dataset"], ev["split"])
        res.pop("table", None)
        accuracy["evaluate"] = res
        acc_parts.append(_evaluate_part(res))
    if acc_parts:
        sections.append(_section("Accuracy against known truth", acc_parts))
    if accuracy:
        (folder / "accuracy.json").write_text(json.dumps(accuracy, indent=2))
    if wf.gpkg.exists():
        sections.append(_section(f"GeoPackage layers: {wf.gpkg.name}", [_layers_part(wf.gpkg, rel)]))
    sections.append(_section("Products", [_products_part(ctx, rel)]))
    title = p["title"] or f"geoseg: {wf.name}"
    meta = [
        wf.description,
        f"workflow {wf.path.name} (sha256 {wf.sha256[:12]}…); geoseg {ctx.provenance['geoseg_version']}",
    ]
    page = render_html("workflow_report.html.j2", title=title, meta=meta, sections=sections)
    (folder / "index.html").write_text(page, encoding="utf-8")
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


def _section(title: str, parts: Sequence[Part]) -> dict[str, Any]:
    return {"title": title, "parts": list(parts)}


def _figures(figs: Sequence[tuple[str, str]]) -> Part:
    """Figures ``(image path relative to the page, caption)``."""
    return {"kind": "figures", "figures": list(figs)}


def _table(caption: str, columns: dict[str, list[Any]]) -> Part:
    """A captioned table of equal-length ``columns`` (name -> values)."""
    return {"kind": "table", "caption": caption, "columns": columns}


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
        t = _gpkg_table(gpkg, step.params["layer_prefix"] + layer) if gpkg.exists() else None
        if t:
            parts.append(_table(caption, t))
    return parts


def _change_parts(ctx: Context, step: Step, rel: str) -> list[Part]:
    prefix = step.params["layer_prefix"]
    return _report_parts(
        ctx, step, rel,
        [("change.png", "where the class changed; the largest transitions in colour"),
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
