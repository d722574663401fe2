"""HTML reports of change and track products."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from geoseg.temporal import AlignedMaps, ChangeResult, TrackResult
from geoseg.products._html import render_html
from geoseg.products._plots import (
    _crs_caption,
    plot_change_map,
    plot_class_map,
    plot_image,
    plot_loss_chart,
    plot_loss_year_map,
    plot_transition_bars,
)


@dataclass
class _Section:
    title: str
    images: list[tuple[str, str]]  # (file name, caption)
    tables: list[tuple[str, dict[str, list[Any]]]]  # (caption, columns)
    text: str = ""


#: A link a report shows above its title: (href relative to the report's folder, the page's title).
BackLink = tuple[str, str]


def write_html(
    path: Path, title: str, meta: Sequence[str], sections: Sequence[_Section], back: BackLink | None = None
) -> Path:
    """One self-contained page (images beside it) tying pictures and tables together;
    ``back`` links to the page it belongs to (a workflow's report)."""
    page = render_html("product_report.html.j2", title=title, meta=meta, sections=sections, back=back)
    path.write_text(page, encoding="utf-8")
    return path


def _round_table(columns: dict[str, list[Any]]) -> dict[str, list[Any]]:
    return {k: [round(v, 2) if isinstance(v, float) else v for v in col] for k, col in columns.items()}


def change_report(
    result: ChangeResult,
    maps: AlignedMaps,
    change_raster: str | os.PathLike[str],
    out_dir: Path,
    back: BackLink | None = None,
) -> Path:
    """before.png, after.png, change.png, transitions.png and index.html in ``out_dir``;
    ``back`` (href, title) links the page to the one it belongs to."""
    from geoseg import __version__

    out_dir.mkdir(parents=True, exist_ok=True)
    t = result.class_table()
    before, after = Path(result.before).name, Path(result.after).name
    plot_class_map(maps.maps[0].path, result.classes, out_dir / "before.png", f"before: {before}",
                   maps.grid, t["before_ha"])  # fmt: skip
    plot_class_map(maps.maps[1].path, result.classes, out_dir / "after.png", f"after: {after}",
                   maps.grid, t["after_ha"])  # fmt: skip
    plot_change_map(change_raster, result, out_dir / "change.png", f"change: {before} → {after}")
    plot_transition_bars(result, out_dir / "transitions.png")
    changed = float(result.area_ha.sum() - np.trace(result.area_ha))
    total = float(result.area_ha.sum())
    matrix = result.matrix_table()
    sections = [
        _Section(
            "Maps",
            [("before.png", f"land cover in {before}"), ("after.png", f"land cover in {after}")],
            [],
        ),
        _Section(
            "Transitions",
            [
                (
                    "change.png",
                    "where the class changed: unchanged pixels in a pale tint of their class, the "
                    "largest transitions in the colours of the chart, the change raster and the QGIS style",
                ),
                ("transitions.png", "the largest transitions by area"),
            ],
            [
                ("transition matrix (ha): rows = before, columns = after", _round_table(matrix)),
                ("per class (ha)", _round_table(t)),
                ("every transition", _round_table(result.transitions(changed_only=True))),
            ],
            f"{changed:,.2f} ha of {total:,.2f} ha compared changed class "
            f"({100 * changed / max(total, 1e-12):.2f} %). Pixels that are nodata in either map are left out.",
        ),
    ]
    meta = [
        f"before: {result.before}", f"after: {result.after}",
        f"grid: {_crs_caption(result.grid)}; areas on the ellipsoid (equal-area)",
        f"geoseg {__version__}",
    ]  # fmt: skip
    if result.warped:
        meta.append(f"reprojected onto the reference grid (nearest neighbour): {', '.join(result.warped)}")
    return write_html(out_dir / "index.html", f"Land-cover change: {before} → {after}", meta, sections, back)


def track_report(
    result: TrackResult,
    maps: AlignedMaps,
    loss_year: str | os.PathLike[str],
    out_dir: Path,
    imagery: Sequence[tuple[str, str | os.PathLike[str], Sequence[int], str]] | None = None,
    back: BackLink | None = None,
) -> Path:
    """loss_year.png, loss_per_period.png, first/last land cover (and imagery), index.html.

    ``imagery``: (date, path, three 1-based bands, their names) of false-colour
    composites to show too; ``back`` (href, title) links the page to the one it belongs to.
    """
    from geoseg import __version__

    out_dir.mkdir(parents=True, exist_ok=True)
    forest_ids = [c.id for c in maps.classes if c.name in result.forest]
    plot_loss_year_map(
        loss_year, result, out_dir / "loss_year.png",
        f"first year of forest loss, {result.dates[0]}–{result.dates[-1]}",
        background=(maps.maps[0].path, forest_ids, maps.grid),
    )  # fmt: skip
    plot_loss_chart(result, out_dir / "loss_per_period.png")
    images: list[tuple[str, str]] = [
        ("loss_year.png", "date of first confirmed forest loss (the end of the period in which it happened)"),
        ("loss_per_period.png", "forest loss and regrowth per period, and cumulative loss"),
    ]
    for k, name in ((0, "first"), (len(maps.maps) - 1, "last")):
        png = f"landcover_{name}.png"
        plot_class_map(maps.maps[k].path, maps.classes, out_dir / png,
                       f"land cover {result.dates[k]}", maps.grid)  # fmt: skip
        images.append((png, f"classified land cover, {result.dates[k]}"))
    for date, path, bands, names in imagery or ():
        png = f"image_{_safe(date)}.png"
        plot_image(path, bands, out_dir / png, f"imagery {date} ({names} as red, green, blue)", maps.grid)
        images.append((png, f"false-colour composite {names}, {date}"))
    sections = [
        _Section("Maps and charts", images, []),
        _Section(
            "Tables",
            [],
            [
                ("forest loss per period (ha)", _round_table(result.period_table())),
                ("forest per date (ha)", _round_table(result.date_table())),
            ],
            f"A pixel counts as lost at a date when its last valid observation before was forest and it is "
            f"non-forest for {result.persist} valid date{'s' if result.persist > 1 else ''} from then on. "
            f"Unconfirmed at the end of the series: {result.pending_ha:,.2f} ha.",
        ),
    ]
    meta = [
        f"maps: {', '.join(Path(p).name for p in result.paths)}",
        f"forest classes: {', '.join(result.forest)}; grid: {_crs_caption(result.grid)}; areas on the ellipsoid",
        f"geoseg {__version__}",
    ]
    return write_html(
        out_dir / "index.html", f"Forest loss {result.dates[0]}–{result.dates[-1]}", meta, sections, back
    )


def _safe(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in text)
