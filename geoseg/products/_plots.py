"""Quick-looks: class maps, change and loss-year maps, imagery, charts (matplotlib, headless)."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import rasterio
from rasterio.enums import Resampling

from geoseg.classes import ClassInfo
from geoseg.raster import GDAL_ENV, Grid

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from geoseg.temporal import ChangeResult, TrackResult


MAX_PREVIEW = 1400  # longest side of a quick-look, in pixels


NODATA_RGBA = (1.0, 1.0, 1.0, 0.0)


OTHER_CHANGE = (0.08, 0.08, 0.08)  # near black: no shade of a class is this dark


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
    from geoseg.vector import area_model

    return area_model(grid).pixel_size_m * grid.width / preview_w


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
    path: str | os.PathLike[str], result: ChangeResult, out: Path, title: str, top: int = 12
) -> Path:
    """The change raster in its own colours (:func:`geoseg.vector.transition_colour`):
    unchanged pixels a pale tint of their class, the ``top`` largest transitions (those of
    :func:`plot_transition_bars`) in their colours, the rest dark grey."""
    from geoseg.temporal import ChangeEncoding
    from geoseg.vector import transition_colour

    classes = list(result.classes)
    enc = ChangeEncoding(len(classes))
    data, valid = read_preview(path)
    codes = data[0].astype(np.int64)
    i, j = enc.split(codes)
    rgba = np.zeros((*codes.shape, 4))
    rgba[:] = NODATA_RGBA
    rgba[valid & (i != j)] = (*OTHER_CHANGE, 1.0)
    items: list[tuple[str, Any]] = []
    for k, c in enumerate(classes):
        hit = valid & (codes == enc.code(k, k))
        if hit.any():
            tint = _rgb(transition_colour(classes, k, k))
            rgba[hit] = (*tint, 1.0)
            items.append((f"{c.name}, unchanged", tint))
    ranked = _ranked_changes(result)
    for a, b in ranked[:top]:
        colour = _rgb(transition_colour(classes, a, b))
        rgba[valid & (codes == enc.code(a, b))] = (*colour, 1.0)
        items.append((f"{result.names[a]} → {result.names[b]} ({result.area_ha[a, b]:,.1f} ha)", colour))
    if len(ranked) > top:
        rest = sum(result.area_ha[a, b] for a, b in ranked[top:])
        items.append((f"{len(ranked) - top} other changes ({rest:,.1f} ha)", OTHER_CHANGE))
    fig, ax = _map_figure(codes.shape, len(items))
    ax.imshow(rgba, interpolation="nearest")
    ax.set_title(title, fontsize=12)
    _scale_bar(ax, result.grid, codes.shape[1])
    _legend(fig, ax, items)
    return _save(fig, out)


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
    from geoseg.temporal import LOSS_NODATA
    from geoseg.vector import loss_year_palette

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
    img = stretch_rgb(data, valid, stretch)
    fig, ax = _map_figure(img.shape[:2])
    ax.imshow(img, interpolation="nearest")
    ax.set_title(title, fontsize=12)
    if grid is None:
        with rasterio.open(path) as ds:
            grid = Grid.from_dataset(ds)
    _scale_bar(ax, grid, img.shape[1])
    return _save(fig, out)


def stretch_rgb(
    data: np.ndarray, valid: np.ndarray, stretch: tuple[float, float] = (2.0, 98.0)
) -> np.ndarray:
    """Three bands ``(3, h, w)`` as an ``(h, w, 3)`` image in 0..1, each band stretched between
    its ``stretch`` percentiles over the valid pixels; invalid pixels white."""
    img = np.zeros((*data.shape[1:], 3))
    for k in range(3):
        band = data[k].astype(np.float64)
        lo, hi = np.percentile(band[valid], stretch) if valid.any() else (0.0, 1.0)
        img[..., k] = np.clip((band - lo) / max(hi - lo, 1e-9), 0, 1)
    img[~valid] = 1.0
    return img


def plot_transition_bars(result: ChangeResult, out: Path, top: int = 12) -> Path:
    """The ``top`` largest transitions as horizontal bars (ha), each in its colour on the change
    map (:func:`geoseg.vector.transition_colour`)."""
    from geoseg.vector import transition_colour

    ranked = _ranked_changes(result)[:top]
    fig = _figure(9.0, 1.2 + 0.42 * max(len(ranked), 1))
    ax = fig.add_subplot(1, 1, 1)
    if not ranked:
        ax.text(0.5, 0.5, "no change", ha="center", va="center", fontsize=14)
        ax.set_axis_off()
        return _save(fig, out)
    labels = [f"{result.names[a]} → {result.names[b]}" for a, b in ranked]
    values = [float(result.area_ha[a, b]) for a, b in ranked]
    colours = [_rgb(transition_colour(list(result.classes), a, b)) for a, b in ranked]
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
