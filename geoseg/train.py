"""Training: labelled chips -> a geoseg checkpoint with its metrics and provenance.

The trainer fills small hooks in the torchgeo manner (``configure_model``,
``configure_loss``, ``configure_optimizer``) around a plain loop: random chips with
flips and 90-degree rotations (and optional brightness, per-band colour and scale
jitter), a sum of losses that ignore nodata, AdamW with a one-cycle schedule, an optional
moving average of the weights, validation mIoU every epoch, early stopping, and a resume
file written after every epoch.

Data stays in memory: the label sets geoseg trains on (tiles of a few hundred pixels,
scenes of a few megapixels) fit easily, and in-memory chips keep a 2-core CPU busy with
the model instead of with I/O. Validation pixels never touch a training chip: label sets
with their own validation split use it; single scenes hold out one block.
"""

from __future__ import annotations

import json
import logging
import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from geoseg import __version__
from geoseg.errors import (
    BadRasterError,
    ConfigError,
    DataQuirkWarning,
    GeosegError,
    ModelError,
    refuse_unknown_keys,
)
from geoseg.io import ClassInfo, default_colour, open_raster
from geoseg.metrics import PaperMetric, Scores, confusion
from geoseg.model import check_zoom
from geoseg.progress import Progress, report
from geoseg.pseudo import PseudoLabelConfig, pseudo_samples

log = logging.getLogger(__name__)
IGNORE = 255
MAX_MASK_CROP = 8  # masks up to this many pixels larger than their image are cropped


@dataclass(frozen=True)
class TrainConfig:
    """One training run. Built from YAML with ``from_dict``: unknown keys are refused."""

    out: str
    dataset: str | None = None  # a labelset of the catalog
    synthetic: dict[str, Any] | None = None  # or a synthetic scene: SceneSpec fields
    arch: str = "Unet"
    encoder: str = "resnet18"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    bands: list[str] | None = None
    chip_size: int = 256
    batch_size: int = 8
    epochs: int = 20
    steps_per_epoch: int = 15
    lr: float = 1e-3
    weight_decay: float = 1e-4
    loss: list[str] = field(default_factory=lambda: ["ce", "dice"])
    class_weights: str | list[float] | None = None  # None, "balanced" or a list
    flips: bool = True
    brightness: float = 0.0  # +- relative brightness jitter
    # +- per-band gain and offset (in standard deviations) jitter: scenes of one label set
    # differ in radiometry (sun, haze, soil colour), and a model that saw each band shifted
    # on its own relies less on one scene's colour balance
    colour: float = 0.0
    scale: float = 0.0  # +- relative zoom jitter
    holdout: str = "bottom-right"  # single scenes: which quarter validates
    # the zoom the checkpoint is made with (ModelSpec.zoom): validation and predict resample
    # each image by it; training chips stay at the images' own pixels
    zoom: float = 1.0
    patience: int = 6
    # Exponential moving average of the weights (e.g. 0.99 per step), validated and saved
    # instead of the raw weights: it smooths the epoch-to-epoch swings of validation that a
    # high one-cycle rate causes on small label sets. 0 turns it off.
    ema: float = 0.0
    seed: int = 0
    threads: int | None = None
    # auto: a CUDA GPU when there is one (float32, so a run is the same recipe as on the
    # CPU, not the same bits), else the CPU
    device: str = "auto"
    half: bool = True  # store weights as float16 (half the file, same predictions in practice)
    split_train: str = "training"
    split_val: str = "validation"
    # self-training on an image-only split: {teacher, split, confidence, tta} (geoseg.pseudo)
    pseudo_labels: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        # checked with the rest of the config, before any data is read or model built
        for key, (kind, low, high) in _SETTINGS.items():
            _check_setting(key, getattr(self, key), kind, low, high)
        if self.pseudo_labels is not None:
            PseudoLabelConfig.from_dict(self.pseudo_labels)
        if not 0.0 <= self.ema < 1.0:  # an open upper bound, which the table does not express
            raise ConfigError(f"ema must be in [0, 1), got {self.ema}")
        try:
            check_zoom(self.zoom)  # the checkpoint's rule, raised as the config's error
        except ModelError as exc:
            raise ConfigError(str(exc)) from exc

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "config") -> TrainConfig:
        refuse_unknown_keys(d, (f.name for f in fields(cls)), source)
        if "out" not in d:
            raise ConfigError(f"{source}: missing key 'out' (where to write the checkpoint)")
        if (d.get("dataset") is None) == (d.get("synthetic") is None):
            raise ConfigError(f"{source}: give exactly one of 'dataset' (a catalog label set) or 'synthetic'")
        if d.get("pseudo_labels") is not None:
            PseudoLabelConfig.from_dict(d["pseudo_labels"], source)  # names the file in the error
        try:
            return cls(**d)
        except (TypeError, ConfigError) as exc:  # a setting's type or range: said with the file
            raise ConfigError(f"{source}: {exc}") from exc


