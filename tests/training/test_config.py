"""Training and evaluate options: one declaration per key, errors that name the file and key
(or the flag, or the keyword); no training runs here, so these take seconds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from geoseg.cli import main
from geoseg.errors import ConfigError
from geoseg.training import EvaluateOptions, PseudoLabelConfig, TrainConfig, evaluate, load_config

REPO = Path(__file__).resolve().parents[2]
BASE = {"out": "m.safetensors", "dataset": "amazon-s2-rgb"}


def _file(tmp_path: Path, train: Any, name: str = "train_forest.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump({"train": train}, sort_keys=False))
    return path


def _error(path: Path) -> str:
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    return str(exc.value)


@pytest.mark.parametrize("workflow", sorted(p.name for p in (REPO / "workflows").glob("train_*.yaml")))
def test_shipped_training_configs_load(workflow: str) -> None:
    cfg = load_config(REPO / "workflows" / workflow)
    raw = yaml.safe_load((REPO / "workflows" / workflow).read_text())["train"]
    for key, value in raw.items():  # every key as written (lists read back as the same values)
        got = getattr(cfg, key)
        assert (list(got) if isinstance(got, tuple) else got) == value, key


def test_defaults_are_the_documented_ones() -> None:
    cfg = TrainConfig.build(BASE)
    assert (cfg.chip_size, cfg.batch_size, cfg.epochs, cfg.steps_per_epoch) == (256, 8, 20, 15)
    assert cfg.loss == ("ce", "dice") and cfg.model_kwargs == {} and cfg.zoom == 1.0 and cfg.ema == 0.0
    assert TrainConfig.model_fields["epochs"].description  # every key has its help
    assert all(f.description for f in TrainConfig.model_fields.values())
    assert all(f.description for f in PseudoLabelConfig.model_fields.values())
    # the mutable default is each config's own
    assert TrainConfig.build(BASE).model_kwargs is not TrainConfig.build(BASE).model_kwargs


def test_unknown_key_suggests_the_nearest_and_names_the_file(tmp_path: Path) -> None:
    path = _file(tmp_path, {**BASE, "epocs": 3})
    assert _error(path).startswith(
        f"{path}: train: unknown key 'epocs' (did you mean 'epochs'?); known keys: out, dataset,"
    )


@pytest.mark.parametrize(
    ("setting", "expect"),
    [
        ({"epochs": 0}, "train.epochs must be at least 1, got 0"),
        ({"lr": "fast"}, "train.lr must be a number, got 'fast'"),
        ({"lr": 0}, "train.lr must be more than 0, got 0"),
        ({"ema": 1}, "train.ema must be in [0, 1), got 1"),
        ({"ema": -0.1}, "train.ema must be in [0, 1), got -0.1"),
        ({"chip_size": "256"}, "train.chip_size must be a whole number, got '256'"),
        ({"holdout": "left"}, "train.holdout must be one of top-left, top-right, bottom-left, bottom-right, got 'left'"),
        ({"zoom": 0}, "train.zoom must be in (0, 8], got 0.0"),
        ({"zoom": 9}, "train.zoom must be in (0, 8], got 9.0"),
        ({"seed": -1}, "train.seed must be in 0..4294967295, got -1"),
        ({"loss": ["ce", "dise"]}, "train.loss must be a list of ce, dice, focal, tversky (summed), got 'dise' (did you mean 'dice'?)"),
        ({"class_weights": "equal"}, "train.class_weights must be null, 'balanced' or a list of numbers, got 'equal'"),
        ({"arch": "Unett"}, "train.arch must be one of Unet, UnetPlusPlus, FPN, PSPNet, DeepLabV3, DeepLabV3Plus, Linknet, MAnet, PAN, UPerNet, Segformer, FCN, got 'Unett'"),
        ({"out": None}, "train.out must be a string, got None"),
        ({"pseudo_labels": {"teacher": "forest-s2-rgb", "confidence": 1.0}}, "train.pseudo_labels.confidence must be in [0.5, 1), got 1.0"),
        ({"pseudo_labels": {"teacher": "forest-s2-rgb", "confidence": 0.4}}, "train.pseudo_labels.confidence must be in [0.5, 1), got 0.4"),
        ({"pseudo_labels": "forest-s2-rgb"}, "train.pseudo_labels must be a mapping of keys, got 'forest-s2-rgb'"),
    ],
)  # fmt: skip
def test_bad_values_name_the_file_and_the_key(tmp_path: Path, setting: dict, expect: str) -> None:
    path = _file(tmp_path, {**BASE, **setting})
    assert _error(path) == f"{path}: {expect}"


def test_cross_key_rules_are_one_line(tmp_path: Path) -> None:
    def err(train: dict[str, Any]) -> str:
        return _error(_file(tmp_path, train)).removeprefix(f"{tmp_path / 'train_forest.yaml'}: ")

    assert (
        err({"out": "m"})
        == "train.synthetic or dataset must be given: a synthetic scene or a label set of the catalog"
    )
    assert err({**BASE, "synthetic": {"height": 64, "width": 64}}).startswith(
        "train.synthetic and dataset are both given"
    )
    assert err({"out": "m", "synthetic": {"heigth": 64, "width": 64}}).startswith(
        "train.synthetic has unknown key 'heigth' (did you mean 'height'?); known keys: height, width,"
    )
    assert err({"out": "m", "synthetic": {"width": 64}}) == "train.synthetic is missing key 'height'"
    assert err({"out": "m", "synthetic": {"height": 64, "width": 64, "bands": 5}}) == (
        "train.synthetic is not a valid scene: bands must be 4 (blue, green, red, nir) or 6 (adds swir1, swir2), got 5"
    )
    assert err({**BASE, "pseudo_labels": {"split": "test"}}).startswith(
        "train.pseudo_labels: missing key 'teacher'"
    )
    assert err({"dataset": "amazon-s2-rgb"}) == "train: missing key 'out' (Where to write the checkpoint.)"


def test_a_whole_file_config_and_its_bad_shapes(tmp_path: Path) -> None:
    whole = tmp_path / "whole.yaml"
    whole.write_text(yaml.safe_dump({**BASE, "epochs": 0}))
    assert _error(whole) == f"{whole}: epochs must be at least 1, got 0"  # no train section: no prefix
    whole.write_text("- out\n")
    assert _error(whole) == f"{whole}: expected a mapping of training settings"
    assert _error(_file(tmp_path, "m.safetensors")).endswith(": train must be a mapping of training settings")
    with pytest.raises(ConfigError, match=r"^cfg\.yaml: step 2: epochs must be at least 1, got 0$"):
        TrainConfig.from_dict({**BASE, "epochs": 0}, "cfg.yaml: step 2")  # the workflow's form
    with pytest.raises(ConfigError, match=r"^epochs must be at least 1, got 0$"):
        TrainConfig.from_dict({**BASE, "epochs": 0})  # from Python: the keyword


def test_yaml_merge_keys_work_and_duplicates_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "train.yaml"
    path.write_text(
        "recipe: &recipe {dataset: amazon-s2-rgb, epochs: 60, lr: 0.002, loss: [ce, dice]}\n"
        "train:\n  <<: *recipe\n  out: m.safetensors\n  epochs: 3\n"
    )
    cfg = load_config(path)
    assert (cfg.dataset, cfg.epochs, cfg.lr, cfg.loss) == ("amazon-s2-rgb", 3, 0.002, ("ce", "dice"))
    path.write_text("train:\n  out: m.safetensors\n  dataset: amazon-s2-rgb\n  epochs: 3\n  epochs: 4\n")
    assert "duplicate key 'epochs'" in _error(path)


def test_replace_is_checked_and_provenance_is_plain_json() -> None:
    cfg = TrainConfig.build({**BASE, "pseudo_labels": {"teacher": "forest-s2-rgb"}})
    assert cfg.replace(epochs=3).epochs == 3
    with pytest.raises(ConfigError, match=r"^epochs must be at least 1, got 0$"):
        cfg.replace(epochs=0)
    dumped = cfg.model_dump(mode="json")
    assert dumped["loss"] == ["ce", "dice"]
    assert dumped["pseudo_labels"] == {
        "teacher": "forest-s2-rgb",
        "split": "test",
        "confidence": 0.9,
        "tta": True,
    }


def test_train_overrides_are_checked_as_the_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import geoseg.training

    path = _file(tmp_path, {**BASE, "epochs": 5})
    r = CliRunner().invoke(main, ["train", str(path), "--epochs", "0"])
    assert r.exit_code == 2 and "--epochs must be at least 1, got 0" in r.output, r.output
    seen: list[TrainConfig] = []

    class Stop(Exception):
        pass

    def fake_train(cfg: TrainConfig, **kw: Any) -> None:
        seen.append(cfg)
        raise Stop

    monkeypatch.setattr(geoseg.training, "train", fake_train)
    r = CliRunner().invoke(
        main, ["train", str(path), "--epochs", "2", "--out", str(tmp_path / "o.safetensors")]
    )
    assert isinstance(r.exception, Stop)
    assert (seen[0].epochs, seen[0].out, seen[0].dataset) == (
        2,
        str(tmp_path / "o.safetensors"),
        "amazon-s2-rgb",
    )


def test_evaluate_options_name_the_flag_or_the_keyword() -> None:
    runner = CliRunner()
    r = runner.invoke(main, ["evaluate", "-m", "forest-s2-rgb", "-d", "amazon-s2-rgb", "--zoom", "0"])
    assert r.exit_code == 2 and "--zoom must be in (0, 8], got 0.0" in r.output, r.output
    r = runner.invoke(main, ["evaluate", "-m", "forest-s2-rgb", "-d", "amazon-s2-rgb", "--threads", "0"])
    assert r.exit_code == 2 and "--threads must be at least 1, got 0" in r.output, r.output
    help_text = runner.invoke(main, ["evaluate", "--help"]).output
    for text in ("--split", "[default: validation]", "--tta", "--zoom FLOAT", "the model's own", "--json"):
        assert text in help_text
    with pytest.raises(ConfigError, match=r"^zoom must be in \(0, 8\], got 0\.0$"):
        evaluate("forest-s2-rgb", "amazon-s2-rgb", zoom=0)  # before the model is loaded
    with pytest.raises(ConfigError, match=r"^unknown key 'tta_' \(did you mean 'tta'\?\)"):
        evaluate("forest-s2-rgb", "amazon-s2-rgb", tta_=True)
    with pytest.raises(ConfigError, match=r"^threads must be at least 1, got 0$"):
        evaluate("forest-s2-rgb", "amazon-s2-rgb", options=EvaluateOptions.build({"tta": True}), threads=0)
    opts = EvaluateOptions.build({"split": "training", "zoom": 1.25})
    assert (opts.split, opts.tta, opts.zoom, opts.threads) == ("training", False, 1.25, None)
