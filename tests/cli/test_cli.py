"""The CLI skeleton and the demo, run as a user runs them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import rasterio
from click.testing import CliRunner

from geoseg import __version__
from geoseg.cli import COMMANDS, main

GEOSEG = str(Path(sys.executable).parent / "geoseg")


def test_version_and_help_for_every_command() -> None:
    runner = CliRunner()
    r = runner.invoke(main, ["--version"])
    assert r.exit_code == 0 and __version__ in r.output
    r = runner.invoke(main, ["--help"])
    assert r.exit_code == 0
    for name in COMMANDS:
        assert name in r.output
        r2 = runner.invoke(main, [name, "--help"])
        assert r2.exit_code == 0, (name, r2.output)
        assert "Usage:" in r2.output


@pytest.mark.parametrize(
    ("args", "expect"),
    [
        (
            ["predict", "missing.tif", "--model", "m.safetensors", "--out", "o.tif"],
            "missing.tif: no such file",
        ),
        (["model", "info", "nope.safetensors"], "nope.safetensors: no such model file"),
        (["demo", "--size", "10", "--out", "d"], "--size must be in 64..65536 pixels, got 10"),
        # click's own usage errors too: one line, not usage + hint + error
        (
            ["vectorize", "m.tif", "--connectivity", "6"],
            "'6' is not one of '4', '8' (see `geoseg vectorize --help`)",
        ),
        (["predcit", "x.tif"], "No such command 'predcit' (see `geoseg --help`)"),
        (["demo", "--size", "100000000", "--out", "d"], "--size must be in 64..65536 pixels, got 100000000"),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path: Path, args: list[str], expect: str) -> None:
    p = subprocess.run([GEOSEG, *args], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("geoseg: error:") and expect in lines[0], p.stderr
    assert list(tmp_path.iterdir()) == []


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    p = subprocess.run([GEOSEG, "--debug", "model", "info", "nope.safetensors"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert p.returncode != 0 and "Traceback" in p.stderr


def _links(html_path: Path) -> list[str]:
    import re

    text = html_path.read_text()
    return re.findall(r'(?:href|src)="([^"#]+)"', text)


@pytest.mark.slow
def test_demo_end_to_end(tmp_path: Path) -> None:
    import json

    import pyogrio

    from geoseg.products import check_stac
    from geoseg.raster import find_classes, validate_cog
    from geoseg.vector import read_provenance, read_styles

    out = tmp_path / "demo"
    p = subprocess.run([GEOSEG, "demo", "--out", str(out), "--size", "1024", "--workers", "1"],
                       capture_output=True, text=True, timeout=600)  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert "INFO" not in p.stderr  # dask's worker chatter stays quiet without -vv
    # it ends by printing where each product is
    listed = {
        line.split()[0]: line.split()[1] for line in p.stdout.split("products:")[1].strip().splitlines()
    }
    assert {"landcover_date1", "change", "deforestation", "geopackage", "report", "stac", "accuracy"} <= set(
        listed
    )
    assert all(Path(v).exists() for v in listed.values())

    for date in (1, 2):
        cog = out / f"landcover_date{date}.tif"
        with rasterio.open(cog) as pred, rasterio.open(out / f"scene_date{date}.tif") as scene:
            assert pred.shape == scene.shape and pred.transform == scene.transform and pred.crs == scene.crs
    for cog in ("landcover_date1.tif", "landcover_date2.tif", "change.tif", "deforestation_loss_year.tif"):
        ok, errors, _ = validate_cog(out / cog)
        assert ok, (cog, errors)
        with rasterio.open(out / cog) as ds:
            assert "GEOSEG_PROVENANCE" in ds.tags()
            # colours: a colour table in 8-bit maps; the 16-bit loss years' in their legend sidecars
            assert ds.colormap(1) if ds.dtypes[0] == "uint8" else find_classes(out / cog).classes

    metrics = json.loads((out / "report" / "accuracy.json").read_text())
    # the shipped demo model on a region it never saw (trained on seed 7, demo uses 3)
    assert metrics["date1"]["accuracy"] > 0.95 and metrics["date2"]["accuracy"] > 0.95
    loss = metrics["forest_loss"]
    assert abs(loss["mapped_ha"] - loss["truth_ha"]) < 0.25 * loss["truth_ha"] and loss["f1"] > 0.8

    gpkgs = list(out.glob("*.gpkg"))
    assert gpkgs == [out / "geoseg-demo.gpkg"]  # ONE GeoPackage with every layer and table
    layers = dict(pyogrio.list_layers(gpkgs[0]))
    assert {"landcover_date1", "landcover_date2", "change", "forest_loss", "regrowth"} <= {
        k for k, v in layers.items() if v
    }
    assert {"transitions", "transition_matrix", "class_change", "loss_by_period", "forest_by_date",
            "layer_styles"} <= {k for k, v in layers.items() if not v}  # fmt: skip
    for layer in layers:
        assert pyogrio.read_dataframe(gpkgs[0], layer=layer, max_features=5) is not None
    # the demo's minimum mapping unit, said where the numbers are
    for layer in ("landcover_date1", "change", "forest_loss"):
        assert pyogrio.read_dataframe(gpkgs[0], layer=layer, read_geometry=False)["area_ha"].min() >= 0.5
    assert "minimum mapping unit 0.5 ha" in p.stdout
    assert {r["f_table_name"] for r in read_styles(gpkgs[0])} == {
        "landcover_date1", "landcover_date2", "change", "forest_loss", "regrowth"}  # fmt: skip
    prov = read_provenance(gpkgs[0], "landcover_date1")
    assert prov is not None and prov["inputs"][0]["path"].endswith("landcover_date1.tif")

    # quick-looks with legends and an HTML report whose links all resolve
    html = out / "report" / "index.html"
    links = _links(html)
    assert any(link.endswith("change.png") for link in links) and any("transitions.png" in x for x in links)
    assert any(link.endswith(".gpkg") for link in links) and any("collection.json" in x for x in links)
    for link in links:
        assert (html.parent / link).resolve().exists(), link
    text = html.read_text()
    assert "Accuracy against known truth" in text and "transition matrix" in text
    assert text.index('<section id="summary">') < text.index('<section id="maps">')
    assert "Minimum mapping unit 0.5 ha in the polygon layers" in text
    assert "forest loss per period (ha)" in text and any(link.endswith("loss_year.png") for link in links)

    # STAC: every item and the collection, checked offline
    stac = sorted((out / "stac").glob("*.json"))
    assert len(stac) >= 10
    for f in stac:
        assert check_stac(json.loads(f.read_text())) == [], f

    # the demo is a workflow: a rerun skips every step
    p = subprocess.run([GEOSEG, "run", str(out / "demo.yaml"), "--out-dir", str(out)],
                       capture_output=True, text=True, timeout=600)  # fmt: skip
    assert p.returncode == 0 and "0 ran, 9 skipped" in p.stdout, p.stdout + p.stderr


@pytest.mark.slow
def test_demo_real(shared_data: Path, tmp_path: Path) -> None:
    """``--real`` maps the Amazon validation tiles; with the forest model when it is
    shipped, else (to exercise the same code path) with an untrained 3-band model."""
    import json

    from geoseg.data import ModelEntry, load_catalog

    catalog = load_catalog()
    shipped = (
        "forest-s2-rgb" in catalog and catalog.get("forest-s2-rgb", ModelEntry).checkpoint_path().is_file()
    )
    args = [GEOSEG, "demo", "--real", "--out", str(tmp_path / "real"), "--workers", "1"]
    if not shipped:
        p = subprocess.run(args, capture_output=True, text=True, timeout=600)
        assert p.returncode == 2 and "not shipped yet" in p.stderr and len(p.stderr.strip().splitlines()) == 1
        assert not (tmp_path / "real").exists()
        model = tmp_path / "tiny.safetensors"
        subprocess.run([GEOSEG, "model", "init", "--encoder", "mobilenet_v2", "--bands", "red,green,blue",
                        "--classes", "forest,non-forest", "--out", str(model)], check=True, capture_output=True)  # fmt: skip
        args += ["--model", str(model)]
    p = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    maps = sorted((tmp_path / "real" / "forest").glob("*.tif"))
    assert len(maps) == 15
    acc = json.loads((tmp_path / "real" / "report" / "accuracy.json").read_text())
    assert acc["evaluate"]["dataset"] == "amazon-s2-rgb" and acc["evaluate"]["paper"]["tiles"] == 15
    if shipped:
        assert acc["evaluate"]["accuracy"] > 0.85
    # every tile scored is shown, as image | mask | map, each file there
    assert "the report shows 15 of them as image | mask | map" in p.stdout
    html = tmp_path / "real" / "report" / "index.html"
    links = _links(html)
    for panel in ("image.jpg", "mask.png", "map.png"):
        assert len([x for x in links if x.startswith("forest_") and x.endswith(panel)]) == 30  # href + src
    for link in links:
        assert (html.parent / link).resolve().exists(), link


def test_progress_writes_plain_lines_when_stderr_is_not_a_terminal(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from geoseg.cli._progress import progress_bar

    with progress_bar("train", unit="epoch", log_every=0) as bar:
        for i in range(1, 4):
            bar(i, 3, f"loss {1 / i:.2f}")
    assert capsys.readouterr().err.splitlines() == [
        "train: 1/3 epoch loss 1.00",
        "train: 2/3 epoch loss 0.50",
        "train: 3/3 epoch loss 0.33",
    ]
    with progress_bar("predict", log_every=3600) as bar:
        for i in range(1, 11):
            bar(i, 10)
    assert capsys.readouterr().err.splitlines() == [
        "predict: 1/10 tile",
        "predict: 10/10 tile",
    ]  # first, last
    with progress_bar("vectorize") as bar:  # no log_every: silent, as before
        bar(1, 2)
    assert capsys.readouterr().err == ""


def test_demo_cut_off_before_any_step_finished_leaves_no_folder(tmp_path: Path) -> None:
    """A demo stopped in its first step (here: interrupted as the step starts) removes the
    folder it made; stopped later, the finished steps stay recorded for the rerun."""
    from geoseg.workflow import STATE_FILE, run_demo

    class Stop(Exception):
        pass

    def stop_at(step: str) -> Any:
        def on_event(ev: Any) -> None:
            if ev.status == "start" and ev.step == step:
                raise Stop(step)

        return on_event

    with pytest.raises(Stop):
        run_demo(tmp_path / "first", size=128, workers=0, on_event=stop_at("scene_date1"))
    assert not (tmp_path / "first").exists()
    with pytest.raises(Stop):
        run_demo(tmp_path / "later", size=128, workers=0, on_event=stop_at("scene_date2"))
    assert (tmp_path / "later" / STATE_FILE).is_file() and (tmp_path / "later" / "scene_date1.tif").is_file()
