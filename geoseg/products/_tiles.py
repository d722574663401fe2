"""Side-by-side panels of a mapped tile: its imagery, its reference mask and the map.

Each panel is a plain picture at the tile's own pixels (no axes, no legend: the page
shows one legend for all of them), so fifteen tiles cost fifteen small files a panel
rather than fifteen matplotlib figures. The map and the mask are drawn in the map's
class colours, classes matched by name, so one colour means one class in both. The map
is scored against the mask it is shown beside.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from rasterio.enums import Resampling

from geoseg.classes import ClassInfo

if TYPE_CHECKING:
    from geoseg.training import Scores

PathLike = str | os.PathLike[str]

#: the longest side of a panel, in pixels (a 512 px tile keeps every pixel)
PANEL_SIZE = 640

_NODATA_RGB = (255, 255, 255)
_UNKNOWN_RGB = (128, 128, 128)  # a mask value the label set does not name


@dataclass(frozen=True)
class TilePanels:
    """The panels written for one tile (file names in the folder) and its scores."""

    image: str
    map: str
    mask: str | None = None
    scores: Scores | None = None
    note: str = ""  # what the reader should know about the mask (cropped, not shown)


def _class_rgb(
    values: np.ndarray, valid: np.ndarray, colours: Mapping[int, tuple[int, int, int]]
) -> np.ndarray:
    rgb = np.empty((*values.shape, 3), dtype=np.uint8)
    rgb[:] = _UNKNOWN_RGB
    for v, c in colours.items():
        rgb[values == v] = c
    rgb[~valid] = _NODATA_RGB
    return rgb


def _read_mask(mask: Path, shape: tuple[int, int]) -> tuple[np.ndarray | None, str]:
    """The mask's first band on the map's pixel grid, and a note when it is not exactly so.

    Masks of tile label sets carry no georeferencing: they lie on the image's pixel grid.
    One a few rows larger than its image (a known quirk of real label sets) is cropped, as
    training crops it; one that does not cover the image is left out, with the reason.
    """
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)  # expected: a PNG on the pixel grid
        with rasterio.open(mask) as ds:
            data = ds.read(1)
    h, w = shape
    if data.shape[0] < h or data.shape[1] < w:
        return None, (
            f"mask {mask.name} is {data.shape[1]} x {data.shape[0]} px, smaller than the map's {w} x {h}: not shown"
        )
    note = ""
    if data.shape != (h, w):
        note = f"mask {mask.name} is {data.shape[1]} x {data.shape[0]} px: cropped to the map's {w} x {h}"
    return data[:h, :w], note


def _decimate(a: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour ``a`` at ``shape`` (class values stay class values)."""
    if a.shape[:2] == shape:
        return a
    rows = (np.arange(shape[0]) * a.shape[0] / shape[0]).astype(np.int64)
    cols = (np.arange(shape[1]) * a.shape[1] / shape[1]).astype(np.int64)
    return a[rows][:, cols]


def tile_panels(
    image: PathLike,
    bands: Sequence[int],
    classmap: PathLike,
    classes: Sequence[ClassInfo],
    out_dir: Path,
    stem: str,
    mask: PathLike | None = None,
    mask_names: Mapping[int, str] | None = None,
) -> TilePanels:
    """Write ``STEM_image.jpg``, ``STEM_map.png`` (and ``STEM_mask.png``) into ``out_dir``.

    Parameters
    ----------
    image
        The tile's imagery; ``bands`` (1-based, three) are shown as red, green, blue,
        each stretched between its 2nd and 98th percentiles.
    classmap
        The class map of the tile, with its ``classes`` (their colours are the panels').
    out_dir, stem
        Where the panels go and how their names start.
    mask, mask_names
        The tile's reference mask on the map's pixel grid and its ``{value: class name}``.

    Returns
    -------
    TilePanels
        The file names, the map's scores against the mask (classes matched by name) and a
        note when the mask had to be cropped or could not be shown.
    """
    import rasterio
    from PIL import Image

    from geoseg.products._plots import read_preview, stretch_rgb
    from geoseg.products._scores import _name_index
    from geoseg.training import Scores, confusion

    values, valid = read_preview(classmap, max_size=PANEL_SIZE)
    shape = values.shape[1:]
    colours = {c.id: c.colour for c in classes}
    map_png = f"{stem}_map.png"
    Image.fromarray(_class_rgb(values[0], valid, colours)).save(out_dir / map_png, optimize=True)

    data, img_valid = read_preview(image, bands=bands, max_size=PANEL_SIZE, resampling=Resampling.average)
    rgb = (255 * stretch_rgb(data, img_valid)).round().astype(np.uint8)
    image_jpg = f"{stem}_image.jpg"
    # imagery is photographic: as JPEG a tenth of the PNG's size for the same look
    Image.fromarray(_decimate(rgb, shape)).save(out_dir / image_jpg, "JPEG", quality=88, optimize=True)

    if mask is None:
        return TilePanels(image_jpg, map_png)
    with rasterio.open(classmap) as ds:
        full = ds.read(1)
        full_valid = ds.read_masks(1) > 0
    truth, note = _read_mask(Path(mask), full.shape)
    if truth is None:
        return TilePanels(image_jpg, map_png, note=note)
    names = {int(v): n for v, n in (mask_names or {}).items()}
    truth_valid = np.isin(truth, list(names))
    by_name = {c.name: c.colour for c in classes}
    mask_colours = {v: by_name.get(n, _UNKNOWN_RGB) for v, n in names.items()}
    mask_png = f"{stem}_mask.png"
    small = _decimate(truth, shape)
    Image.fromarray(_class_rgb(small, np.isin(small, list(names)), mask_colours)).save(
        out_dir / mask_png, optimize=True
    )
    order = [c.name for c in classes]
    matrix = confusion(
        _name_index(truth, truth_valid, names, order),
        _name_index(full, full_valid, {c.id: c.name for c in classes}, order),
        len(order),
    )
    return TilePanels(image_jpg, map_png, mask_png, Scores(matrix, order), note)
