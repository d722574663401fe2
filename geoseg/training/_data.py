"""Training data: label sets and synthetic scenes as samples, masks, polygon labels, chips."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from geoseg.classes import ClassInfo, default_colour
from geoseg.errors import (
    BadRasterError,
    ConfigError,
    DataQuirkWarning,
)
from geoseg.raster import RasterSource, open_raster
from geoseg.training._config import TrainConfig
from geoseg.training._pseudo import pseudo_samples

if TYPE_CHECKING:
    from geoseg.inference import ValueDomain
from geoseg.training._samples import Dataset, Sample

IGNORE = 255


MAX_MASK_CROP = 8  # masks up to this many pixels larger than their image are cropped


def read_mask(path: str | os.PathLike[str], shape: tuple[int, int]) -> np.ndarray:
    """A label mask on its image's pixel grid (no georeferencing needed), cropped if a few
    pixels too large (a real quirk of the Amazon set: one mask is 512 x 515)."""
    import rasterio

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "not georeferenced": masks live on the image grid
        try:
            with rasterio.open(path) as ds:
                mask = ds.read(1)
        except rasterio.errors.RasterioIOError as exc:
            raise BadRasterError(f"cannot read mask ({exc})", path) from exc
    h, w = shape
    mh, mw = mask.shape
    if (mh, mw) != (h, w):
        if mh < h or mw < w or mh - h > MAX_MASK_CROP or mw - w > MAX_MASK_CROP:
            raise BadRasterError(
                f"mask is {mw} x {mh} px but its image is {w} x {h}; only masks up to {MAX_MASK_CROP} px larger are cropped",
                path,
            )
        warnings.warn(
            f"{path}: mask is {mw} x {mh} px, image {w} x {h}; cropped to the image",
            DataQuirkWarning,
            stacklevel=2,
        )
        mask = mask[:h, :w]
    return mask


def _remap(raw: np.ndarray, values: Sequence[int]) -> np.ndarray:
    """Label values -> class indices 0..K-1; anything else -> 255 (ignored)."""
    lut = np.full(max(int(raw.max()) + 1, max(values) + 1, 256) if raw.size else 256, IGNORE, dtype=np.uint8)
    for i, v in enumerate(values):
        lut[v] = i
    return lut[np.clip(raw, 0, len(lut) - 1).astype(np.int64)]


def load_labelset(name: str, cfg: TrainConfig) -> Dataset:
    """A catalog label set as in-memory samples (pairs, or a label raster / polygons)."""
    from geoseg.data import LabelSetEntry, SceneEntry, load_catalog

    entry = load_catalog().get(name, LabelSetEntry)
    values = [c.value for c in entry.classes]
    classes = [ClassInfo(i, c.name, c.colour or default_colour(i)) for i, c in enumerate(entry.classes)]
    band_names = list(entry.bands) if entry.bands else None
    if entry.splits:
        loaded: dict[str, list[Sample]] = {}
        for split in dict.fromkeys((cfg.split_train, cfg.split_val)):  # evaluate reads one split once
            samples = loaded.setdefault(split, [])
            for image, mask in entry.pairs(split):
                src = open_raster(image, band_names=band_names, bands=cfg.bands, require_crs=False)
                pixels, valid = src.read()
                labels = _remap(read_mask(mask, src.grid.shape), values)
                labels[~valid] = IGNORE
                samples.append(Sample(pixels.astype(np.float32), valid, labels, Path(image).name))
        train, val = loaded[cfg.split_train], loaded[cfg.split_val]
        first = entry.pairs(cfg.split_train)[0][0]
        first_src = open_raster(first, band_names=band_names, bands=cfg.bands, require_crs=False)
        bands = list(first_src.band_names)
        prov: dict[str, Any] = {"dataset": name, "train_split": cfg.split_train, "val_split": cfg.split_val,
                                "train_images": len(train), "val_images": len(val)}  # fmt: skip
        if cfg.pseudo_labels is not None:
            pl = cfg.pseudo_labels
            labelled = [p for sp in entry.splits if sp.masks is not None for p in entry.images(sp.name)]
            extra, prov["pseudo_labels"] = pseudo_samples(
                pl, entry.images(pl.split), labelled, len(classes), band_names, cfg.bands
            )
            train = train + extra
        return Dataset(train, val, classes, bands, prov, *_domain_of(first_src))
    # a scene with a dense label raster or label polygons
    scene = load_catalog().get(entry.image, SceneEntry) if entry.image else None
    if scene is None:
        raise ConfigError(f"label set {name} has neither splits nor an image scene")
    src = open_raster(
        scene.raster_paths(), band_names=list(scene.bands) if scene.bands else None, bands=cfg.bands
    )
    if entry.label_raster:
        lab = open_raster(entry.label_raster_path())
        src.grid.require_same(lab.grid, f"{scene.name} and its labels")
        raw, lvalid = lab.read()
        labels = _remap(np.where(lvalid, raw[0], 0).astype(np.int64), values)
        labels[~lvalid] = IGNORE
    else:
        if not entry.class_field:
            raise ConfigError(f"label set {name}: polygons need a class_field naming the class attribute")
        labels = rasterise_polygons(entry.polygons_path(), entry.class_field, src.grid, values)
    if cfg.pseudo_labels is not None:
        raise ConfigError(
            f"label set {name}: pseudo_labels needs an image-only split; this label set is one scene"
        )
    pixels, valid = src.read()
    labels[~valid] = IGNORE
    train, val = holdout_split(pixels.astype(np.float32), valid, labels, cfg.holdout, scene.name)
    prov = {"dataset": name, "scene": scene.name, "holdout": cfg.holdout}
    return Dataset(train, val, classes, list(src.band_names), prov, *_domain_of(src))


def _domain_of(src: RasterSource) -> tuple[str, float | None, float | None, float | None]:
    """What a training raster's values are: dtype, pixel size (m), declared scale and offset."""
    import rasterio

    with rasterio.open(src.bands[0].path) as ds:
        i = src.bands[0].index - 1
        scale, offset = float(ds.scales[i]), float(ds.offsets[i])
    declared = scale != 1.0 or offset != 0.0
    return src.dtype, src.grid.pixel_size_m, scale if declared else None, offset if declared else None