# key: (type, lowest, highest); None: no bound. Keys left out are checked where they are used
# (arch and encoder by smp, loss and class_weights by the loss, holdout by the split); ema's
# open upper bound and zoom's range by TrainConfig.__post_init__.
_SETTINGS: dict[str, tuple[type, float | None, float | None]] = {
    "out": (str, None, None), "dataset": (str, None, None), "arch": (str, None, None),
    "encoder": (str, None, None), "chip_size": (int, 16, None), "batch_size": (int, 1, None),
    "epochs": (int, 1, None), "steps_per_epoch": (int, 1, None), "lr": (float, 1e-12, None),
    "weight_decay": (float, 0, None), "flips": (bool, None, None), "brightness": (float, 0, 1),
    "colour": (float, 0, None), "scale": (float, 0, 0.9), "holdout": (str, None, None),
    "zoom": (float, None, None), "patience": (int, 1, None), "ema": (float, None, None), "seed": (int, None, None),
    "threads": (int, 1, None), "device": (str, None, None), "half": (bool, None, None),
    "split_train": (str, None, None), "split_val": (str, None, None),
}  # fmt: skip
_OPTIONAL = {"dataset", "threads"}  # None: a synthetic scene; torch's own thread count


def _check_setting(key: str, value: Any, kind: type, low: float | None, high: float | None) -> None:
    """One training setting's type and range (None: the default, where a key may be left out)."""
    if value is None:
        if key in _OPTIONAL:
            return
        raise ConfigError(f"{key} must be given a value")
    names = {int: "a whole number", float: "a number", bool: "true or false", str: "a string"}
    ok = (
        isinstance(value, bool)
        if kind is bool
        else isinstance(value, kind if kind is not float else (int, float)) and not isinstance(value, bool)
    )
    if not ok:
        raise ConfigError(f"{key} must be {names[kind]}, got {value!r}")
    if low is not None and value < low:
        raise ConfigError(f"{key} must be at least {low:g}, got {value!r}")
    if high is not None and value > high:
        raise ConfigError(f"{key} must be at most {high:g}, got {value!r}")


@dataclass
class Sample:
    """An image in memory (raw values) with labels 0..K-1 and 255 where unknown."""

    image: np.ndarray  # (bands, h, w) float32, raw
    valid: np.ndarray  # (h, w) bool
    labels: np.ndarray  # (h, w) uint8
    name: str = ""
    forbidden: tuple[int, int, int, int] | None = None  # (r0, r1, c0, c1) chips must avoid


@dataclass
class Dataset:
    train: list[Sample]
    val: list[Sample]
    classes: list[ClassInfo]
    bands: list[str]
    provenance: dict[str, Any]


