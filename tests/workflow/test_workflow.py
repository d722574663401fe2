"""`geoseg run`: validation before work, incremental reruns, provenance, styles, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pyogrio
import pytest
import rasterio
import yaml

from geoseg.errors import ConfigError, GeosegError
from geoseg.raster import find_classes, validate_cog
from geoseg.vector import read_provenance, read_styles
from geoseg.workflow import STATE_FILE, load_workflow, run_workflow

REPO = Path(__file__).resolve().parents[2]
GEOSEG = str(Path(sys.executable).parent / "geoseg")

SMALL = {
    "workflow": "small",
    "description": "a 256 x 256 synthetic region, mapped and vectorised",
    "dask": {"workers": 1},
    "steps": [
        {"name": "region", "kind": "synthetic", "size": 256, "seed": 3, "date": "2024-07-01"},
        {"name": "landcover", "kind": "predict", "images": "region", "model": "demo-synthetic",
         "tile_size": 128, "overlap": 32},
        {"name": "polygons", "kind": "vectorize", "map": "landcover", "layer": "landcover"},
        {"name": "report", "kind": "report", "accuracy": [{"name": "lc", "map": "landcover", "truth": "region.truth"}]},
    ],
}  # fmt: skip

# No model: two dates of synthetic truth, compared and tracked in this process (fast).
TRUTHS = {
    "workflow": "truths",
    "dask": {"workers": 0},
    "steps": [
        {"name": "before", "kind": "synthetic", "size": 256, "seed": 3, "date": "2020"},
        {"name": "after", "kind": "synthetic", "size": 256, "seed": 3, "after_change": True, "date": "2024"},
        {"name": "polygons", "kind": "vectorize", "map": "before.truth", "layer": "landcover_2020"},
        {"name": "change", "kind": "change", "before": "before.truth", "after": "after.truth"},
        {"name": "loss", "kind": "track", "maps": ["before.truth", "after.truth"], "forest": ["forest"]},
        {"name": "report", "kind": "report"},
    ],
}  # fmt: skip


def write_workflow(path: Path, doc: dict) -> Path:
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([GEOSEG, *args], cwd=cwd, capture_output=True, text=True, timeout=600,
                          env={**os.environ, **(env or {})})  # fmt: skip


def one_line_error(p: subprocess.CompletedProcess[str], expect: str) -> None:
    assert p.returncode == 2, (p.stdout, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("geoseg: error:"), p.stderr
    assert expect in lines[0], lines[0]


def listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


# ------------------------------------------------------------------------ reruns


@pytest.mark.slow
def test_run_twice_skips_then_force_reruns(tmp_path: Path) -> None:
    wf_file = write_workflow(tmp_path / "small.yaml", SMALL)
    out = tmp_path / "out"
    p = cli("run", str(wf_file), "--out-dir", str(out), cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "4 ran, 0 skipped" in p.stdout
    state = json.loads((out / STATE_FILE).read_text())
    assert set(state["steps"]) == {"region", "landcover", "polygons", "report"}
    mtimes = {f: f.stat().st_mtime_ns for f in out.glob("*.tif")}

    p = cli("run", str(wf_file), "--out-dir", str(out), cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "0 ran, 4 skipped" in p.stdout
    assert {f: f.stat().st_mtime_ns for f in out.glob("*.tif")} == mtimes  # nothing rewritten

    p = cli("run", str(wf_file), "--out-dir", str(out), "--force", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "4 ran, 0 skipped" in p.stdout
    # Deterministic: the rerun made the same class map, byte for byte.
    assert (
        json.loads((out / STATE_FILE).read_text())["steps"]["landcover"]["outputs"]
        == state["steps"]["landcover"]["outputs"]
    )


@pytest.mark.slow
def test_reruns_only_what_changed(tmp_path: Path) -> None:
    wf_file = write_workflow(tmp_path / "small.yaml", SMALL)
    wf = load_workflow(wf_file, tmp_path / "out")
    assert run_workflow(wf).ran == ["region", "landcover", "polygons", "report"]

    # A parameter of one step: that step and what reads it.
    doc = json.loads(json.dumps(SMALL))
    doc["steps"][2]["min_area_ha"] = 0.5
    wf = load_workflow(write_workflow(wf_file, doc), tmp_path / "out")
    r = run_workflow(wf)
    assert r.ran == ["polygons", "report"] and r.skipped == ["region", "landcover"]

    # An output touched but not changed: its step reruns (it was modified), rewrites the
    # same bytes, and the content hash stops the cascade.
    scene = tmp_path / "out" / "region.tif"
    os.utime(scene, ns=(scene.stat().st_atime_ns, scene.stat().st_mtime_ns + 10**9))
    r = run_workflow(load_workflow(wf_file, tmp_path / "out"))
    assert r.ran == ["region"] and r.skipped == ["landcover", "polygons", "report"]

    # A deleted output: its step reruns.
    (tmp_path / "out" / "landcover.tif").unlink()
    r = run_workflow(load_workflow(wf_file, tmp_path / "out"))
    assert r.ran == ["landcover"]

    # A dry run writes nothing and says what would run.
    before = listing(tmp_path / "out")
    r = run_workflow(load_workflow(wf_file, tmp_path / "out"), dry_run=True, force=True)
    assert [e.status for e in r.events] == ["would run"] * 4
    assert listing(tmp_path / "out") == before


@pytest.mark.slow
def test_removed_step_drops_its_layers(tmp_path: Path) -> None:
    out = tmp_path / "out"
    wf_file = write_workflow(tmp_path / "t.yaml", TRUTHS)
    run_workflow(load_workflow(wf_file, out))
    gpkg = out / "truths.gpkg"
    assert "landcover_2020" in {n for n, _ in pyogrio.list_layers(gpkg)}
    doc = json.loads(json.dumps(TRUTHS))
    doc["steps"] = [s for s in doc["steps"] if s["name"] != "polygons"]
    r = run_workflow(load_workflow(write_workflow(wf_file, doc), out))
    layers = {n for n, _ in pyogrio.list_layers(gpkg)}
    assert "landcover_2020" not in layers and {"change", "forest_loss"} <= layers
    assert all(row["f_table_name"] in layers for row in read_styles(gpkg))
    assert "polygons" not in json.loads((out / STATE_FILE).read_text())["steps"]
    assert r.ran == ["report"]  # what it shows changed


# ------------------------------------------------------------------------ products


@pytest.fixture(scope="module")
def truths_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("truths")
    wf = load_workflow(write_workflow(root / "t.yaml", TRUTHS), root / "out")
    run_workflow(wf)
    return root / "out"


@pytest.mark.slow
def test_one_geopackage_with_styles_and_provenance(truths_run: Path) -> None:
    gpkg = truths_run / "truths.gpkg"
    layers = dict(pyogrio.list_layers(gpkg))
    expected = {"landcover_2020", "change", "transitions", "transition_matrix", "class_change",
                "forest_loss", "regrowth", "loss_by_period", "forest_by_date", "layer_styles"}  # fmt: skip
    assert expected <= set(layers)
    info = pyogrio.read_info(gpkg, layer="change")
    assert list(info["fields"][:7]) == ["class_id", "class_name", "from_id", "from_class", "to_id", "to_class",
                                        "area_ha"]  # fmt: skip
    assert list(pyogrio.read_info(gpkg, layer="landcover_2020")["fields"]) == [
        "class_id", "class_name", "area_ha", "perimeter_m"]  # fmt: skip
    assert {"year", "date", "period", "area_ha"} <= set(
        pyogrio.read_info(gpkg, layer="forest_loss")["fields"]
    )

    styles = {r["f_table_name"]: r for r in read_styles(gpkg)}
    assert set(styles) == {"landcover_2020", "change", "forest_loss", "regrowth"}
    cols = list(pyogrio.read_info(gpkg, layer="layer_styles")["fields"])
    assert cols == ["f_table_catalog", "f_table_schema", "f_table_name", "f_geometry_column", "styleName",
                    "styleQML", "styleSLD", "useAsDefault", "description", "owner", "ui", "update_time"]  # fmt: skip
    lc = ET.fromstring(styles["landcover_2020"]["styleQML"].split("\n", 1)[1])
    renderer = lc.find("renderer-v2")
    assert renderer is not None and renderer.get("type") == "categorizedSymbol"
    assert renderer.get("attr") == "class_name"
    cats = {c.get("value"): c.get("symbol") for c in renderer.iter("category")}
    assert {"forest", "water", "cropland", "grassland", "bare soil", "built-up"} == set(cats)
    forest_symbol = next(s for s in renderer.iter("symbol") if s.get("name") == cats["forest"])
    assert any(o.get("value") == "0,100,0,255" for o in forest_symbol.iter("Option"))  # the class colour
    ch = ET.fromstring(styles["change"]["styleQML"].split("\n", 1)[1]).find("renderer-v2")
    assert ch is not None and "from_class" in (ch.get("attr") or "") and "to_class" in (ch.get("attr") or "")
    assert any(c.get("value") == "forest -> grassland" for c in ch.iter("category"))
    ET.fromstring(styles["change"]["styleSLD"])  # well-formed SLD
    assert all(r["useAsDefault"] for r in styles.values())

    prov = read_provenance(gpkg, "change")
    assert prov is not None and prov["step"] == "change" and prov["geoseg_version"]
    assert {i["role"] for i in prov["inputs"]} == {"before", "after"}
    assert all(len(i["sha256"]) == 64 for i in prov["inputs"])
    whole = read_provenance(gpkg)
    assert whole is not None and whole["workflow"] == "truths" and "change" in whole["steps"]
    meta = pyogrio.read_info(gpkg, layer="change")["layer_metadata"]
    assert meta["geoseg_step"] == "change" and "geoseg_inputs" in meta  # what ogrinfo shows


def test_rasters_are_cogs_with_provenance(truths_run: Path) -> None:
    for name in ("change.tif", "loss_loss_year.tif", "before.tif", "before_truth.tif"):
        path = truths_run / name
        ok, errors, _ = validate_cog(path) if name != "before.tif" else (True, [], [])
        assert ok, (name, errors)
    with rasterio.open(truths_run / "change.tif") as ds:
        prov = json.loads(ds.tags()["GEOSEG_PROVENANCE"])
    assert prov["kind"] == "change" and prov["params"]["min_area_ha"] == 0.0
    with rasterio.open(truths_run / "loss_loss_year.tif") as ds:
        assert json.loads(ds.tags()["GEOSEG_PROVENANCE"])["step"] == "loss"


@pytest.mark.slow
def test_predicted_cog_records_model_and_input_hashes(tmp_path: Path) -> None:
    wf = load_workflow(write_workflow(tmp_path / "s.yaml", SMALL), tmp_path / "out")
    run_workflow(wf)
    with rasterio.open(tmp_path / "out" / "landcover.tif") as ds:
        tags = ds.tags()
    prov = json.loads(tags["GEOSEG_PROVENANCE"])
    assert (
        prov["model"]["name"] == "demo-synthetic" and prov["model"]["sha256"] == tags["GEOSEG_MODEL_SHA256"]
    )
    assert prov["inputs"][0]["path"].endswith("region.tif") and len(prov["inputs"][0]["sha256"]) == 64
    acc = json.loads((tmp_path / "out" / "report" / "accuracy.json").read_text())
    assert acc["lc"]["accuracy"] > 0.9


# ------------------------------------------------------------------------ bad input


def test_typo_key_rejected_before_any_work(tmp_path: Path) -> None:
    doc = json.loads(json.dumps(SMALL))
    doc["steps"][1]["tile_sise"] = 256
    wf_file = write_workflow(tmp_path / "typo.yaml", doc)
    p = cli("run", str(wf_file), "--out-dir", str(tmp_path / "out"), cwd=tmp_path)
    one_line_error(
        p, "typo.yaml: steps[1]: unknown key 'tile_sise' (did you mean 'tile_size'?); known keys: name, kind"
    )
    assert listing(tmp_path) == ["typo.yaml"]  # nothing written, not even the output folder


@pytest.mark.parametrize(
    ("change", "expect"),
    [
        ({"images": "no-such-scene"}, "'no-such-scene' is not an earlier step, a catalog entry or a file"),
        ({"images": "nc-landsat"}, "(did you mean 'nc-landsat7'?)"),
        ({"model": "forest-s2-rgbx"}, "no model 'forest-s2-rgbx' in the catalog"),
        ({"images": "later"}, "'later' is not an earlier step"),
        ({"images": "missing/scene.tif"}, "missing/scene.tif: no such file"),
        ({"kind": "predcit"}, "(did you mean 'predict'?)"),
        ({"tile_size": "big"}, "tile_size must be a whole number"),
    ],
)
def test_bad_references_and_values(tmp_path: Path, change: dict, expect: str) -> None:
    doc = json.loads(json.dumps(SMALL))
    doc["steps"][1].update(change)
    doc["steps"].append({"name": "later", "kind": "synthetic", "size": 64})
    wf_file = write_workflow(tmp_path / "bad.yaml", doc)
    p = cli("run", str(wf_file), "--out-dir", str(tmp_path / "out"), cwd=tmp_path)
    one_line_error(p, expect)
    assert listing(tmp_path) == ["bad.yaml"]


def test_imagery_where_a_class_map_is_wanted_is_refused_before_work(tmp_path: Path) -> None:
    doc = json.loads(json.dumps(SMALL))
    doc["steps"][2]["map"] = "region"  # the vectorize step, given the synthetic imagery
    wf_file = write_workflow(tmp_path / "img.yaml", doc)
    p = cli("run", str(wf_file), "--out-dir", str(tmp_path / "out"), cwd=tmp_path)
    one_line_error(p, "img.yaml: steps[2].map: 'region' is imagery, not a class map")
    assert listing(tmp_path) == ["img.yaml"]
    doc = json.loads(json.dumps(TRUTHS))
    doc["steps"][3]["after"] = "after"  # change: imagery as the later map
    with pytest.raises(ConfigError, match="after: 'after' is imagery"):
        load_workflow(write_workflow(tmp_path / "c.yaml", doc), tmp_path / "out")
    doc = json.loads(json.dumps(TRUTHS))
    doc["steps"][4]["maps"] = ["before", "after.truth"]  # track without classify: class maps only
    with pytest.raises(ConfigError, match="maps: 'before' is imagery"):
        load_workflow(write_workflow(tmp_path / "t.yaml", doc), tmp_path / "out")


def test_synthetic_size_is_bounded(tmp_path: Path) -> None:
    doc = json.loads(json.dumps(SMALL))
    doc["steps"][0]["size"] = 70_000
    with pytest.raises(
        ConfigError, match=r"big.yaml: steps\[0\].size must be in 64\.\.65536 pixels, got 70000"
    ):
        load_workflow(write_workflow(tmp_path / "big.yaml", doc), tmp_path / "out")
    doc["steps"][0].update(size=256, date="notadate")
    with pytest.raises(ConfigError, match=r"big.yaml: steps\[0\].date: date 'notadate' is not"):
        load_workflow(write_workflow(tmp_path / "big.yaml", doc), tmp_path / "out")
    assert listing(tmp_path) == ["big.yaml"]


def test_catalog_data_absent_suggests_fetch(tmp_path: Path) -> None:
    wf_file = REPO / "workflows" / "track_deforestation.yaml"
    (tmp_path / "empty-data").mkdir()
    p = cli("run", str(wf_file), "--out-dir", str(tmp_path / "out"), cwd=tmp_path,
            env={"GEOSEG_DATA": str(tmp_path / "empty-data")})  # fmt: skip
    one_line_error(p, "run `geoseg data fetch pucallpa-landsat`")
    assert listing(tmp_path) == ["empty-data"]


@pytest.mark.slow
def test_output_folder_that_is_a_file(tmp_path: Path) -> None:
    wf_file = write_workflow(tmp_path / "s.yaml", SMALL)
    (tmp_path / "out").write_text("not a folder")
    p = cli("run", str(wf_file), "--out-dir", str(tmp_path / "out"), cwd=tmp_path)
    one_line_error(p, "out: exists and is not a folder")
    p = cli("run", str(wf_file), "--out-dir", str(tmp_path / "out" / "sub"), cwd=tmp_path)
    one_line_error(p, "is a file, not a folder")
    assert listing(tmp_path) == ["out", "s.yaml"] and (tmp_path / "out").read_text() == "not a folder"


def test_output_folder_without_write_access(tmp_path: Path) -> None:
    # The tests run as root, which chmod does not stop: /sys is a read-only mount (sysfs)
    # where even root cannot create a file, so it stands for "no write access".
    if os.access("/sys", os.W_OK) and os.geteuid() != 0:
        pytest.skip("/sys is writable here")
    wf_file = write_workflow(tmp_path / "s.yaml", SMALL)
    p = cli("run", str(wf_file), "--out-dir", "/sys/geoseg-test/out", cwd=tmp_path)
    one_line_error(p, "cannot be written: no write access to /sys")
    assert not Path("/sys/geoseg-test").exists()


def test_layer_name_collision_and_legacy_track_file(tmp_path: Path) -> None:
    doc = json.loads(json.dumps(TRUTHS))
    doc["steps"][2]["layer"] = "change"
    with pytest.raises(ConfigError, match="layer 'change' is written by step 'polygons' too"):
        load_workflow(write_workflow(tmp_path / "c.yaml", doc), tmp_path / "out")
    with pytest.raises(ConfigError, match="is a `geoseg track` parameter file"):
        load_workflow(REPO / "workflows" / "track_deforestation_pucallpa.yaml", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_duplicate_yaml_key_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "dup.yaml"
    f.write_text("workflow: x\nsteps:\n  - name: a\n    kind: synthetic\n    size: 64\n    size: 128\n")
    with pytest.raises(ConfigError, match="duplicate key 'size'"):
        load_workflow(f, tmp_path / "out")


# ------------------------------------------------------------------------ shipped workflows


@pytest.mark.parametrize(
    "name", ["train_demo", "train_forest_amazon", "train_forest_amazon_fast", "train_landcover_nc"]
)
def test_training_configs_are_workflows(shared_data: Path, tmp_path: Path, name: str) -> None:
    wf = load_workflow(REPO / "workflows" / f"{name}.yaml", tmp_path / "out")
    (step,) = wf.steps
    assert step.kind == "train" and step.spec.out.endswith(".safetensors")
    r = run_workflow(wf, dry_run=True)
    assert [e.status for e in r.events] == ["would run"]
    assert not (tmp_path / "out").exists()


TRAINING = {
    "train_demo": "demo-synthetic",
    "train_forest_amazon": "forest-s2-rgb",
    "train_forest_amazon_fast": "forest-s2-rgb-fast",
    "train_landcover_nc": "landcover-nc-landsat7",
}


@pytest.mark.parametrize("name", sorted(TRAINING))
def test_training_workflows_write_into_their_output_folder(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """From the checkout's root, as the issue found it: the model goes to out/<workflow>/,
    never over the shipped one, and --dry-run says where before any work."""
    from click.testing import CliRunner

    from geoseg.cli import main
    from geoseg.training import is_shipped

    model = TRAINING[name]
    wf = load_workflow(REPO / "workflows" / f"{name}.yaml", tmp_path / "out")
    (step,) = wf.steps
    assert step.spec.out == str(tmp_path / "out" / f"{model}.safetensors")
    assert not is_shipped(step.spec.out)
    (event,) = run_workflow(wf, dry_run=True).events
    assert event.products == (f"{model}.safetensors",)
    monkeypatch.chdir(REPO)  # the default output folder, relative to the checkout's root
    existed = (REPO / "out" / name).exists()
    default = load_workflow(Path("workflows") / f"{name}.yaml")
    assert default.steps[0].spec.out == str(REPO / "out" / name / f"{model}.safetensors")
    r = CliRunner().invoke(main, ["run", f"workflows/{name}.yaml", "--dry-run"])
    assert r.exit_code == 0, r.output
    assert f"train (train): would run (never run here); writes out/{name}/{model}.safetensors" in r.output
    assert (REPO / "out" / name).exists() == existed  # a dry run writes nothing


def test_a_train_step_into_the_shipped_models_is_refused_at_load(tmp_path: Path) -> None:
    from geoseg.data import MODELS_DIR

    shipped = MODELS_DIR / "forest-s2-rgb.safetensors"
    before = shipped.stat().st_mtime_ns
    step = {"name": "retrain", "kind": "train", "dataset": "amazon-s2-rgb", "epochs": 1}
    cases = [  # (the workflow, its output folder given as --out-dir would be)
        ({"steps": [{**step, "out": str(shipped)}]}, tmp_path / "out"),
        ({"steps": [{**step, "out": str(MODELS_DIR / "new.safetensors")}]}, tmp_path / "out"),
        ({"train": {"out": str(shipped), "dataset": "amazon-s2-rgb"}}, tmp_path / "out"),
        ({"steps": [{**step, "out": "forest-s2-rgb.safetensors"}]}, MODELS_DIR),  # a relative out, there
        ({"out_dir": str(MODELS_DIR), "steps": [{**step, "out": "forest-s2-rgb.safetensors"}]}, None),
    ]
    for doc, out_dir in cases:
        path = write_workflow(tmp_path / "wf.yaml", {"workflow": "retrain", **doc})
        with pytest.raises(
            ConfigError, match=r"steps\[0\]\.out must not be inside the shipped models"
        ) as err:
            load_workflow(path, out_dir)
        assert "\n" not in str(err.value) and "geoseg model ship CHECKPOINT NAME" in str(err.value)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"train": {"out": str(shipped), "dataset": "amazon-s2-rgb"}}))
    path = write_workflow(
        tmp_path / "wf.yaml",
        {"workflow": "retrain", "steps": [{"name": "t", "kind": "train", "config": str(config)}]},
    )
    with pytest.raises(ConfigError, match=r"config\.yaml: train\.out must not be inside the shipped models"):
        load_workflow(path, tmp_path / "out")
    assert shipped.stat().st_mtime_ns == before and not (MODELS_DIR / "new.safetensors").exists()
    assert not (tmp_path / "out").exists()


def test_self_training_teacher_is_a_fingerprinted_input(shared_data: Path, tmp_path: Path) -> None:
    """pseudo_labels.teacher names an earlier train step (run first), a catalog model or a file."""
    from geoseg.errors import CatalogError

    def train(name: str, **extra: object) -> dict:
        return {"name": name, "kind": "train", "out": str(tmp_path / f"{name}.safetensors"),
                "dataset": "amazon-s2-rgb", "epochs": 1, **extra}  # fmt: skip

    doc = {"workflow": "self-training", "steps": [
        train("teacher"),
        train("student", pseudo_labels={"teacher": "teacher", "confidence": 0.95}),
        train("from_catalog", pseudo_labels={"teacher": "forest-s2-rgb"}),
    ]}  # fmt: skip
    wf = load_workflow(write_workflow(tmp_path / "st.yaml", doc), tmp_path / "out")
    student, from_catalog = wf.steps[1], wf.steps[2]
    (ref,) = student.refs["teacher"]
    assert ref.step == "teacher" and ref.items[0].path == tmp_path / "teacher.safetensors"
    # the student trains from the teacher step's output; its parameters keep what was written
    pl = student.spec.pseudo_labels
    assert (pl.teacher, pl.confidence) == (str(tmp_path / "teacher.safetensors"), 0.95)
    assert student.params["config"]["pseudo_labels"]["teacher"] == "teacher"
    assert from_catalog.refs["teacher"][0].entry == "forest-s2-rgb"
    assert Path(from_catalog.spec.pseudo_labels.teacher).name == "forest-s2-rgb.safetensors"
    r = run_workflow(wf, dry_run=True)
    assert [e.status for e in r.events] == ["would run"] * 3
    doc["steps"][1]["pseudo_labels"]["teacher"] = "techer"
    with pytest.raises(
        CatalogError, match=r"st.yaml: steps\[1\]\.pseudo_labels\.teacher: no model 'techer' in the catalog"
    ):
        load_workflow(write_workflow(tmp_path / "st.yaml", doc), tmp_path / "out")


def test_map_landcover_workflow_validates(tmp_path: Path) -> None:
    wf = load_workflow(REPO / "workflows" / "map_landcover.yaml", tmp_path / "out")
    assert [s.kind for s in wf.steps] == ["synthetic", "predict", "vectorize", "report"]


@pytest.mark.slow
def test_track_deforestation_pucallpa(shared_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    p = cli("run", str(REPO / "workflows" / "track_deforestation.yaml"), "--out-dir", str(out), cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "WARNING" not in p.stderr  # the composites' libtiff quirk stays quiet
    assert validate_cog(out / "pucallpa_loss_year.tif")[0]
    assert len(list((out / "pucallpa_classified").glob("*.tif"))) == 8
    gpkg = out / "track-deforestation.gpkg"
    periods = pyogrio.read_dataframe(gpkg, layer="loss_by_period")
    assert list(periods["year"]) == [1990, 1995, 2000, 2005, 2010, 2015, 2020]
    assert periods["loss_ha"].iloc[:-1].gt(0).all()  # the last period cannot confirm a loss (persist 2)
    # the loss years' colours: in the legend sidecars (a 16-bit TIFF palette would hold 65,536)
    legend = {c.id: c.colour for c in find_classes(out / "pucallpa_loss_year.tif").classes}
    assert legend[1990] != (0, 0, 0) and (out / "pucallpa_loss_year.qml").is_file()
    assert (out / "report" / "index.html").exists() and (out / "pucallpa_report" / "loss_year.png").exists()


def test_library_errors_are_geoseg_errors(tmp_path: Path) -> None:
    with pytest.raises(GeosegError, match="no such workflow file"):
        load_workflow(tmp_path / "nope.yaml")


def test_one_workflow_per_output_folder(tmp_path: Path) -> None:
    one = {"workflow": "one", "steps": [{"name": "a", "kind": "synthetic", "size": 64}]}
    two = {"workflow": "two", "steps": [{"name": "b", "kind": "synthetic", "size": 64}]}
    run_workflow(load_workflow(write_workflow(tmp_path / "one.yaml", one), tmp_path / "out"))
    wf2 = load_workflow(write_workflow(tmp_path / "two.yaml", two), tmp_path / "out")
    with pytest.raises(GeosegError, match="holds the products of workflow 'one'"):
        run_workflow(wf2)
    assert run_workflow(wf2, force=True).ran == ["b"]


def test_catalog_scene_of_single_band_files_is_stacked(shared_data: Path, tmp_path: Path) -> None:
    """nc-landsat7: five float32 bands (nodata -99999) and an int16 one (nodata -32768)
    become one float32 image whose nodata is the same in every band."""
    import numpy as np

    from geoseg.raster import open_raster
    from geoseg.workflow import stack_vrt

    doc = {"workflow": "nc", "steps": [{"name": "lc", "kind": "predict", "images": "nc-landsat7",
                                        "model": "demo-synthetic", "bands": ["blue", "green", "red", "nir"]}]}  # fmt: skip
    wf = load_workflow(write_workflow(tmp_path / "nc.yaml", doc), tmp_path / "out")
    (item,) = wf.steps[0].refs["images"][0].items
    assert len(item.sources) == 6 and item.path.suffix == ".vrt"
    assert not (tmp_path / "out").exists()  # planned, not written
    src = open_raster(stack_vrt(item))
    assert src.band_names == ("blue", "green", "red", "nir", "swir1", "swir2") and src.dtype == "float32"
    pixels, valid = src.read()
    with rasterio.open(item.sources[5]) as b7:
        raw = b7.read(1)
    assert np.array_equal(~valid, (raw == -32768) | (pixels[0] == -99999))  # band 7's nodata stays nodata
    assert 0.37 < (~valid).mean() < 0.39


@pytest.mark.slow
def test_label_set_maps_are_predicted_side_by_side(shared_data: Path, tmp_path: Path) -> None:
    """A step's maps share the cluster, as many at a time as it has worker threads: each
    equals the map of a lone ``predict()``, and one progress callback counts all tiles."""
    from geoseg.inference import predict

    doc = {
        "workflow": "tiles", "dask": {"workers": 2},
        "steps": [{"name": "forest", "kind": "predict", "images": "amazon-s2-rgb", "split": "validation",
                   "model": "forest-s2-rgb-fast", "tile_size": 256, "overlap": 32}],
    }  # fmt: skip
    wf = load_workflow(write_workflow(tmp_path / "wf.yaml", doc), tmp_path / "out")
    calls: list[tuple[int, int]] = []
    run_workflow(wf, progress=lambda step: lambda done, total, postfix="": calls.append((done, total)))
    maps = sorted((tmp_path / "out" / "forest").glob("*.tif"))
    assert len(maps) == 15
    # 15 tiles of 512^2 in 256-px tiles: 60 in all, counted once each, in one rising count
    # whose total is known from the first tile on
    assert calls[-1] == (60, 60) and [d for d, _ in calls] == sorted(d for d, _ in calls)
    assert {total for _, total in calls} == {60}
    images = {p.name.replace(".", "_").removesuffix("_tiff") + ".tif": p
              for p in (shared_data / "amazon-s2-rgb" / "validation" / "images").iterdir()}  # fmt: skip
    for m in maps[:3]:
        alone = predict([images[m.name]], "forest-s2-rgb-fast", tmp_path / f"alone-{m.name}", tile_size=256,
                        overlap=32, workers=1)  # fmt: skip
        with rasterio.open(m) as a, rasterio.open(alone.out) as b:
            assert a.transform == b.transform and (a.read(1) == b.read(1)).all()


@pytest.mark.slow
def test_predict_step_without_dask_maps_the_same(tmp_path: Path) -> None:
    """``workers: 0``: the step predicts in this process, with the cluster's class map."""
    doc = json.loads(json.dumps(SMALL))
    doc["steps"] = doc["steps"][:2]
    maps = {}
    for workers in (0, 1):
        wf = load_workflow(write_workflow(tmp_path / f"w{workers}.yaml", doc), tmp_path / f"out{workers}")
        run_workflow(wf, workers=workers)
        with rasterio.open(tmp_path / f"out{workers}" / "landcover.tif") as ds:
            maps[workers] = ds.read(1)
    assert (maps[0] == maps[1]).all() and len(set(maps[0].ravel().tolist())) > 1
