"""Quick-look PNGs, charts and an HTML page for change and forest-loss results.

Rasters are read *decimated*: GDAL is asked for at most ``MAX_PREVIEW`` pixels on the long
side and serves that from the COG's overviews when it has them (class maps' overviews use
mode resampling, so no class is invented), so memory does not grow with the map. Maps
not on the reference grid are warped onto it on the fly (nearest neighbour) so every
picture shows the same ground. Matplotlib runs with the Agg backend and its own figure
objects (no pyplot state), which is safe in worker threads and needs no display.
"""

from __future__ import annotations

import html
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import rasterio
from rasterio.enums import Resampling

from geoseg.grid import Grid
from geoseg.io import GDAL_ENV, ClassInfo

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from geoseg.change import AlignedMaps, ChangeResult, TrackResult

MAX_PREVIEW = 1400  # longest side of a quick-look, in pixels
NODATA_RGBA = (1.0, 1.0, 1.0, 0.0)
OTHER_CHANGE = (0.35, 0.35, 0.35)
UNCHANGED = (0.88, 0.88, 0.86)
# Distinct colours for the largest transitions (ColorBrewer Set1/Dark2 mix, no greys).
TRANSITION_COLOURS = [
    "#e41a1c", "#ff7f00", "#984ea3", "#377eb8", "#a65628", "#f781bf",
    "#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02",
]  # fmt: skip


# ======================================================================================
# Reading


def preview_shape(shape: tuple[int, int], max_size: int = MAX_PREVIEW) -> tuple[int, int]:
    """The decimated (height, width) for a quick-look of a ``shape`` raster."""
    h, w = shape
    f = max(1.0, max(h, w) / max_size)
    return max(1, round(h / f)), max(1, round(w / f))


def read_preview(
    path: str | os.PathLike[str],
    grid: Grid | None = None,
    max_size: int = MAX_PREVIEW,
    bands: Sequence[int] = (1,),
    resampling: Resampling = Resampling.nearest,
) -> tuple[np.ndarray, np.ndarray]:
    """Decimated read of ``bands`` -> ((bands, h, w) values, (h, w) valid mask).

    With ``grid`` the raster is warped onto it first (nearest neighbour), so previews of
    maps on different grids line up.
    """
    from rasterio.vrt import WarpedVRT

    with rasterio.Env(**GDAL_ENV), rasterio.open(path) as ds:
        own = Grid.from_dataset(ds)
        if grid is None or own.same_as(grid):
            target = own
            out_shape = (len(bands), *preview_shape(own.shape, max_size))
            data = ds.read(list(bands), out_shape=out_shape, resampling=resampling)
            mask = ds.read_masks(bands[0], out_shape=out_shape[1:], resampling=Resampling.nearest)
        else:
            target = grid
            nodata = ds.nodata if ds.nodata is not None else 255
            with WarpedVRT(
                ds, crs=grid.crs, transform=grid.transform, width=grid.width, height=grid.height,
                resampling=Resampling.nearest, src_nodata=nodata, nodata=nodata,
            ) as vrt:  # fmt: skip
                out_shape = (len(bands), *preview_shape(target.shape, max_size))
                data = vrt.read(list(bands), out_shape=out_shape, resampling=resampling)
                mask = vrt.read_masks(bands[0], out_shape=out_shape[1:], resampling=Resampling.nearest)
    return data, mask > 0


def _metres_per_preview_px(grid: Grid, preview_w: int) -> float:
    from geoseg.areas import area_model

    return area_model(grid).pixel_size_m * grid.width / preview_w


# ======================================================================================
# Drawing helpers


def _figure(width_in: float, height_in: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width_in, height_in), dpi=100, layout="constrained")


def _map_figure(
    shape: tuple[int, int], legend_items: int = 0, legend_title: bool = False
) -> tuple[Figure, Axes]:
    """A figure sized to the map plus its title and a legend of three columns below it."""
    h, w = shape
    width_in = 10.0
    map_h = (width_in - 0.2) * h / w
    rows = math.ceil(legend_items / 3)
    legend_h = (0.22 * rows + 0.2 + (0.25 if legend_title else 0.0)) if legend_items else 0.0
    fig = _figure(width_in, min(16.0, map_h + 0.45 + legend_h))
    ax = fig.add_subplot(1, 1, 1)
    ax.set_axis_off()
    return fig, ax


