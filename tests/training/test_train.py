"""Training, metrics and evaluation: tiny models on real chips, in seconds."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import torch
import yaml
from affine import Affine
from click.testing import CliRunner
from shapely.geometry import box

from geoseg.cli import main
from geoseg.errors import BadRasterError, ConfigError, DataQuirkWarning, ModelError
from geoseg.inference import read_spec
from geoseg.training import (
    PaperMetric,
    Scores,
    TrainConfig,
    Trainer,
    confusion,
    load_labelset,
    rasterise_polygons,
    read_mask,
    train,
)

SMALL = {"arch": "Unet", "encoder": "mobilenet_v2", "model_kwargs": {"decoder_channels": [32, 16, 16, 8, 8]}}


def test_metrics_match_a_hand_computed_confusion_matrix() -> None:
    truth = np.array([[0, 0, 1, 1], [2, 2, 1, 255]])
    pred = np.array([[0, 1, 1, 1], [2, 0, 255, 0]])
    m = confusion(truth, pred, 3)
    # pairs kept: (0,0) (0,1) (1,1) (1,1) (2,2) (2,0); (1,255) and (255,0) ignored
    assert m.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    s = Scores(m, ["a", "b", "c"])
    assert s.accuracy == pytest.approx(4 / 6)
    assert s.iou.tolist() == pytest.approx([1 / 3, 2 / 3, 1 / 2])
    assert s.precision.tolist() == pytest.approx([1 / 2, 2 / 3, 1.0])
    assert s.recall.tolist() == pytest.approx([1 / 2, 1.0, 1 / 2])
    # F1 = 2PR / (P + R): (1/2, 1/2) -> 1/2; (2/3, 1) -> 4/5; (1, 1/2) -> 2/3
    assert s.f1.tolist() == pytest.approx([1 / 2, 4 / 5, 2 / 3])
    pe = (2 * 2 + 3 * 2 + 1 * 2) / 36
    assert s.kappa == pytest.approx((4 / 6 - pe) / (1 - pe))
    assert s.miou == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)
    pm = PaperMetric()
    pm.add(m)
    d = pm.as_dict()
    # weighted by truth support (2, 2, 2): equal weights here
    assert d["precision"] == pytest.approx((1 / 2 + 2 / 3 + 1) / 3)
    assert d["recall"] == pytest.approx((1 / 2 + 1 + 1 / 2) / 3)


@pytest.mark.slow
def test_paper_metric_agrees_with_scikit_learn() -> None:
    from sklearn.metrics import precision_score, recall_score

    rng = np.random.default_rng(0)
    pm = PaperMetric()
    ps, rs = [], []
    for _ in range(4):
        t = rng.integers(0, 2, 500)
        p = np.where(rng.random(500) < 0.8, t, 1 - t)
        pm.add(confusion(t, p, 2))
        ps.append(precision_score(t, p, average="weighted"))
        rs.append(recall_score(t, p, average="weighted"))
    d = pm.as_dict()
    assert d["precision"] == pytest.approx(np.mean(ps), abs=1e-6)
    assert d["recall"] == pytest.approx(np.mean(rs), abs=1e-6)


def test_polygons_rasterise_exactly(tmp_path: Path) -> None:
    from geoseg.raster import Grid

    grid = Grid((20, 30), Affine(10, 0, 1000, 0, -10, 2000), rasterio.crs.CRS.from_epsg(32617))
    gdf = gpd.GeoDataFrame(
        {"code": [3, 7]},
        geometry=[box(1000, 1900, 1050, 2000), box(1100, 1800, 1300, 1850)],
        crs="EPSG:32617",
    )
    path = tmp_path / "labels.gpkg"
    gdf.to_file(path)
    labels = rasterise_polygons(path, "code", grid, [3, 7])
    expected = np.full((20, 30), 255, np.uint8)
    expected[0:10, 0:5] = 0  # x 1000-1050, y 2000-1900
    expected[15:20, 10:30] = 1  # x 1100-1300, y 1850-1800
    np.testing.assert_array_equal(labels, expected)
    with pytest.raises(ConfigError, match="no attribute 'klass'"):
        rasterise_polygons(path, "klass", grid, [3, 7])
    with pytest.raises(ConfigError, match=r"label values \[7\] are not among"):
        rasterise_polygons(path, "code", grid, [3])


def test_mask_crop_rule(tmp_path: Path) -> None:
    from PIL import Image

    Image.fromarray(np.ones((12, 15), np.uint8)).save(tmp_path / "big.png")
    with pytest.warns(DataQuirkWarning, match="cropped"):
        assert read_mask(tmp_path / "big.png", (12, 12)).shape == (12, 12)
    with pytest.raises(BadRasterError, match="only masks up to"):
        read_mask(tmp_path / "big.png", (12, 4))


def test_real_amazon_mask_quirk_is_cropped_with_a_warning(shared_data: Path) -> None:
    mask = shared_data / "amazon-s2-rgb" / "training" / "masks" / "Amazon_181.tiff_34.png"
    with pytest.warns(DataQuirkWarning):
        assert read_mask(mask, (512, 512)).shape == (512, 512)


def _cfg(tmp_path: Path, **kw: Any) -> TrainConfig:
    base: dict[str, Any] = {
        "out": str(tmp_path / "m.safetensors"), "dataset": "amazon-s2-rgb", **SMALL, "chip_size": 64,
        "batch_size": 4, "epochs": 3, "steps_per_epoch": 4, "lr": 0.01, "threads": 2, "seed": 0,
    }  # fmt: skip
    base.update(kw)
    return TrainConfig.from_dict(base)


@pytest.fixture(scope="module")
def amazon(shared_data: Path) -> Any:
    cfg = TrainConfig.from_dict({"out": "-", "dataset": "amazon-s2-rgb"})
    data = load_labelset("amazon-s2-rgb", cfg)
    assert len(data.train) == 30 and len(data.val) == 15
    assert [c.name for c in data.classes] == ["forest", "non-forest"]
    data.val = data.val[:2]  # keep validation cheap in tests
    return data


@pytest.mark.slow
def test_loop_reduces_loss_on_real_chips_and_checkpoint_carries_provenance(
    tmp_path: Path, amazon: Any
) -> None:
    cfg = _cfg(tmp_path)
    result = Trainer(cfg, amazon).fit()
    losses = [h["loss"] for h in result.history]
    assert losses[-1] < losses[0]
    spec = read_spec(cfg.out)
    assert spec.bands == ("red", "green", "blue") and spec.provenance["trained"] is True
    assert spec.provenance["data"]["dataset"] == "amazon-s2-rgb"
    assert 0 < spec.mean[0] < 255 and spec.std[0] > 1  # statistics of the training pixels
    assert "paper" in spec.provenance["metrics"]
    # the value domain predict checks inputs against: 8-bit values, about 10 m pixels
    assert spec.domain is not None and spec.domain.dtype == "uint8"
    assert spec.domain.pixel_size_m is not None and 9 < spec.domain.pixel_size_m < 11
    assert all(
        0 <= lo < m < hi <= 255
        for lo, m, hi in zip(spec.domain.low, spec.mean, spec.domain.high, strict=True)
    )


@pytest.mark.slow
@pytest.mark.parametrize("ema", [0.0, 0.9])
def test_resume_continues_from_the_saved_epoch(tmp_path: Path, amazon: Any, ema: float) -> None:
    cfg = _cfg(tmp_path, epochs=2, patience=10, ema=ema)

    def stop_after_first_epoch(done: int, total: int, postfix: str = "") -> None:
        raise KeyboardInterrupt  # as if the user pressed Ctrl-C after epoch 1

    with pytest.raises(KeyboardInterrupt):
        Trainer(cfg, amazon).fit(progress=stop_after_first_epoch)
    state = Path(cfg.out + ".resume.pt")
    assert state.exists() and not Path(cfg.out).exists()
    interrupted = json.loads(torch.load(state, weights_only=True)["history"])
    result = Trainer(cfg, amazon).fit(resume=True)
    assert [h["epoch"] for h in result.history] == [1, 2]
    assert result.history[0] == interrupted[0]  # epoch 1 came from the resume file, not rerun
    assert not state.exists() and Path(cfg.out).exists()
    assert read_spec(cfg.out).provenance["config"]["ema"] == ema


@pytest.mark.slow
def test_weight_average_is_what_validates_and_ships(tmp_path: Path, amazon: Any) -> None:
    from geoseg.inference import load_checkpoint

    raw = Trainer(_cfg(tmp_path, out=str(tmp_path / "raw.safetensors"), epochs=1), amazon).fit()
    avg = Trainer(_cfg(tmp_path, out=str(tmp_path / "avg.safetensors"), epochs=1, ema=0.5), amazon).fit()
    assert raw.history[0]["loss"] == avg.history[0]["loss"]  # the same raw training steps
    a = load_checkpoint(tmp_path / "raw.safetensors").module.state_dict()
    b = load_checkpoint(tmp_path / "avg.safetensors").module.state_dict()
    assert any(not torch.equal(a[k], b[k]) for k in a)  # the average, not the last weights
    with pytest.raises(ConfigError, match=r"ema must be in \[0, 1\), got 1\.0"):
        Trainer(_cfg(tmp_path, ema=1.0), amazon).fit()
    scse = {"decoder_channels": [32, 16, 16, 8, 8], "decoder_attention_type": "scse"}
    with pytest.raises(ModelError, match="builds but cannot run"):
        Trainer(_cfg(tmp_path, out=str(tmp_path / "scse.safetensors"), model_kwargs=scse), amazon).fit()
    assert not (tmp_path / "scse.safetensors").exists()


def _write_labelset(tmp_path: Path, image: np.ndarray, mask: np.ndarray, values: dict[int, str]) -> Path:
    root = tmp_path / "data"
    (root / "set" / "img").mkdir(parents=True, exist_ok=True)
    (root / "set" / "msk").mkdir(parents=True, exist_ok=True)
    files = {}
    for split in ("a", "b"):
        ip = root / "set" / "img" / f"{split}.tif"
        with rasterio.open(ip, "w", driver="GTiff", count=image.shape[0], height=image.shape[1], width=image.shape[2],
                           dtype=image.dtype.name, crs="EPSG:4326", transform=Affine(1e-4, 0, 0, 0, -1e-4, 0),
                           nodata=0) as ds:  # fmt: skip
            ds.write(image)
        mp = root / "set" / "msk" / f"{split}.tif"
        with rasterio.open(mp, "w", driver="GTiff", count=1, height=mask.shape[0], width=mask.shape[1],
                           dtype="uint8") as ds:  # fmt: skip
            ds.write(mask[None])
        for p in (ip, mp):
            files[str(p.relative_to(root / "set"))] = hashlib.sha256(p.read_bytes()).hexdigest()
    entry = {
        "name": "toy", "kind": "labelset", "description": "toy", "dir": "set",
        "source": {"url": "http://127.0.0.1:9/toy", "licence": "test", "citation": "test"},
        "classes": values, "pair_by": "stem",
        "splits": {"training": {"images": "img/a.tif", "masks": "msk/a.tif"},
                   "validation": {"images": "img/b.tif", "masks": "msk/b.tif"}},
        "files": files,
    }  # fmt: skip
    cat = tmp_path / "cat.yaml"
    cat.write_text(yaml.safe_dump({"version": 1, "entries": [entry]}, sort_keys=False))
    return cat


def test_colour_jitter_shifts_each_band_on_its_own(tmp_path: Path, amazon: Any) -> None:
    from geoseg.training import ChipSampler

    def chips(colour: float) -> tuple[np.ndarray, np.ndarray]:
        cfg = _cfg(tmp_path, colour=colour, flips=False)
        return ChipSampler(amazon.train, 64, [50.0] * 3, [10.0] * 3, cfg).batch(1)  # the same first chip

    (x0, y0), (x1, y1) = chips(0.0), chips(0.3)
    np.testing.assert_array_equal(y0, y1)
    # per band, x1 = gain * x0 + offset, each within +-0.3, each band its own
    fits = [np.polyfit(x0[0, b].ravel(), x1[0, b].ravel(), 1) for b in range(3)]
    for gain, offset in fits:
        assert abs(gain - 1) <= 0.3 + 1e-4 and abs(offset) <= 0.3 + 1e-4
    assert len({round(float(g), 4) for g, _ in fits}) == 3
    assert not np.array_equal(x0, x1)


def test_bad_training_inputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEOSEG_DATA", str(tmp_path / "data"))
    image = np.full((3, 40, 40), 9, np.uint8)
    cat = _write_labelset(tmp_path, image, np.ones((60, 40), np.uint8), {1: "a", 2: "b"})
    monkeypatch.setenv("GEOSEG_CATALOG", str(cat))
    cfg = TrainConfig.from_dict(
        {"out": str(tmp_path / "o.safetensors"), "dataset": "toy", **SMALL, "chip_size": 32}
    )
    with pytest.raises(BadRasterError, match="only masks up to"):
        train(cfg)
    # no valid pixels: an all-nodata image
    cat = _write_labelset(
        tmp_path, np.zeros((3, 40, 40), np.uint8), np.ones((40, 40), np.uint8), {1: "a", 2: "b"}
    )
    with pytest.raises(ConfigError, match="no valid pixels"):
        train(cfg)
    with pytest.raises(ConfigError, match="unknown key"):
        TrainConfig.from_dict({"out": "x", "dataset": "toy", "epocs": 3})
    assert not (tmp_path / "o.safetensors").exists()


def test_cli_train_config_with_unknown_key(tmp_path: Path) -> None:
    cfgfile = tmp_path / "t.yaml"
    cfgfile.write_text(yaml.safe_dump({"train": {"out": str(tmp_path / "m.safetensors"), "dataset": "amazon-s2-rgb",
                                                 "learning_rate": 0.1}}))  # fmt: skip
    r = CliRunner().invoke(main, ["train", str(cfgfile)])
    assert r.exit_code == 2 and f"{cfgfile}: train: unknown key 'learning_rate'" in r.output


@pytest.mark.slow
def test_shipped_forest_model_keeps_its_f1(shared_data: Path, tmp_path: Path) -> None:
    """A regression in the model, the loaders or the metrics fails CI (shipped: F1 0.9524, mIoU 0.902)."""
    out = tmp_path / "eval.json"
    args = [
        "evaluate",
        "--model",
        "forest-s2-rgb",
        "--dataset",
        "amazon-s2-rgb",
        "--threads",
        "2",
        "--json",
        str(out),
    ]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    assert "paper metric" in r.output and "non-forest" in r.output
    result = json.loads(out.read_text())
    assert result["paper"]["tiles"] == 15 and result["split"] == "validation"
    assert result["paper"]["f1"] >= 0.951
    assert result["miou"] >= 0.900


@pytest.mark.slow
def test_evaluate_zoom_overrides_the_checkpoint_and_is_scored_on_real_tiles(shared_data: Path) -> None:
    """``--zoom`` reaches the model: on the validation tiles the forest model scores higher
    seen at 1.25 (F1 0.9573; it ships at 1, chosen on the training tiles: its model card).
    A broken resampling (misaligned or transposed scores) would fall far below."""
    from geoseg.training import evaluate

    result = evaluate("forest-s2-rgb", "amazon-s2-rgb", threads=2, zoom=1.25)
    assert result["zoom"] == 1.25 and result["paper"]["tiles"] == 15
    assert result["paper"]["f1"] >= 0.956 and result["miou"] >= 0.910


@pytest.mark.slow
def test_shipped_landcover_model_beats_a_random_forest_on_the_held_out_quarter(shared_data: Path) -> None:
    """The issue's goal, held in CI: higher mIoU and accuracy than a per-pixel random forest."""
    from sklearn.ensemble import RandomForestClassifier

    from geoseg.inference import load_checkpoint, resolve_model_path
    from geoseg.training import IGNORE

    bands = ["blue", "green", "red", "nir", "swir1"]
    cfg = TrainConfig(out="-", dataset="nc-landsat7-labels", bands=bands, holdout="bottom-right")
    data = load_labelset("nc-landsat7-labels", cfg)
    tr, va = data.train[0], data.val[0]
    keep = (tr.labels != IGNORE) & tr.valid
    rf = RandomForestClassifier(n_estimators=50, n_jobs=2, random_state=0).fit(
        tr.image[:, keep].T, tr.labels[keep]
    )
    pred = np.full(va.labels.shape, IGNORE, np.uint8)
    pred[va.valid] = rf.predict(va.image[:, va.valid].T)
    forest = Scores(confusion(va.labels, pred, len(data.classes)), [c.name for c in data.classes])
    loaded = load_checkpoint(resolve_model_path("landcover-nc-landsat7"))
    trainer = Trainer.__new__(Trainer)
    trainer.cfg, trainer.data = cfg, data
    unet = trainer.validate(loaded.module, loaded.spec)
    assert unet.miou >= 0.29 and unet.accuracy >= 0.645  # shipped: 0.3000 / 0.6511
    assert unet.miou > forest.miou + 0.03 and unet.accuracy > forest.accuracy