# --------------------------------------------------------------------------------------
# Data


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
    from geoseg import catalog

    entry = catalog.load_catalog().get(name, catalog.LabelSetEntry)
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
        bands = list(open_raster(first, band_names=band_names, bands=cfg.bands, require_crs=False).band_names)
        prov: dict[str, Any] = {"dataset": name, "train_split": cfg.split_train, "val_split": cfg.split_val,
                                "train_images": len(train), "val_images": len(val)}  # fmt: skip
        if cfg.pseudo_labels is not None:
            pl = PseudoLabelConfig.from_dict(cfg.pseudo_labels)
            labelled = [p for sp in entry.splits if sp.masks is not None for p in entry.images(sp.name)]
            extra, prov["pseudo_labels"] = pseudo_samples(
                pl, entry.images(pl.split), labelled, len(classes), band_names, cfg.bands
            )
            train = train + extra
        return Dataset(train, val, classes, bands, prov)
    # a scene with a dense label raster or label polygons
    scene = catalog.load_catalog().get(entry.image, catalog.SceneEntry) if entry.image else None
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
    return Dataset(train, val, classes, list(src.band_names), prov)


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
    from geoseg import synthetic

    spec = synthetic.SceneSpec(**params)
    labels = synthetic.class_map(spec)
    pixels = synthetic.bands(spec, labels).astype(np.float32)
    valid = labels != IGNORE
    train, val = holdout_split(pixels, valid, labels, "bottom-right", "synthetic")
    bands = list(synthetic.BAND_NAMES[: spec.bands])
    return Dataset(train, val, list(synthetic.CLASSES), bands, {"dataset": "synthetic", "scene": params})


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


# --------------------------------------------------------------------------------------
# The trainer