def _scale_bar(ax: Axes, grid: Grid, preview_w: int) -> None:
    """A scale bar about a fifth of the map wide, at a round length."""
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    m_per_px = _metres_per_preview_px(grid, preview_w)
    target = preview_w * m_per_px / 5
    exp = 10 ** math.floor(math.log10(target))
    length = max(v * exp for v in (1, 2, 5) if v * exp <= target) if target >= exp else exp
    label = f"{length / 1000:g} km" if length >= 1000 else f"{length:g} m"
    bar = AnchoredSizeBar(
        ax.transData, length / m_per_px, label, "lower left", pad=0.4, color="black",
        frameon=True, size_vertical=max(1.0, preview_w / 300), fontproperties={"size": 9},
    )  # fmt: skip
    bar.patch.set_alpha(0.75)
    ax.add_artist(bar)


def _legend(fig: Figure, ax: Axes, items: Sequence[tuple[str, Any]], title: str | None = None) -> None:
    from matplotlib.patches import Patch

    if not items:
        return
    handles = [Patch(facecolor=c, edgecolor="0.3", linewidth=0.5, label=label) for label, c in items]
    ncol = min(3, len(handles))
    fig.legend(handles=handles, loc="outside lower center", ncol=ncol, fontsize=9, title=title, frameon=False)


def _rgb(colour: Sequence[int]) -> tuple[float, float, float]:
    return (colour[0] / 255, colour[1] / 255, colour[2] / 255)


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=100, facecolor="white")
    return path


def _crs_caption(grid: Grid) -> str:
    crs = grid.crs.to_string() if grid.crs else "no CRS"
    return f"{crs}, {grid.width} x {grid.height} px"


# ======================================================================================
# Maps


def plot_class_map(
    path: str | os.PathLike[str],
    classes: Sequence[ClassInfo],
    out: Path,
    title: str,
    grid: Grid | None = None,
    areas_ha: Sequence[float] | None = None,
) -> Path:
    """A class map in its classes' colours, with a legend (and each class's area)."""
    data, valid = read_preview(path, grid)
    values = data[0].astype(np.int64)
    rgba = np.zeros((*values.shape, 4))
    rgba[:] = NODATA_RGBA
    for c in classes:
        hit = valid & (values == c.id)
        rgba[hit] = (*_rgb(c.colour), 1.0)
    fig, ax = _map_figure(values.shape, len(classes))
    ax.imshow(rgba, interpolation="nearest")
    ax.set_title(title, fontsize=12)
    if grid is None:
        with rasterio.open(path) as ds:
            grid = Grid.from_dataset(ds)
    _scale_bar(ax, grid, values.shape[1])
    labels = [
        (f"{c.name} ({areas_ha[k]:,.0f} ha)" if areas_ha is not None else c.name, _rgb(c.colour))
        for k, c in enumerate(classes)
    ]
    _legend(fig, ax, labels)
    return _save(fig, out)


def plot_change_map(
    path: str | os.PathLike[str], result: ChangeResult, out: Path, title: str, top: int = 8
) -> Path:
    """Unchanged pixels pale grey; the ``top`` largest transitions in distinct colours; the
    rest dark grey."""
    from geoseg.change import ChangeEncoding

    enc = ChangeEncoding(len(result.classes))
    data, valid = read_preview(path)
    codes = data[0].astype(np.int64)
    i, j = enc.split(codes)
    rgba = np.zeros((*codes.shape, 4))
    rgba[:] = NODATA_RGBA
    rgba[valid & (i == j)] = (*UNCHANGED, 1.0)
    rgba[valid & (i != j)] = (*OTHER_CHANGE, 1.0)
    ranked = _ranked_changes(result)
    items: list[tuple[str, Any]] = [("unchanged", UNCHANGED)]
    for k, (a, b) in enumerate(ranked[:top]):
        colour = TRANSITION_COLOURS[k % len(TRANSITION_COLOURS)]
        rgba[valid & (codes == enc.code(a, b))] = _hex_rgba(colour)
        items.append((f"{result.names[a]} → {result.names[b]} ({result.area_ha[a, b]:,.1f} ha)", colour))
    if len(ranked) > top:
        rest = sum(result.area_ha[a, b] for a, b in ranked[top:])
        items.append((f"other change ({rest:,.1f} ha)", OTHER_CHANGE))
    fig, ax = _map_figure(codes.shape, len(items))
    ax.imshow(rgba, interpolation="nearest")
    ax.set_title(title, fontsize=12)
    _scale_bar(ax, result.grid, codes.shape[1])
    _legend(fig, ax, items)
    return _save(fig, out)