def test_pseudo_labels_come_from_the_teacher_and_skip_labelled_duplicates(shared_data: Path) -> None:
    """Real unlabelled Amazon tiles: ``test/0.tiff`` is a training tile, so it is left out."""
    from geoseg import data as catalog
    from geoseg.training import PseudoLabelConfig, pseudo_samples

    entry = catalog.load_catalog().get("amazon-s2-rgb", catalog.LabelSetEntry)
    labelled = entry.images("training") + entry.images("validation")
    images = [shared_data / "amazon-s2-rgb" / "test" / n for n in ("0.tiff", "1.tiff")]
    bands = ["red", "green", "blue"]
    runs = {}
    for conf in (0.6, 0.99):
        pl = PseudoLabelConfig(teacher="forest-s2-rgb", confidence=conf, tta=False)
        samples, prov = pseudo_samples(pl, images, labelled, 2, bands, None)
        assert [s.name for s in samples] == ["pseudo:1.tiff"]
        assert prov["skipped_duplicates"] == ["0.tiff"] and prov["images"] == 1
        runs[conf] = (samples[0].labels, prov["labelled_fraction"])
    loose, strict = runs[0.6][0], runs[0.99][0]
    assert set(np.unique(loose)) <= {0, 1, 255} and {0, 1} <= set(np.unique(loose))
    # a stricter teacher keeps a subset of the pixels, with the same classes
    kept = strict != 255
    assert 0 < runs[0.99][1] < runs[0.6][1] <= 1
    np.testing.assert_array_equal(strict[kept], loose[kept])