class Trainer:
    """Hooks: ``configure_model``, ``configure_loss``, ``configure_optimizer``."""

    def __init__(self, cfg: TrainConfig, data: Dataset) -> None:
        self.cfg = cfg
        self.data = data
        self.mean, self.std = band_statistics(data.train)

    def configure_model(self) -> tuple[Any, Any]:
        from geoseg.model import build_model, check_runs, make_spec

        spec = make_spec(self.cfg.arch, self.cfg.encoder, self.data.bands, self.data.classes,
                         self.mean, self.std, **self.cfg.model_kwargs)  # fmt: skip
        spec = replace(spec, zoom=self.cfg.zoom)
        model = build_model(spec)
        check_runs(model, spec)
        return spec, model

    def configure_loss(self) -> Any:
        from geoseg.losses import make_loss

        weights = self.cfg.class_weights
        if weights == "balanced":
            counts = np.zeros(len(self.data.classes))
            for s in self.data.train:
                counts += np.bincount(s.labels[s.labels != IGNORE], minlength=len(counts))[: len(counts)]
            freq = counts / max(counts.sum(), 1)
            weights = [float(1 / np.sqrt(f)) if f > 0 else 0.0 for f in freq]
            mean_w = float(np.mean([v for v in weights if v > 0]))
            weights = [w / mean_w for w in weights]
        elif isinstance(weights, str):
            raise ConfigError(f"class_weights must be null, 'balanced' or a list, got {weights!r}")
        return make_loss(self.cfg.loss, weights)

    def configure_optimizer(self, model: Any) -> tuple[Any, Any]:
        import torch

        opt = torch.optim.AdamW(model.parameters(), lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)
        total = self.cfg.epochs * self.cfg.steps_per_epoch
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=self.cfg.lr, total_steps=max(total, 1), pct_start=0.15
        )
        return opt, sched

    def fit(self, progress: Progress | None = None, resume: bool = False) -> TrainResult:
        import torch

        from geoseg.inference import resolve_device
        from geoseg.model import save_checkpoint

        cfg = self.cfg
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        device = torch.device(resolve_device(cfg.device))
        spec, model = self.configure_model()
        model = model.to(device)
        loss_fn = self.configure_loss()
        opt, sched = self.configure_optimizer(model)
        sampler = ChipSampler(self.data.train, cfg.chip_size, self.mean, self.std, cfg)
        averaged = _averaged(model, cfg.ema) if cfg.ema else None
        scored = averaged.module if averaged is not None else model  # what validates and ships
        out = Path(cfg.out)
        state_path = out.with_name(out.name + ".resume.pt")
        start, best, best_state, history, stale = 0, -1.0, None, [], 0
        if resume and state_path.exists():
            st = torch.load(state_path, weights_only=True, map_location=device)
            model.load_state_dict(st["model"])
            if averaged is not None:
                averaged.load_state_dict(st["averaged"])
            opt.load_state_dict(st["optimizer"])
            sched.load_state_dict(st["scheduler"])
            sampler.rng = np.random.default_rng([cfg.seed, int(st["epoch"])])
            start, best, stale = int(st["epoch"]), float(st["best"]), int(st["stale"])
            best_state = st["best_model"]
            history = json.loads(st["history"])
            torch.manual_seed(cfg.seed + start)
        t0 = time.perf_counter()
        for epoch in range(start, cfg.epochs):
            model.train()
            te = time.perf_counter()
            losses = []
            for _ in range(cfg.steps_per_epoch):
                x, y = sampler.batch(cfg.batch_size)
                logits = model(torch.from_numpy(x).to(device))
                loss = loss_fn(logits, torch.from_numpy(y.astype(np.int64)).to(device))
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                if averaged is not None:
                    averaged.update_parameters(model)
                losses.append(loss.item())
            scores = self.validate(scored, spec)
            seconds = time.perf_counter() - te
            history.append({"epoch": epoch + 1, "loss": float(np.mean(losses)), "val_miou": scores.miou,
                            "val_accuracy": scores.accuracy, "seconds": round(seconds, 2)})  # fmt: skip
            if scores.miou > best:
                best, stale = scores.miou, 0
                best_state = {k: v.detach().clone() for k, v in scored.state_dict().items()}
            else:
                stale += 1
            # the resume file first: a progress callback may stop the run (Ctrl-C); written
            # aside and renamed, so a kill during the save never leaves a torn resume file
            partial = state_path.with_name(state_path.name + ".partial")
            torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                        "averaged": averaged.state_dict() if averaged is not None else {},
                        "epoch": epoch + 1, "best": best, "stale": stale, "best_model": best_state,
                        "history": json.dumps(history)}, partial)  # fmt: skip
            os.replace(partial, state_path)
            report(
                progress,
                epoch + 1,
                cfg.epochs,
                f"loss {np.mean(losses):.3f} mIoU {scores.miou:.3f} best {best:.3f}",
            )
            if stale >= cfg.patience:
                break
        assert best_state is not None
        model.load_state_dict(best_state)
        per_tile = self.tile_confusions(model, spec)
        final = self.scores(per_tile)
        metrics = {"val": final.as_dict()}
        if self.data.provenance.get("dataset") == "amazon-s2-rgb":
            metrics["paper"] = paper_metric(per_tile)
        provenance = {
            "trained": True, "geoseg_version": __version__, "data": self.data.provenance,
            "config": {k: v for k, v in cfg.__dict__.items() if k != "out"}, "history": history,
            "metrics": metrics, "minutes": round((time.perf_counter() - t0) / 60, 2),
            "trained_on": _device_label(device),
        }  # fmt: skip
        spec = _with_provenance(spec, provenance)
        save_checkpoint(out, spec, model, half=cfg.half)
        state_path.unlink(missing_ok=True)
        return TrainResult(out, final, history, provenance)

    def _predict(self, model: Any, spec: Any, s: Sample, tta: bool = False) -> np.ndarray:
        from geoseg.inference import module_logits

        pred = module_logits(model, s.image, s.valid, spec, tta).argmax(0).astype(np.uint8)
        pred[~s.valid] = IGNORE
        return pred

    def tile_confusions(self, model: Any, spec: Any, tta: bool = False) -> list[np.ndarray]:
        """The confusion matrix of each validation sample: one pass of the model over them
        gives both the pooled scores and the paper's per-tile metric."""
        n = len(self.data.classes)
        return [confusion(s.labels, self._predict(model, spec, s, tta), n) for s in self.data.val]

    def scores(self, confusions: Sequence[np.ndarray]) -> Scores:
        """Pooled scores of per-sample confusion matrices."""
        n = len(self.data.classes)
        return Scores(sum(confusions, np.zeros((n, n), dtype=np.int64)), [c.name for c in self.data.classes])

    def validate(self, model: Any, spec: Any, tta: bool = False) -> Scores:
        return self.scores(self.tile_confusions(model, spec, tta))


def paper_metric(confusions: Sequence[np.ndarray]) -> dict[str, float]:
    """The published table's metric (``PaperMetric``) over per-tile confusion matrices."""
    pm = PaperMetric()
    for m in confusions:
        pm.add(m)
    return pm.as_dict()