def _hex_rgba(colour: str) -> tuple[float, float, float, float]:
    from matplotlib.colors import to_rgba

    r, g, b, a = to_rgba(colour)
    return (r, g, b, a)


def _ranked_changes(result: ChangeResult) -> list[tuple[int, int]]:
    n = len(result.classes)
    pairs = [(a, b) for a in range(n) for b in range(n) if a != b and result.pixels[a, b] > 0]
    return sorted(pairs, key=lambda ab: (-result.area_ha[ab], ab))


def plot_loss_year_map(
    path: str | os.PathLike[str],
    result: TrackResult,
    out: Path,
    title: str,
    background: tuple[str | os.PathLike[str], Sequence[int], Grid | None] | None = None,
) -> Path:
    """First loss year in yellow (early) to dark red (late) over a grey background (the
    first class map's forest in pale green, or a faded image)."""
    from geoseg.change import LOSS_NODATA, loss_year_palette

    data, valid = read_preview(path)
    years = data[0].astype(np.int64)
    rgba = np.zeros((*years.shape, 4))
    rgba[:] = NODATA_RGBA
    rgba[valid & (years == 0)] = (0.86, 0.90, 0.84, 1.0)
    if background is not None:
        bg_path, forest_ids, bg_grid = background
        bg, bg_valid = read_preview(bg_path, bg_grid or result.grid)
        if bg.shape[1:] == years.shape:
            forest = bg_valid & np.isin(bg[0], list(forest_ids)) & valid & (years == 0)
            rgba[forest] = (0.55, 0.72, 0.55, 1.0)
    palette = loss_year_palette(result.years[1:])
    items: list[tuple[str, Any]] = []
    for k in range(1, len(result.years)):
        yr = result.years[k]
        colour = tuple(v / 255 for v in palette[yr][:3])
        rgba[valid & (years == yr)] = (*colour, 1.0)
        items.append((f"{result.dates[k - 1]}–{result.dates[k]} ({result.loss_ha[k]:,.0f} ha)", colour))
    items = [
        ("forest throughout", (0.55, 0.72, 0.55)),
        ("never forest / no loss", (0.86, 0.90, 0.84)),
        *items,
    ]
    rgba[years == LOSS_NODATA] = NODATA_RGBA
    fig, ax = _map_figure(years.shape, len(items), legend_title=True)
    ax.imshow(rgba, interpolation="nearest")
    ax.set_title(title, fontsize=12)
    _scale_bar(ax, result.grid, years.shape[1])
    _legend(fig, ax, items, title="first forest loss")
    return _save(fig, out)


def plot_image(
    path: str | os.PathLike[str],
    bands: Sequence[int],
    out: Path,
    title: str,
    grid: Grid | None = None,
    stretch: tuple[float, float] = (2.0, 98.0),
) -> Path:
    """A false-colour composite of three bands, percentile-stretched per band."""
    data, valid = read_preview(path, grid, bands=bands, resampling=Resampling.average)
    img = np.zeros((*data.shape[1:], 3))
    for k in range(3):
        band = data[k].astype(np.float64)
        lo, hi = np.percentile(band[valid], stretch) if valid.any() else (0.0, 1.0)
        img[..., k] = np.clip((band - lo) / max(hi - lo, 1e-9), 0, 1)
    img[~valid] = 1.0
    fig, ax = _map_figure(img.shape[:2])
    ax.imshow(img, interpolation="nearest")
    ax.set_title(title, fontsize=12)
    if grid is None:
        with rasterio.open(path) as ds:
            grid = Grid.from_dataset(ds)
    _scale_bar(ax, grid, img.shape[1])
    return _save(fig, out)


