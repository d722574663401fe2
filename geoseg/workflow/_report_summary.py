"""The report's first section: the headline areas and scores, before any detail.

What a reader wants first: how much changed and into what, how much forest was lost,
how good the maps are against known truth, which minimum mapping unit the polygons
have, and the area of each class on each map. Every number here is also in a detail
section further down (or in the GeoPackage); this section only picks them out.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from geoseg.workflow._context import Context
    from geoseg.workflow._report_maps import Maps

Part = dict[str, Any]

#: how many of the largest transitions the summary names
TOP_TRANSITIONS = 3


def gpkg_table(gpkg: Path, layer: str) -> dict[str, list[Any]] | None:
    """A table (or a layer's attributes) of the workflow's GeoPackage as columns; None if absent."""
    import pyogrio.raw

    from geoseg.vector import list_layers

    if not gpkg.exists() or layer not in list_layers(gpkg):
        return None
    meta, _, _, data = pyogrio.raw.read(str(gpkg), layer=layer, read_geometry=False)
    return {
        str(n): [v.item() if hasattr(v, "item") else v for v in col]
        for n, col in zip(meta["fields"], data, strict=True)
    }


def _ha(v: float) -> str:
    return f"{v:,.1f} ha"


def _change_line(ctx: Context, name: str) -> str | None:
    rec = ctx.records.get(name)
    if rec is None or "changed_ha" not in rec.summary:
        return None
    changed, total = float(rec.summary["changed_ha"]), float(rec.summary["compared_ha"])
    line = f"{name}: {_ha(changed)} of the {_ha(total)} compared changed class ({100 * changed / max(total, 1e-12):.2f} %)"
    step = ctx.workflow.step(name)
    t = gpkg_table(ctx.workflow.gpkg, step.params["layer_prefix"] + "transitions")
    if t:
        rows = [
            (f, to, float(a))
            for f, to, a in zip(t["from_class"], t["to_class"], t["area_ha"], strict=True)
            if f != to
        ]
        rows.sort(key=lambda r: -r[2])
        if rows:
            line += "; the largest: " + ", ".join(
                f"{f} → {to} {_ha(a)}" for f, to, a in rows[:TOP_TRANSITIONS]
            )
    return line + "."


def _track_line(ctx: Context, name: str) -> str | None:
    rec = ctx.records.get(name)
    if rec is None or "total_loss_ha" not in rec.summary:
        return None
    s = rec.summary
    dates = [d["date"] for d in s.get("input_dates", [])]
    line = f"{name}: {_ha(float(s['total_loss_ha']))} of forest lost"
    if dates:
        line += f" between {dates[0]} and {dates[-1]}"
    regrowth = s.get("periods", {}).get("cumulative_regrowth_ha") or []
    if regrowth:
        line += f"; {_ha(float(regrowth[-1]))} regrew"
    return line + "."


def mmu_line(ctx: Context, include: Sequence[str]) -> str | None:
    """The minimum mapping unit of the polygon layers, in words (None when no step sets one)."""
    sieved: dict[float, list[str]] = {}
    dropped: dict[float, list[str]] = {}
    for name in include:
        step = ctx.workflow.step(name)
        v = step.params.get("min_area_ha")
        if step.kind not in ("vectorize", "change", "track") or not v:
            continue
        (sieved if step.kind == "vectorize" else dropped).setdefault(float(v), []).append(name)
    if not sieved and not dropped:
        return None
    values = sorted(set(sieved) | set(dropped))
    head = (f"Minimum mapping unit {values[0]:g} ha" if len(values) == 1
            else "Minimum mapping units " + ", ".join(f"{v:g}" for v in values) + " ha")  # fmt: skip
    what = []
    for v, steps in sorted(sieved.items()):
        what.append(f"land-cover regions under {v:g} ha join the neighbour they share the longest boundary "
                    f"with ({', '.join(steps)})")  # fmt: skip
    for v, steps in sorted(dropped.items()):
        what.append(f"change and loss polygons under {v:g} ha are left out ({', '.join(steps)})")
    return (
        f"{head} in the polygon layers: {'; '.join(what)}. The rasters, the area tables and the scores "
        "count every pixel."
    )


def _gallery_line(maps: Maps) -> list[str]:
    from geoseg.workflow._report_maps import mean_scores

    lines = []
    for g in maps.galleries:
        panels = "image | mask | map" if g.with_masks else "image | map"
        line = (
            f"{g.step}: {g.total} {g.what} mapped, "
            + ("all shown" if g.shown == g.total else f"{g.shown} shown (max_maps)")
            + f" as {panels}"
        )
        if not g.with_masks and "tiles of" in g.what:
            line += " (the split has no masks)"
        if g.scored:
            acc, miou = mean_scores(g.scored)
            worst = min(g.scored, key=lambda s: s[1])
            best = max(g.scored, key=lambda s: s[1])
            line += (
                f"; the maps shown score {acc:.3f} against their masks on average (mIoU {miou:.3f}), from "
                f"{worst[1]:.3f} ({worst[0]}) to {best[1]:.3f} ({best[0]})"
            )
        lines.append(line + ".")
    return lines


def _area_table(areas: dict[str, dict[str, float]]) -> Part | None:
    if not areas:
        return None
    # the maps first, their truths after them (the steps come truth first)
    areas = dict(sorted(areas.items(), key=lambda kv: kv[0].endswith("(truth)")))
    names: list[str] = []
    for col in areas.values():
        names += [n for n in col if n not in names]
    columns: dict[str, list[Any]] = {"class": names}
    for title, col in areas.items():
        columns[title] = [round(col[n], 2) if n in col else None for n in names]
    return {"kind": "table", "caption": "area by class (ha, on the ellipsoid)", "columns": columns}


def summary_parts(
    ctx: Context,
    include: Sequence[str],
    maps: Maps,
    scores: Sequence[dict[str, Any]],
    losses: Sequence[tuple[str, dict[str, Any]]],
    notes: Sequence[str] = (),
) -> list[Part]:
    """The summary section's parts: headline lines, the accuracy table, the area table.

    ``scores``: one row per scored map or model (``scored``, ``against``, ``accuracy``,
    ``miou``, ``kappa``); ``losses``: ``(name, score_loss result)``; ``notes``: more lines
    about the scores.
    """
    lines: list[str] = []
    headline = {"change": _change_line, "track": _track_line}
    for name in include:
        of = headline.get(ctx.workflow.step(name).kind)
        line = of(ctx, name) if of else None
        if line:
            lines.append(line)
    for name, r in losses:
        lines.append(
            f"{name}: {_ha(r['mapped_ha'])} of forest loss mapped, {_ha(r['truth_ha'])} in the truth; "
            f"loss pixels precision {_f(r['precision'])}, recall {_f(r['recall'])}, F1 {_f(r['f1'])}."
        )
    lines += list(notes)
    lines += _gallery_line(maps)
    mmu = mmu_line(ctx, include)
    if mmu:
        lines.append(mmu)
    parts: list[Part] = [{"kind": "headlines", "lines": lines}] if lines else []
    if scores:
        columns: dict[str, list[Any]] = {
            k: [] for k in ("scored", "against", "overall accuracy", "mIoU", "kappa")
        }
        for row in scores:
            columns["scored"].append(row["scored"])
            columns["against"].append(row["against"])
            for key, col in (("accuracy", "overall accuracy"), ("miou", "mIoU"), ("kappa", "kappa")):
                columns[col].append(_f(row[key]))
        parts.append({"kind": "table", "caption": "accuracy against known truth", "columns": columns})
    table = _area_table(maps.areas)
    if table:
        parts.append(table)
    return parts


def _f(v: Any) -> str:
    return "–" if v is None or v != v else f"{float(v):.3f}"