@dataclass
class TrainResult:
    out: Path
    scores: Scores
    history: list[dict[str, Any]]
    provenance: dict[str, Any]


def _averaged(model: Any, decay: float) -> Any:
    """An exponential moving average of ``model``'s weights and BatchNorm buffers."""
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    # use_buffers: the running BatchNorm statistics are averaged too, so the averaged
    # model needs no extra pass over the data to recompute them.
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def _device_label(device: Any) -> str:
    """``cpu`` or ``cuda:0 (NVIDIA H200)``: where a model was trained, for its card."""
    import torch

    if device.type != "cuda":
        return str(device.type)
    index = device.index if device.index is not None else torch.cuda.current_device()
    return f"cuda:{index} ({torch.cuda.get_device_name(index)})"


def _with_provenance(spec: Any, provenance: dict[str, Any]) -> Any:
    from geoseg.model import ModelSpec

    return ModelSpec(**{**spec.__dict__, "provenance": provenance})


def load_config(path: str | os.PathLike[str]) -> TrainConfig:
    """A training config from YAML (a workflow file's ``train`` section, or the whole file)."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: no such config file")
    try:
        doc = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML ({exc})") from exc
    if not isinstance(doc, dict):
        raise ConfigError(f"{p}: expected a mapping of settings")
    body = doc.get("train", doc)
    body = {k: v for k, v in body.items() if k not in ("kind", "description")}
    return TrainConfig.from_dict(body, str(p))


def train(cfg: TrainConfig, progress: Progress | None = None, resume: bool = False) -> TrainResult:
    """Train as ``cfg`` says and write the checkpoint (``geoseg train``)."""
    from geoseg.io import check_writable
    from geoseg.model import canonical_arch, check_encoder

    check_writable(cfg.out)
    canonical_arch(cfg.arch)  # a typo is said before the data is read (seconds) and warned about
    check_encoder(cfg.encoder)
    data = (
        load_synthetic(cfg.synthetic) if cfg.synthetic is not None else load_labelset(str(cfg.dataset), cfg)
    )
    if not data.val:
        raise GeosegError("the validation split is empty")
    return Trainer(cfg, data).fit(progress, resume=resume)


def evaluate(
    model: str | os.PathLike[str],
    dataset: str,
    split: str = "validation",
    threads: int | None = None,
    tta: bool = False,
    zoom: float | None = None,
) -> dict[str, Any]:
    """Score a checkpoint on a catalog label set's split: pooled metrics (+ the paper's).

    ``tta`` scores the mean over the 8 rotations/flips of each image, as ``predict --tta``;
    ``zoom`` overrides the checkpoint's (``predict --zoom``).
    """
    import torch

    from geoseg.model import load_checkpoint

    if threads:
        torch.set_num_threads(threads)
    loaded = load_checkpoint(model)
    spec = loaded.spec if zoom is None else replace(loaded.spec, zoom=check_zoom(zoom, "--zoom"))
    cfg = TrainConfig(out="-", dataset=dataset, split_train=split, split_val=split, bands=list(spec.bands))
    data = load_labelset(dataset, cfg)
    if len(data.classes) != spec.n_classes:
        raise ConfigError(
            f"{loaded.path.name} predicts {spec.n_classes} classes but {dataset} has {len(data.classes)}"
        )
    if len(data.bands) != len(spec.bands):
        raise ConfigError(
            f"{loaded.path.name} expects {len(spec.bands)} bands but {dataset} has {len(data.bands)}"
        )
    trainer = Trainer.__new__(Trainer)
    trainer.cfg, trainer.data = cfg, data
    per_tile = trainer.tile_confusions(loaded.module, spec, tta)
    scores = trainer.scores(per_tile)
    out: dict[str, Any] = {
        "model": str(loaded.path),
        "sha256": loaded.sha256,
        "dataset": dataset,
        "split": split,
        "tta": tta,
        "zoom": spec.zoom,
    }
    out.update(scores.as_dict())
    out["table"] = scores.table()
    if dataset == "amazon-s2-rgb":
        out["paper"] = paper_metric(per_tile)
    return out