def test_self_training_adds_the_unlabelled_split_to_the_training_samples(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from geoseg.inference import init_checkpoint, make_spec

    monkeypatch.setenv("GEOSEG_DATA", str(tmp_path / "data"))
    rng = np.random.default_rng(0)
    cat = _write_labelset(tmp_path, rng.integers(1, 200, (3, 40, 40), dtype=np.uint8),
                          rng.integers(1, 3, (40, 40), dtype=np.uint8), {1: "a", 2: "b"})  # fmt: skip
    monkeypatch.setenv("GEOSEG_CATALOG", str(cat))
    # an image-only split: one new image and one that repeats the validation image
    new = tmp_path / "data" / "set" / "img" / "c.tif"
    with rasterio.open(tmp_path / "data" / "set" / "img" / "a.tif") as ds:
        profile, pixels = ds.profile, ds.read()
    with rasterio.open(new, "w", **profile) as ds:
        ds.write(pixels[:, ::-1])
    doc = yaml.safe_load(cat.read_text())
    entry = doc["entries"][0]
    entry["splits"]["test"] = {"images": "img/[bc].tif"}
    entry["files"]["img/c.tif"] = hashlib.sha256(new.read_bytes()).hexdigest()
    cat.write_text(yaml.safe_dump(doc, sort_keys=False))
    teacher = init_checkpoint(tmp_path / "teacher.safetensors", make_spec("Unet", "mobilenet_v2", 3, 2,
                              **SMALL["model_kwargs"]))  # fmt: skip

    def cfg(**pl: Any) -> TrainConfig:
        return TrainConfig.from_dict(
            {"out": "-", "dataset": "toy", "pseudo_labels": {"teacher": str(teacher), **pl}}
        )

    data = load_labelset("toy", cfg(confidence=0.5, tta=False))
    assert [s.name for s in data.train] == ["a.tif", "pseudo:c.tif"]
    assert data.provenance["pseudo_labels"]["skipped_duplicates"] == ["b.tif"]
    # with two classes the top probability is at least 0.5: every valid pixel is labelled
    assert data.provenance["pseudo_labels"]["labelled_fraction"] == 1.0
    assert (data.train[1].labels[data.train[1].valid] != 255).all()
    # bad input: one clear line each
    with pytest.raises(ConfigError, match=r"pseudo_labels: unknown key 'conf'"):
        cfg(conf=0.9)
    for bad in (1.0, "high"):
        with pytest.raises(ConfigError, match=r"pseudo_labels\.confidence must be (in \[0\.5, 1\)|a number)"):
            cfg(confidence=bad)
    with pytest.raises(ConfigError, match=r"pseudo_labels: missing key 'teacher'"):
        TrainConfig.from_dict({"out": "-", "dataset": "toy", "pseudo_labels": {"split": "test"}})
    three = init_checkpoint(tmp_path / "three.safetensors", make_spec("Unet", "mobilenet_v2", 3, 3,
                            **SMALL["model_kwargs"]))  # fmt: skip
    with pytest.raises(ConfigError, match="teacher predicts 3 classes"):
        load_labelset("toy", TrainConfig.from_dict({"out": "-", "dataset": "toy",
                                                   "pseudo_labels": {"teacher": str(three)}}))  # fmt: skip
    entry["splits"]["test"] = {"images": "img/b.tif"}
    cat.write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(ConfigError, match="no image that is not also labelled"):
        load_labelset("toy", cfg())


@pytest.mark.slow
def test_training_device_is_resolved_before_the_first_step(tmp_path: Path, amazon: Any) -> None:
    """``device: auto`` trains on the CPU here; asking for CUDA where there is none is one clear error."""
    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present: cuda is a valid training device here")
    from geoseg.errors import ModelError

    result = Trainer(_cfg(tmp_path, epochs=1, device="auto"), amazon).fit()
    provenance = read_spec(result.out).provenance
    assert provenance["config"]["device"] == "auto" and provenance["trained_on"] == "cpu"
    with pytest.raises(ModelError, match="no CUDA GPU"):
        Trainer(_cfg(tmp_path, out=str(tmp_path / "gpu.safetensors"), epochs=1, device="cuda"), amazon).fit()
    assert not (tmp_path / "gpu.safetensors").exists()


@pytest.mark.parametrize(
    ("setting", "expect"),
    [
        ({"epochs": 0}, "epochs must be at least 1, got 0"),
        ({"lr": "fast"}, "lr must be a number, got 'fast'"),
        ({"batch_size": 2.5}, "batch_size must be a whole number, got 2.5"),
        ({"flips": "yes"}, "flips must be true or false, got 'yes'"),
        ({"scale": 2}, "scale must be in 0..0.9, got 2"),
        ({"encoder": None}, "encoder must be a string, got None"),
    ],
)
def test_training_settings_are_checked_with_the_file_named(
    tmp_path: Path, setting: dict, expect: str
) -> None:
    with pytest.raises(ConfigError, match=f"^cfg.yaml: {expect}$"):
        TrainConfig.from_dict({"out": "m.safetensors", "dataset": "amazon-s2-rgb", **setting}, "cfg.yaml")


def test_unknown_encoder_is_said_before_the_data_is_read(tmp_path: Path) -> None:
    # a ConfigError naming the key now (it was a ModelError raised by train()): said when
    # the config is built, earlier still
    with pytest.raises(ConfigError, match="encoder must name a known encoder: unknown encoder 'resnet19'"):
        train(TrainConfig.from_dict({"out": str(tmp_path / "m.safetensors"), "dataset": "no-such-labelset",
                                     "encoder": "resnet19"}))  # fmt: skip
    assert list(tmp_path.iterdir()) == []