# ======================================================================================
# Charts


def plot_transition_bars(result: ChangeResult, out: Path, top: int = 12) -> Path:
    """The ``top`` largest transitions as horizontal bars (ha), coloured by the new class."""
    ranked = _ranked_changes(result)[:top]
    fig = _figure(9.0, 1.2 + 0.42 * max(len(ranked), 1))
    ax = fig.add_subplot(1, 1, 1)
    if not ranked:
        ax.text(0.5, 0.5, "no change", ha="center", va="center", fontsize=14)
        ax.set_axis_off()
        return _save(fig, out)
    labels = [f"{result.names[a]} → {result.names[b]}" for a, b in ranked]
    values = [float(result.area_ha[a, b]) for a, b in ranked]
    colours = [_rgb(result.classes[b].colour) for _, b in ranked]
    y = np.arange(len(ranked))[::-1]
    bars = ax.barh(y, values, color=colours, edgecolor="0.25", linewidth=0.6)
    ax.set_yticks(y, labels, fontsize=10)
    ax.set_xlabel("area (ha)")
    ax.set_title("largest transitions", fontsize=12)
    ax.bar_label(bars, labels=[f"{v:,.1f}" for v in values], padding=3, fontsize=9)
    ax.set_xlim(0, max(values) * 1.18)
    ax.spines[["top", "right"]].set_visible(False)
    return _save(fig, out)


def plot_loss_chart(result: TrackResult, out: Path) -> Path:
    """Loss (and regrowth) per period as bars, cumulative loss as a line."""
    t = result.period_table()
    labels = [f"{a}–{b}" for a, b in zip(t["start_date"], t["end_date"], strict=True)]
    x = np.arange(len(labels))
    fig = _figure(max(7.0, 1.1 * len(labels) + 2), 5.2)
    ax = fig.add_subplot(1, 1, 1)
    w = 0.38
    b1 = ax.bar(x - w / 2, t["loss_ha"], w, color="#d7301f", label="forest loss")
    ax.bar(x + w / 2, t["regrowth_ha"], w, color="#41ab5d", label="regrowth")
    open_periods = len(labels) - (result.persist - 1)  # periods at the end that cannot confirm a loss
    ax.bar_label(b1, labels=[f"{v:,.0f}" if k < open_periods else "" for k, v in enumerate(t["loss_ha"])],
                 padding=2, fontsize=8)  # fmt: skip
    if result.persist > 1 and result.pending_ha > 0:
        # The last persist-1 periods cannot confirm a loss: show what is waiting instead of a bare 0.
        last = len(labels) - 1
        b3 = ax.bar([last - w / 2], [result.pending_ha], w, facecolor="none", edgecolor="#d7301f",
                    hatch="///", label="not yet confirmed (series ends)")  # fmt: skip
        ax.bar_label(b3, labels=[f"({result.pending_ha:,.0f})"], padding=2, fontsize=8, color="#d7301f")
    ax.set_xticks(
        x, labels, rotation=30 if len(labels) > 6 else 0, ha="right" if len(labels) > 6 else "center"
    )
    ax.set_ylabel("area per period (ha)")
    ax.spines[["top"]].set_visible(False)
    ax2 = ax.twinx()
    ax2.plot(x, t["cumulative_loss_ha"], "o-", color="#67000d", label="cumulative loss")
    ax2.set_ylabel("cumulative loss (ha)")
    ax2.set_ylim(0, max(max(t["cumulative_loss_ha"]), 1) * 1.1)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    fig.legend(h1 + h2, l1 + l2, loc="outside lower center", ncol=4, fontsize=9, frameon=False)
    ax.set_title(
        f"forest loss per period (non-forest for {result.persist} date{'s' if result.persist > 1 else ''} to count)",
        fontsize=11,
    )
    return _save(fig, out)


# ======================================================================================
# HTML


@dataclass
class _Section:
    title: str
    images: list[tuple[str, str]]  # (file name, caption)
    tables: list[tuple[str, dict[str, list[Any]]]]  # (caption, columns)
    text: str = ""


