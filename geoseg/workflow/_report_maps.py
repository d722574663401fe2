"""The report's maps: quick-looks of single maps, galleries of tiles or dates, and class areas.

A step that maps one scene gets a figure per map (and per image and truth of a synthetic
step), with a legend and each class's area. A predict step that maps many images (the
tiles of a label set, the dates of a time series) gets a gallery instead: one row per
image, *image | mask | map* side by side when the label set has masks for the split,
each map scored against the mask beside it. ``max_maps`` caps the quick-looks; what it
leaves out is counted and said, never dropped silently.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from geoseg.products import class_areas, plot_class_map, plot_image, tile_panels

if TYPE_CHECKING:
    from geoseg.products import TilePanels
    from geoseg.workflow._context import Context
    from geoseg.workflow._spec import Step

Part = dict[str, Any]


@dataclass
class Gallery:
    """What the summary says of one step's gallery."""

    step: str
    what: str  # "tiles of amazon-s2-rgb (validation)"
    total: int
    shown: int
    with_masks: bool
    scored: list[tuple[str, float, float]] = field(default_factory=list)  # (key, accuracy, mIoU)


@dataclass
class Maps:
    """The map sections, and what the summary needs of them."""

    sections: list[tuple[str, list[Part]]] = field(default_factory=list)  # (title, parts)
    areas: dict[str, dict[str, float]] = field(default_factory=dict)  # column -> class name -> ha
    galleries: list[Gallery] = field(default_factory=list)
    left_out: int = 0  # single-map quick-looks over max_maps


class _Budget:
    """How many quick-looks are left under ``max_maps`` (None: no cap)."""

    def __init__(self, cap: int | None) -> None:
        self.cap = cap
        self.used = 0

    def take(self) -> bool:
        if self.cap is not None and self.used >= self.cap:
            return False
        self.used += 1
        return True


def maps_sections(ctx: Context, folder: Path, include: Sequence[str], max_maps: int | None) -> Maps:
    """Quick-looks of every map the included steps made (at most ``max_maps`` of them)."""
    wf = ctx.workflow
    out = Maps()
    budget = _Budget(max_maps)
    figs: list[tuple[str, str]] = []
    for name in include:
        step = wf.step(name)
        if step.kind == "predict" and len(step.outputs.get("map", ())) > 1:
            _gallery(ctx, step, folder, budget, out)
            continue
        for out_name in ("image", "truth", "map"):
            for item in step.outputs.get(out_name, ()):
                if not item.path.exists():
                    continue
                title = f"{name}{' ' + item.key if item.key else ''}"
                stem = f"{name}{'_' + item.key if item.key else ''}{'_truth' if out_name == 'truth' else ''}"
                if out_name == "image":
                    if not budget.take():
                        out.left_out += 1
                        continue
                    _plot_image(item.path, item.band_names, folder / f"{stem}.jpg", f"{title}: imagery")
                    figs.append((f"{stem}.jpg", f"{title}: the imagery (false colour)"))
                    continue
                classes, areas = class_areas(item.path)
                label = "known truth" if out_name == "truth" else "land cover"
                out.areas[f"{title} ({'truth' if out_name == 'truth' else 'map'})"] = {
                    c.name: a for c, a in zip(classes, areas, strict=True)
                }
                if not budget.take():
                    out.left_out += 1
                    continue
                plot_class_map(
                    item.path, classes, folder / f"{stem}.png", f"{title}: {label}", areas_ha=areas
                )
                figs.append((f"{stem}.png", f"{title}: {label}, with each class's area"))
    if figs or out.left_out:
        parts: list[Part] = [{"kind": "figures", "figures": figs}] if figs else []
        if out.left_out:
            parts.append(_text(f"{out.left_out} more quick-look{'s' if out.left_out > 1 else ''} not shown "
                               f"(max_maps: {max_maps}; max_maps: all shows every one)."))  # fmt: skip
        out.sections.insert(0, ("Maps", parts))
    return out


def _text(text: str) -> Part:
    return {"kind": "text", "text": text}


def _masks(step: Step) -> tuple[dict[Path, Path], dict[int, str], str]:
    """For a predict step over a catalog label set: ``{image: mask}``, the masks' class
    names, and what the images are (``"tiles of NAME (SPLIT)"``); empty where there are none."""
    from geoseg.data import LabelSetEntry, load_catalog

    ref = step.refs["images"][0]
    if ref.entry is None:
        return {}, {}, f"maps of {ref.text}"
    entry = load_catalog().get(ref.entry)
    if not isinstance(entry, LabelSetEntry) or not entry.splits:
        return {}, {}, f"dates of {ref.entry}"
    split = str(step.params.get("split", "validation"))
    what = f"tiles of {ref.entry} ({split})"
    if entry.split(split).masks is None:
        return {}, {}, what
    pairs = {img.resolve(): mask for img, mask in entry.pairs(split)}
    return pairs, entry.class_names(), what