def rasterise_polygons(
    path: str | os.PathLike[str], attribute: str, grid: Any, values: Sequence[int]
) -> np.ndarray:
    """Label polygons -> class indices on ``grid`` (class from ``attribute``), 255 elsewhere."""
    import geopandas as gpd
    from rasterio.features import rasterize

    gdf = gpd.read_file(path)
    if attribute not in gdf.columns:
        raise ConfigError(
            f"{path}: label polygons have no attribute {attribute!r} (they have {', '.join(map(str, gdf.columns))})"
        )
    if grid.crs is not None and gdf.crs is not None:
        gdf = gdf.to_crs(grid.crs)
    lut = {int(v): i for i, v in enumerate(values)}
    missing = sorted({int(v) for v in gdf[attribute]} - set(lut))
    if missing:
        raise ConfigError(f"{path}: label values {missing} are not among the model's classes {list(values)}")
    shapes = [
        (geom, lut[int(v)]) for geom, v in zip(gdf.geometry, gdf[attribute], strict=True) if geom is not None
    ]
    return rasterize(shapes, out_shape=grid.shape, transform=grid.transform, fill=IGNORE, dtype="uint8")


def holdout_split(
    pixels: np.ndarray, valid: np.ndarray, labels: np.ndarray, where: str, name: str
) -> tuple[list[Sample], list[Sample]]:
    """One quarter of a scene validates; training chips may not overlap it."""
    h, w = labels.shape
    rows = {"top": (0, h // 2), "bottom": (h // 2, h)}
    cols = {"left": (0, w // 2), "right": (w // 2, w)}
    try:
        v, hz = where.split("-")
        (r0, r1), (c0, c1) = rows[v], cols[hz]
    except (ValueError, KeyError) as exc:
        raise ConfigError(
            f"holdout must be top-left, top-right, bottom-left or bottom-right, got {where!r}"
        ) from exc
    val = Sample(
        pixels[:, r0:r1, c0:c1].copy(),
        valid[r0:r1, c0:c1].copy(),
        labels[r0:r1, c0:c1].copy(),
        f"{name}:{where}",
    )
    train_labels = labels.copy()
    train_labels[r0:r1, c0:c1] = IGNORE
    train = Sample(pixels, valid, train_labels, name, forbidden=(r0, r1, c0, c1))
    return [train], [val]


def load_synthetic(params: dict[str, Any]) -> Dataset:
    """A synthetic scene with its truth; the bottom-right quarter validates."""
    from geoseg.data import BAND_NAMES, CLASSES, SCALE, SceneSpec, class_map, scene_bands

    spec = SceneSpec(**params)
    labels = class_map(spec)
    pixels = scene_bands(spec, labels).astype(np.float32)
    valid = labels != IGNORE
    train, val = holdout_split(pixels, valid, labels, "bottom-right", "synthetic")
    bands = list(BAND_NAMES[: spec.bands])
    # uint16 reflectance x 10000, as Sentinel-2 L2A (geoseg.data's SCALE)
    return Dataset(train, val, list(CLASSES), bands, {"dataset": "synthetic", "scene": params},
                   "uint16", spec.pixel_size, 1.0 / SCALE, 0.0)  # fmt: skip


def value_range(samples: Sequence[Sample], max_pixels: int = 2_000_000) -> tuple[list[float], list[float]]:
    """Per-band 1st and 99th percentiles of the training samples' valid pixels: the range
    a model saw (robust to a few saturated or dead pixels). At most ``max_pixels`` pixels,
    taken evenly from every sample, so a large label set costs a fraction of a second."""
    per = max(1, max_pixels // max(len(samples), 1))
    parts = []
    for smp in samples:
        px = smp.image[:, smp.valid]
        step = max(1, px.shape[1] // per)
        parts.append(px[:, ::step])
    pixels = np.concatenate(parts, axis=1)
    if pixels.shape[1] == 0:
        raise ConfigError("the training data has no valid pixels")
    low, high = np.percentile(pixels, [1, 99], axis=1)
    return [float(v) for v in low], [float(v) for v in high]


def dataset_domain(data: Dataset) -> ValueDomain:
    """The value domain a model trained on ``data`` records: its rasters' data type, the
    1st-99th percentiles of the training pixels per band, pixel size, scale and offset."""
    from geoseg.inference import ValueDomain

    low, high = value_range(data.train)
    return ValueDomain(data.dtype, tuple(low), tuple(high), data.pixel_size_m, data.scale, data.offset)


def band_statistics(samples: Sequence[Sample]) -> tuple[list[float], list[float]]:
    """Per-band mean and std over the valid pixels of the training samples."""
    n = samples[0].image.shape[0]
    s = np.zeros(n)
    ss = np.zeros(n)
    count = 0
    for smp in samples:
        px = smp.image[:, smp.valid].astype(np.float64)
        s += px.sum(1)
        ss += (px**2).sum(1)
        count += px.shape[1]
    if count == 0:
        raise ConfigError("the training data has no valid pixels")
    mean = s / count
    std = np.sqrt(np.maximum(ss / count - mean**2, 1e-12))
    return mean.tolist(), np.maximum(std, 1e-6).tolist()


class ChipSampler:
    """Random, augmented training chips from in-memory samples (seeded)."""

    def __init__(
        self,
        samples: Sequence[Sample],
        size: int,
        mean: Sequence[float],
        std: Sequence[float],
        cfg: TrainConfig,
    ) -> None:
        self.samples = [s for s in samples if (s.labels != IGNORE).any()]
        if not self.samples:
            raise ConfigError("the training data has no labelled pixels")
        self.size = size
        self.mean = np.asarray(mean, np.float32)[:, None, None]
        self.std = np.asarray(std, np.float32)[:, None, None]
        self.cfg = cfg
        self.rng = np.random.default_rng(cfg.seed)

    def _position(self, s: Sample, size: int) -> tuple[int, int]:
        h, w = s.labels.shape
        for _ in range(100):
            r = int(self.rng.integers(0, max(h - size, 0) + 1))
            c = int(self.rng.integers(0, max(w - size, 0) + 1))
            if s.forbidden is not None:
                r0, r1, c0, c1 = s.forbidden
                if r < r1 and r + size > r0 and c < c1 and c + size > c0:
                    continue
            if (s.labels[r : r + size, c : c + size] != IGNORE).any():
                return r, c
        raise ConfigError(
            f"{s.name}: no chip of {size} px avoids the validation block; use a smaller chip_size"
        )

    def batch(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        for _ in range(n):
            s = self.samples[int(self.rng.integers(len(self.samples)))]
            size = self.size
            if self.cfg.scale:
                size = round(self.size * (1 + self.rng.uniform(-self.cfg.scale, self.cfg.scale)))
                size = min(size, *s.labels.shape)
            r, c = self._position(s, min(size, *s.labels.shape))
            x = (s.image[:, r : r + size, c : c + size] - self.mean) / self.std
            x[:, ~s.valid[r : r + size, c : c + size]] = 0.0
            y = s.labels[r : r + size, c : c + size]
            x, y = _fit(x, y, self.size)
            if self.cfg.brightness:
                x = x * (1 + self.rng.uniform(-self.cfg.brightness, self.cfg.brightness))
            if self.cfg.colour:
                jitter, nb = self.cfg.colour, x.shape[0]
                gain = 1 + self.rng.uniform(-jitter, jitter, (nb, 1, 1))
                x = x * gain + self.rng.uniform(-jitter, jitter, (nb, 1, 1))
            if self.cfg.flips:
                k = int(self.rng.integers(4))
                x, y = np.rot90(x, k, axes=(1, 2)), np.rot90(y, k)
                if self.rng.random() < 0.5:
                    x, y = x[:, :, ::-1], y[:, ::-1]
            xs.append(np.ascontiguousarray(x))
            ys.append(np.ascontiguousarray(y))
        return np.stack(xs).astype(np.float32), np.stack(ys)


def _fit(x: np.ndarray, y: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Resize a (possibly jittered-size) chip to ``size`` (nearest), padding small samples."""
    h, w = y.shape
    if (h, w) != (size, size) and h >= size // 2:
        ri = (np.arange(size) * h / size).astype(int)
        ci = (np.arange(size) * w / size).astype(int)
        return x[:, ri][:, :, ci], y[ri][:, ci]
    if (h, w) != (size, size):
        x = np.pad(x, ((0, 0), (0, size - h), (0, size - w)))
        y = np.pad(y, ((0, size - h), (0, size - w)), constant_values=IGNORE)
    return x, y