def html_cell(v: Any) -> str:
    """One table cell: numbers right-aligned (floats to 2 decimals, NaN as a dash)."""
    if isinstance(v, float):
        return f'<td class="num">{v:,.2f}</td>' if v == v else '<td class="num">–</td>'
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        return f'<td class="num">{v}</td>'
    return f"<td>{html.escape('' if v is None else str(v))}</td>"


def html_table(caption: str, columns: dict[str, list[Any]]) -> str:
    """A captioned table of equal-length ``columns`` (name -> values)."""
    names = list(columns)
    rows = len(columns[names[0]]) if names else 0
    head = "".join(f"<th>{html.escape(n)}</th>" for n in names)
    body = "".join("<tr>" + "".join(html_cell(columns[n][r]) for n in names) + "</tr>" for r in range(rows))
    return f"<table><caption>{html.escape(caption)}</caption><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


# one look for every page geoseg writes (a product's report, a workflow's report)
_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.6em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ccc; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { color: #555; font-size: 0.9em; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
caption { text-align: left; font-weight: 600; padding-bottom: 0.3em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; } th { background: #f2f2f2; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.meta { color: #555; font-size: 0.9em; } code { background: #f4f4f4; padding: 0 0.2em; }
"""


def html_page(title: str, meta: Sequence[str], body: str) -> str:
    """A self-contained HTML page: the title as heading, ``meta`` lines under it, then ``body``."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>\n"
        f"<h1>{html.escape(title)}</h1>\n"
        + "".join(f'<p class="meta">{html.escape(m)}</p>' for m in meta if m)
        + "\n"
        + body
        + "\n</body></html>\n"
    )


def write_html(path: Path, title: str, meta: Sequence[str], sections: Sequence[_Section]) -> Path:
    """One self-contained page (images beside it) tying pictures and tables together."""
    body: list[str] = []
    for s in sections:
        body.append(f"<h2>{html.escape(s.title)}</h2>")
        if s.text:
            body.append(f"<p>{html.escape(s.text)}</p>")
        for name, caption in s.images:
            body.append(
                f'<figure><img src="{html.escape(name)}" alt="{html.escape(caption)}">'
                f"<figcaption>{html.escape(caption)}</figcaption></figure>"
            )
        body += [html_table(c, cols) for c, cols in s.tables]
    path.write_text(html_page(title, meta, "\n".join(body)), encoding="utf-8")
    return path


def _round_table(columns: dict[str, list[Any]]) -> dict[str, list[Any]]:
    return {k: [round(v, 2) if isinstance(v, float) else v for v in col] for k, col in columns.items()}


# ======================================================================================
# Reports


def change_report(
    result: ChangeResult, maps: AlignedMaps, change_raster: str | os.PathLike[str], out_dir: Path
) -> Path:
    """before.png, after.png, change.png, transitions.png and index.html in ``out_dir``."""
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
            [
                ("before.png", f"land cover in {before}"),
                ("after.png", f"land cover in {after}"),
                ("change.png", "where the class changed, the largest transitions in colour"),
            ],
            [],
        ),
        _Section(
            "Transitions",
            [("transitions.png", "the largest transitions by area")],
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
    return write_html(out_dir / "index.html", f"Land-cover change: {before} → {after}", meta, sections)


def track_report(
    result: TrackResult,
    maps: AlignedMaps,
    loss_year: str | os.PathLike[str],
    out_dir: Path,
    imagery: Sequence[tuple[str, str | os.PathLike[str], Sequence[int], str]] | None = None,
) -> Path:
    """loss_year.png, loss_per_period.png, first/last land cover (and imagery), index.html.

    ``imagery``: (date, path, three 1-based bands, their names) of false-colour
    composites to show too.
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
        out_dir / "index.html", f"Forest loss {result.dates[0]}–{result.dates[-1]}", meta, sections
    )


def _safe(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in text)


__all__ = [
    "MAX_PREVIEW",
    "change_report",
    "plot_change_map",
    "plot_class_map",
    "plot_image",
    "plot_loss_chart",
    "plot_loss_year_map",
    "plot_transition_bars",
    "preview_shape",
    "read_preview",
    "track_report",
    "write_html",
]
