"""Scores of products against known truth: class maps, forest loss, class areas."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from geoseg.classes import ClassInfo
from geoseg.errors import ConfigError, GridMismatchError

if TYPE_CHECKING:
    from geoseg.training import Scores
    from geoseg.workflow import Item


def class_areas(path: Path) -> tuple[list[ClassInfo], list[float]]:
    """The class table of a class map and the area of each class in hectares (on the
    ellipsoid, like the polygons), read block by block."""
    import rasterio

    from geoseg.raster import Grid, iter_tiles, read_classes
    from geoseg.vector import area_model

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

    from geoseg.raster import Grid, iter_tiles

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
    from geoseg.raster import read_classes

    if item.classes is not None:
        return {int(v): n for v, n in item.classes}
    return {c.id: c.name for c in read_classes(item.path)}


def score_map(pred: Path, truth: Item) -> Scores:
    """Accuracy of a class map against a truth raster on the same grid, classes matched by
    *name* (a catalog label raster's values need not be the model's class ids)."""
    from geoseg.raster import read_classes
    from geoseg.training import Scores, confusion

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
    from geoseg.raster import Grid
    from geoseg.vector import area_model

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