def _gallery(ctx: Context, step: Step, folder: Path, budget: _Budget, out: Maps) -> None:
    from geoseg.raster import read_classes
    from geoseg.workflow._context import readable

    images = {i.key: i for i in step.refs["images"][0].items}
    masks, mask_names, what = _masks(step)
    gallery = Gallery(step.name, what, 0, 0, bool(masks))
    rows: list[dict[str, Any]] = []
    legend: dict[str, tuple[int, int, int]] = {}
    notes: list[str] = []
    column: dict[str, float] = {}
    for item in step.outputs["map"]:
        if not item.path.exists():
            continue
        gallery.total += 1
        classes, areas = class_areas(item.path)
        for c, a in zip(classes, areas, strict=True):
            column[c.name] = column.get(c.name, 0.0) + a
            legend.setdefault(c.name, c.colour)
        image = images.get(item.key)
        if image is None or not budget.take():
            continue
        gallery.shown += 1
        src = readable(image)
        mask = masks.get(image.path.resolve())
        panels = tile_panels(
            src, _display_bands(src, image.band_names), item.path, read_classes(item.path), folder,
            f"{step.name}_{item.key}", mask=mask, mask_names=mask_names,
        )  # fmt: skip
        rows.append(_row(str(item.key), panels, gallery))
        if panels.note:
            notes.append(panels.note)
    out.areas[f"{step.name} ({gallery.total} maps, summed)"] = column
    out.galleries.append(gallery)
    header = ["image", "mask", "map"] if masks else ["image", "map"]
    intro = f"{gallery.total} {what} mapped by {step.name}"
    intro += (
        f", each shown as {' | '.join(header)}"
        if gallery.shown == gallery.total
        else f"; {gallery.shown} shown as {' | '.join(header)}, {gallery.total - gallery.shown} left out "
        f"(max_maps: {budget.cap}; max_maps: all shows every one)"
    )
    if masks:
        intro += ". Each map is scored against the mask beside it (classes matched by name)."
    else:
        intro += " (the split has no masks to score against)." if "tiles of" in what else "."
    parts: list[Part] = [_text(intro)]
    parts += [_text(n) for n in notes]
    parts.append({"kind": "legend", "entries": [(n, _hex(c)) for n, c in legend.items()]})
    parts.append({"kind": "tiles", "header": header, "rows": rows})
    title = f"Tiles: {step.name}" if "tiles of" in what else f"Maps: {step.name}"
    out.sections.append((title, parts))


def _row(key: str, panels: TilePanels, gallery: Gallery) -> dict[str, Any]:
    cells: list[tuple[str | None, str]] = [(panels.image, f"{key}: imagery")]
    if gallery.with_masks:
        cells.append((panels.mask, f"{key}: mask"))
    cells.append((panels.map, f"{key}: map"))
    caption = key
    if panels.scores is not None:
        s = panels.scores
        gallery.scored.append((key, s.accuracy, s.miou))
        caption += f": accuracy {s.accuracy:.3f}, mIoU {s.miou:.3f} against the mask"
    return {"panels": cells, "caption": caption}


def _hex(colour: Sequence[int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*colour[:3])


def _display_bands(path: Path, names: Sequence[str] | None) -> list[int]:
    """Three 1-based bands to show: NIR/red/green (vegetation red), else red/green/blue."""
    from geoseg.raster import open_raster

    src = open_raster(path, require_crs=False)
    found = [n.lower() for n in (names or src.band_names)]
    for combo in (("nir", "red", "green"), ("red", "green", "blue")):
        if all(b in found for b in combo):
            return [found.index(b) + 1 for b in combo]
    return [1, 2, 3] if src.count >= 3 else [1, 1, 1]


def _plot_image(path: Path, names: Sequence[str] | None, out: Path, title: str) -> None:
    # Imagery is photographic: as JPEG it is a tenth of the PNG's size for the same look.
    from PIL import Image

    tmp = out.with_suffix(".tmp.png")
    plot_image(path, _display_bands(path, names), tmp, title)
    with Image.open(tmp) as im:
        im.convert("RGB").save(out, "JPEG", quality=85, optimize=True)
    tmp.unlink()


def mean_scores(scored: Sequence[tuple[str, float, float]]) -> tuple[float, float]:
    """The mean accuracy and mIoU of a gallery's tiles."""
    return (
        sum(a for _, a, _ in scored) / len(scored),
        sum(m for _, _, m in scored) / len(scored),
    )
