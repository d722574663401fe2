"""Training never writes into the package: outputs in the workflow's output folder, shipped
models refused as outputs, and `geoseg model ship` as the one way in."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from geoseg.cli import main
from geoseg.data import MODELS_DIR, load_catalog
from geoseg.errors import ConfigError
from geoseg.files import file_sha256
from geoseg.inference import init_checkpoint, make_spec, read_spec
from geoseg.training import TrainConfig, is_shipped, load_config, ship_model

REPO = Path(__file__).resolve().parents[2]
TINY = {
    "synthetic": {"height": 128, "width": 128, "seed": 2, "bands": 4},
    "arch": "Unet",
    "encoder": "resnet18",
    "model_kwargs": {"encoder_depth": 3, "decoder_channels": [16, 8, 4]},
    "chip_size": 32,
    "batch_size": 2,
    "epochs": 1,
    "steps_per_epoch": 1,
    "threads": 1,
}


def test_a_shipped_model_is_never_a_training_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shipped = MODELS_DIR / "forest-s2-rgb.safetensors"
    before = file_sha256(shipped)
    assert is_shipped(shipped) and is_shipped(MODELS_DIR / "sub" / "x.safetensors")
    assert not is_shipped(tmp_path / "forest-s2-rgb.safetensors")
    with pytest.raises(ConfigError, match=r"^out must not be inside the shipped models \(") as err:
        TrainConfig.build({"out": str(shipped), "dataset": "amazon-s2-rgb"})
    assert "\n" not in str(err.value)
    monkeypatch.chdir(REPO)  # relative to the checkout's root, as the training files once said
    with pytest.raises(ConfigError, match="out must not be inside the shipped models"):
        TrainConfig.build({"out": "geoseg/models/forest-s2-rgb.safetensors", "dataset": "amazon-s2-rgb"})
    link = tmp_path / "models"
    link.symlink_to(MODELS_DIR)  # a path that reaches the folder another way is the folder
    with pytest.raises(ConfigError, match="must not be inside the shipped models"):
        TrainConfig.build({"out": str(link / "x.safetensors"), "dataset": "amazon-s2-rgb"})
    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump({"train": {"out": str(shipped), "dataset": "amazon-s2-rgb"}}))
    r = CliRunner().invoke(main, ["train", str(config)])
    assert r.exit_code == 2 and r.output.count("\n") == 1, r.output
    assert f"{config}: train.out must not be inside the shipped models" in r.output
    config.write_text(
        yaml.safe_dump({"train": {"out": str(tmp_path / "m.safetensors"), "dataset": "amazon-s2-rgb"}})
    )
    r = CliRunner().invoke(main, ["train", str(config), "--out", "geoseg/models/forest-s2-rgb.safetensors"])
    assert r.exit_code == 2 and "--out must not be inside the shipped models" in r.output, r.output
    assert file_sha256(shipped) == before


def test_a_relative_out_is_in_the_output_folder(tmp_path: Path) -> None:
    config = tmp_path / "retrain.yaml"
    config.write_text(yaml.safe_dump({"train": {"out": "m.safetensors", "dataset": "amazon-s2-rgb"}}))
    assert load_config(config).out == "m.safetensors"  # Python: as written, from the current folder
    assert load_config(config, base=tmp_path / "o").out == str(tmp_path / "o" / "m.safetensors")
    assert load_config(config, base=tmp_path / "o").replace(out="/abs.safetensors").out == "/abs.safetensors"


@pytest.mark.slow
def test_geoseg_run_and_geoseg_train_write_a_training_file_to_one_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real (tiny) training file, run both ways from its folder: the checkpoint lands in
    the workflow's output folder, the same one for both commands."""
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({"train": {"out": "models/tiny.safetensors", **TINY}}))
    r = CliRunner().invoke(main, ["run", str(config), "--dry-run"])
    assert r.exit_code == 0 and "writes out/tiny/models/tiny.safetensors" in r.output, r.output
    r = CliRunner().invoke(main, ["run", str(config)])
    assert r.exit_code == 0, r.output
    model = tmp_path / "out" / "tiny" / "models" / "tiny.safetensors"
    assert read_spec(model).provenance["trained"] is True
    first = read_spec(model).provenance["config"]
    model.unlink()
    r = CliRunner().invoke(main, ["train", str(config)])
    assert r.exit_code == 0, r.output
    assert f"{model.relative_to(tmp_path)}: 1 epochs" in r.output or f"{model}: 1 epochs" in r.output
    assert read_spec(model).provenance["config"] == first  # the same run, the same out


def test_geoseg_model_ship(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A checkpoint copied into a models folder with a card stub, and a catalog entry that the
    catalog's own loader takes as it is printed."""
    spec = make_spec(
        "Unet", "resnet18", ["red", "green", "blue"], 2, encoder_depth=3, decoder_channels=[16, 8, 4]
    )
    made = init_checkpoint(tmp_path / "trained.safetensors", spec, seed=3)
    models = tmp_path / "models"
    models.mkdir()
    r = CliRunner().invoke(main, ["model", "ship", str(made), "forest-test", "--into", str(models)])
    assert r.exit_code == 0, r.output
    shipped = models / "forest-test.safetensors"
    sha = file_sha256(made)
    assert file_sha256(shipped) == sha and read_spec(shipped) == read_spec(made)
    card = (models / "forest-test.md").read_text()
    assert (
        card.startswith("# Model card: forest-test")
        and "Unet (segmentation-models-pytorch), resnet18" in card
    )
    assert "untrained (`geoseg model init`, seed 3)" in card and sha in card
    entry = r.output[r.output.index("  - name: forest-test") :]
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(f"version: 1\nentries:\n{entry}")
    loaded = load_catalog(catalog).get("forest-test")
    assert loaded.kind == "model" and loaded.files[0].sha256 == sha and loaded.files[0].path == shipped.name
    # a second ship of that name needs --replace, and keeps the card someone has filled in
    (models / "forest-test.md").write_text("# Model card: forest-test\n\nreviewed\n")
    r = CliRunner().invoke(main, ["model", "ship", str(made), "forest-test", "--into", str(models)])
    assert r.exit_code == 2 and r.output.count("\n") == 1 and "--replace" in r.output
    other = init_checkpoint(tmp_path / "retrained.safetensors", spec, seed=4)
    done = ship_model(other, "forest-test", into=models, replace=True)
    assert file_sha256(shipped) == file_sha256(other) == done.sha256 and not done.card_written
    assert (models / "forest-test.md").read_text().endswith("reviewed\n")
    assert sorted(os.listdir(models)) == ["forest-test.md", "forest-test.safetensors"]
    for args, said in (
        ([str(made), "Forest Test"], "model name 'Forest Test': use lowercase letters"),
        ([str(tmp_path / "catalog.yaml"), "x"], "catalog.yaml: not a geoseg checkpoint"),
        ([str(tmp_path / "nope.safetensors"), "x"], "nope.safetensors: no such model file"),
    ):
        r = CliRunner().invoke(main, ["model", "ship", *args, "--into", str(models)])
        assert r.exit_code == 2 and said in r.output and r.output.count("\n") == 1, r.output
    assert sorted(os.listdir(models)) == ["forest-test.md", "forest-test.safetensors"]
