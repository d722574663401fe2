"""STAC Items and Collection for a workflow's products and the demo's, checked offline.

Every document is validated against the official JSON Schemas of STAC 1.1.0 and of each
extension it lists (the ``stac_schemas`` folder, no network) by geoseg's validator and by
pystac's own with its cache filled from that folder; broken documents must fail. They are
also checked for what the core specification requires (``check_stac``), round-tripped
through pystac, and their links and asset hrefs are followed to real files. Models get MLM
Items (``geoseg model info --stac``, and one per checkpoint a workflow uses), which the
class maps they made link to.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path

import pystac
import pystac.validation
import pytest
import rasterio
import yaml
from click.testing import CliRunner

from geoseg.cli import main
from geoseg.inference import describe
from geoseg.products import Product, check_stac, model_item, validate_stac, write_stac
from geoseg.workflow import load_workflow, run_demo, run_workflow

DOC = {
    "workflow": "stac-test",
    "description": "synthetic truths of two dates, compared",
    "dask": {"workers": 0},
    "steps": [
        {"name": "before", "kind": "synthetic", "size": 128, "seed": 5, "date": "2020-06"},
        {"name": "after", "kind": "synthetic", "size": 128, "seed": 5, "after_change": True, "date": "2024-06"},
        {"name": "polygons", "kind": "vectorize", "map": "before.truth", "layer": "landcover"},
        {"name": "change", "kind": "change", "before": "before.truth", "after": "after.truth", "report": False},
        {"name": "mapped", "kind": "predict", "images": "before", "model": "demo-synthetic", "tile_size": 128},
        {"name": "loss", "kind": "track", "maps": ["before.truth", "after.truth"], "forest": ["forest"],
         "persist": 1, "report": False},
    ],
}  # fmt: skip


@pytest.fixture(scope="module")
def stac_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("stac")
    (root / "w.yaml").write_text(yaml.safe_dump(DOC))
    run_workflow(load_workflow(root / "w.yaml", root / "out"))
    return root / "out" / "stac"


def _docs(stac_dir: Path) -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in sorted(stac_dir.glob("*.json"))}


def test_every_product_has_an_item_and_the_collection_links_them(stac_dir: Path) -> None:
    docs = _docs(stac_dir)
    assert set(docs) == {
        "collection.json", "before.json", "before-truth.json", "after.json", "after-truth.json", "change.json",
        "mapped.json", "loss.json", "model-demo-synthetic.json", "stac-test-gpkg.json",
    }  # fmt: skip
    for name, d in docs.items():
        assert check_stac(d) == [], (name, check_stac(d))
    coll = docs["collection.json"]
    items = [link["href"] for link in coll["links"] if link["rel"] == "item"]
    assert sorted(Path(h).name for h in items) == sorted(n for n in docs if n != "collection.json")
    for d in docs.values():
        for link in d["links"]:
            assert (stac_dir / link["href"]).resolve().is_file(), link
        for asset in d.get("assets", {}).values():
            assert (stac_dir / asset["href"]).resolve().is_file(), asset


def test_items_round_trip_through_pystac(stac_dir: Path) -> None:
    for name, d in _docs(stac_dir).items():
        obj = pystac.read_dict(d)
        again = obj.to_dict(include_self_link=False, transform_hrefs=False)
        assert again["id"] == d["id"]
        if name != "collection.json":
            assert isinstance(obj, pystac.Item)
            assert again["properties"] == d["properties"] and again["assets"] == d["assets"]
            assert again["geometry"] == d["geometry"] and again.get("bbox") == d.get("bbox")


def test_item_contents(stac_dir: Path) -> None:
    docs = _docs(stac_dir)
    truth = docs["before-truth.json"]
    with rasterio.open(stac_dir / truth["assets"]["data"]["href"]) as ds:
        assert truth["properties"]["proj:shape"] == [ds.height, ds.width]
        assert truth["properties"]["proj:transform"] == list(ds.transform)[:6]
        assert truth["properties"]["proj:code"] == ds.crs.to_string()
    assert truth["properties"]["datetime"].startswith("2020-06-01")
    asset = truth["assets"]["data"]
    assert asset["type"] == pystac.MediaType.COG
    assert asset["raster:bands"][0]["data_type"] == "uint8" and asset["raster:bands"][0]["nodata"] == 255
    classes = {c["value"]: c for c in asset["classification:classes"]}
    assert classes[0]["title"] == "forest" and classes[0]["color_hint"] == "006400"
    assert classes[4]["name"] == "bare_soil"  # the classification extension forbids spaces in names
    assert asset["file:checksum"].startswith("1220") and len(asset["file:checksum"]) == 68

    change = docs["change.json"]
    props = change["properties"]
    assert props["datetime"] is None and props["start_datetime"].startswith("2020-06-01")
    assert props["end_datetime"].startswith("2024-06-01")
    assert props["geoseg:step"] == "change" and props["processing:software"]["geoseg"]
    assert {i["role"] for i in props["geoseg:inputs"]} == {"before", "after"}
    derived = {link["href"] for link in change["links"] if link["rel"] == "derived_from"}
    assert derived == {"./before-truth.json", "./after-truth.json"}

    gpkg = docs["stac-test-gpkg.json"]
    assert gpkg["assets"]["data"]["type"] == "application/geopackage+sqlite3"
    assert {"landcover", "change", "transitions"} <= set(gpkg["properties"]["geoseg:layers"])
    inner, outer = gpkg["bbox"], truth["bbox"]  # polygons lie inside the map (its border is nodata)
    assert outer[0] - 1e-6 <= inner[0] < inner[2] <= outer[2] + 1e-6
    assert outer[1] - 1e-6 <= inner[1] < inner[3] <= outer[3] + 1e-6

    coll = docs["collection.json"]
    (interval,) = coll["extent"]["temporal"]["interval"]
    assert interval[0].startswith("2020-06-01") and interval[1].startswith("2024-06-01")


def test_check_stac_finds_what_is_missing() -> None:
    assert "id missing" in check_stac({"type": "Feature", "stac_version": "1.1.0", "links": []})
    bad = {
        "type": "Feature", "stac_version": "1.1.0", "id": "x", "links": [], "assets": {},
        "geometry": {"type": "Point", "coordinates": [0, 0]}, "bbox": [500000, 0, 600000, 10],
        "properties": {"datetime": None},
    }  # fmt: skip
    problems = check_stac(bad)
    assert any("not WGS 84" in p for p in problems)
    assert any("datetime is null" in p for p in problems)
    assert check_stac({"type": "Catalog"}) != []


def test_write_stac_for_a_single_product(tmp_path: Path, write_tif) -> None:  # type: ignore[no-untyped-def]
    import numpy as np

    tif = write_tif("a.tif", np.zeros((8, 8), np.uint8))
    coll, items = write_stac([Product(tif, "a", "a raster", "image", {"step": "x"}, date="2021")],
                             tmp_path / "stac", "c", "one raster")  # fmt: skip
    d = json.loads(items[0].read_text())
    assert check_stac(d) == [] and d["properties"]["geoseg:step"] == "x"
    assert d["assets"]["data"]["href"] == "../a.tif"
    assert check_stac(json.loads(coll.read_text())) == []


def _all_documents(folder: Path) -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}


def test_every_document_validates_against_the_official_schemas(stac_dir: Path, stac_schemas: Path) -> None:
    docs = _all_documents(stac_dir)
    extensions = {e.split("/")[3] for d in docs.values() for e in d.get("stac_extensions", [])}
    assert {"projection", "raster", "file", "classification", "processing", "mlm"} <= extensions
    for name, d in docs.items():
        assert validate_stac(d, stac_schemas) == [], name


def _pystac_validator(schemas: Path) -> pystac.validation.JsonSchemaSTACValidator:
    """pystac's validator, its cache filled from the folder: it downloads nothing it finds there."""
    validator = pystac.validation.JsonSchemaSTACValidator()
    for path in schemas.rglob("*"):
        if path.is_file() and path.name != "README.md":
            rel = path.relative_to(schemas).as_posix()
            scheme = "http" if rel.startswith("json-schema.org") else "https"
            validator.schema_cache[f"{scheme}://{rel}"] = json.loads(path.read_text())
    return validator


def test_pystac_validates_them_too(stac_dir: Path, stac_schemas: Path) -> None:
    from packaging.version import Version

    # pystac before 1.12 validated STAC 1.1.0 documents against the wrong rules
    assert Version(pystac.__version__) >= Version("1.12")
    validator = _pystac_validator(stac_schemas)
    for name, d in _all_documents(stac_dir).items():
        assert d["stac_version"] == "1.1.0"
        checked = pystac.validation.validate_dict(d, validator=validator)
        assert len(checked) == 1 + len(d.get("stac_extensions", [])), (
            name
        )  # the core schema and each extension


BREAKAGES: dict[str, tuple[str, Callable[[dict], None], str]] = {
    "datetime not RFC 3339": ("before-truth.json", lambda d: d["properties"].update(datetime="June 2020"),
                              "item.json: properties/datetime"),
    "bbox of two numbers": ("before-truth.json", lambda d: d.update(bbox=[1, 2]), "item.json: bbox"),
    "asset without href": ("before-truth.json", lambda d: d["assets"]["data"].pop("href"),
                           "item.json: assets/data: 'href' is a required property"),
    "EPSG code as a number": ("before-truth.json", lambda d: d["properties"].update({"proj:code": 32720}),
                              "projection/v2.0.0: properties/proj:code"),
    "unknown data type": ("before-truth.json", lambda d: d["assets"]["data"]["raster:bands"][0].update(data_type="uint7"),
                          "raster/v1.1.0: assets/data/raster:bands/0/data_type"),
    "colour not hex": ("before-truth.json",
                       lambda d: d["assets"]["data"]["classification:classes"][0].update(color_hint="green"),
                       "classification/v2.0.0: assets/data/classification:classes/0/color_hint"),
    "size negative": ("stac-test-gpkg.json", lambda d: d["assets"]["data"].update({"file:size": -1}),
                      "file/v2.1.0: assets/data/file:size"),
    "an extension not held": ("change.json",
                              lambda d: d["stac_extensions"].append("https://stac-extensions.github.io/sar/v1.0.0/schema.json"),
                              "sar/v1.0.0: the schema is not in"),
    "model task unknown": ("model-demo-synthetic.json", lambda d: d["properties"].update({"mlm:tasks": ["painting"]}),
                           "mlm/v1.5.2: properties/mlm:tasks/0"),
    "model without artifact type": ("model-demo-synthetic.json", lambda d: d["assets"]["model"].pop("mlm:artifact_type"),
                                    "mlm/v1.5.2: assets/model: 'mlm:artifact_type' is a required property"),
    "model class without value": (
        "model-demo-synthetic.json",
        lambda d: d["properties"]["mlm:output"][0]["classification:classes"][0].pop("value"),
        "mlm/v1.5.2: properties/mlm:output/0/classification:classes/0: 'value' is a required property",
    ),
    "model input bands unnamed in dims": (
        "model-demo-synthetic.json",
        lambda d: d["properties"]["mlm:input"][0]["input"].update(dim_order=["batch", "channel", "height", "width"]),
        "mlm/v1.5.2: properties/mlm:input/0/input/dim_order",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BREAKAGES))
def test_a_broken_document_fails(stac_dir: Path, stac_schemas: Path, case: str) -> None:
    name, breaking, expected = BREAKAGES[case]
    d = copy.deepcopy(_all_documents(stac_dir)[name])
    breaking(d)
    problems = validate_stac(d, stac_schemas)
    assert problems and any(expected in p for p in problems), problems
    if "not in" not in expected:  # pystac, offline, agrees
        with pytest.raises(pystac.errors.STACValidationError):
            pystac.validation.validate_dict(d, validator=_pystac_validator(stac_schemas))


def test_class_maps_link_to_their_model_item(stac_dir: Path) -> None:
    docs = _all_documents(stac_dir)
    model = docs["model-demo-synthetic.json"]
    info = describe("demo-synthetic")
    props = model["properties"]
    assert (
        props["mlm:architecture"] == info["arch"]
        and props["mlm:hyperparameters"]["encoder"] == info["encoder"]
    )
    (inputs,) = props["mlm:input"]
    assert inputs["bands"] == info["bands"] == [b["name"] for b in model["assets"]["model"]["raster:bands"]]
    assert [v["mean"] for v in inputs["value_scaling"]] == info["mean"]
    assert [v["stddev"] for v in inputs["value_scaling"]] == info["std"]
    (output,) = props["mlm:output"]
    assert [(c["value"], c["description"]) for c in output["classification:classes"]] == [
        (c["id"], c["name"]) for c in info["classes"]
    ]
    assert output["result"]["shape"][1] == len(info["classes"])
    asset = model["assets"]["model"]
    assert Path(asset["href"]).resolve() == Path(info["path"]).resolve()  # a catalog model: by absolute path
    assert (
        asset["file:checksum"] == "1220" + info["sha256"]
        and asset["file:size"] == Path(info["path"]).stat().st_size
    )
    mapped = docs["mapped.json"]
    links = {(link["rel"], link["href"]) for link in mapped["links"]}
    assert ("derived_from", "./model-demo-synthetic.json") in links and (
        "derived_from",
        "./before.json",
    ) in links
    assert mapped["properties"]["geoseg:model"]["sha256"] == info["sha256"]
    assert model["geometry"] is None and "bbox" not in model
    (interval,) = docs["collection.json"]["extent"]["temporal"][
        "interval"
    ]  # the model's date is not the data's
    assert interval[0].startswith("2020-06-01") and interval[1].startswith("2024-06-01")


def test_model_info_writes_an_mlm_item(tmp_path: Path, stac_schemas: Path) -> None:
    out = tmp_path / "forest.json"
    r = CliRunner().invoke(main, ["model", "info", "forest-s2-rgb", "--stac", str(out)])
    assert r.exit_code == 0, r.output
    assert f"{out}: STAC Item (MLM) of" in r.stdout and "mobilenet_v2" in r.stdout
    d = json.loads(out.read_text())
    assert validate_stac(d, stac_schemas) == []
    assert d["id"] == "forest-s2-rgb" and d["properties"]["mlm:name"] == "forest-s2-rgb"
    assert d["properties"]["mlm:pretrained"] is False and d["properties"]["mlm:pretrained_source"] is None
    assert (
        d["properties"]["geoseg:provenance"]["metrics"]["paper"]["f1"] > 0.9
        and "history" not in d["properties"]["geoseg:provenance"]
    )
    # a checkpoint beside the Item is linked relatively
    local = tmp_path / "m.safetensors"
    local.write_bytes(Path(describe("forest-s2-rgb")["path"]).read_bytes())
    r = CliRunner().invoke(main, ["model", "info", str(local), "--stac", str(tmp_path / "m.json"), "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["sha256"] == describe(local)["sha256"]
    assert json.loads((tmp_path / "m.json").read_text())["assets"]["model"]["href"] == "m.safetensors"
    # an output that cannot be written: one line, exit 2, nothing left
    r = CliRunner().invoke(main, ["model", "info", str(local), "--stac", str(tmp_path / "no" / "m.json")])
    assert r.exit_code == 2 and "does not exist" in r.stderr and not (tmp_path / "no").exists()


def test_the_value_domain_goes_into_the_bands_when_recorded(stac_schemas: Path) -> None:
    info = describe("forest-s2-rgb")  # the shipped model records the domain it was trained on
    dom = info["domain"]
    assert dom is not None and dom["dtype"] == "uint8"
    d = model_item(info, "forest", "forest.safetensors")
    assert validate_stac(d, stac_schemas) == []
    band = d["assets"]["model"]["raster:bands"][0]
    assert band == {
        "name": "red",
        "data_type": "uint8",
        "statistics": {"minimum": dom["low"][0], "maximum": dom["high"][0]},
    }
    assert d["properties"]["gsd"] == pytest.approx(dom["pixel_size_m"])
    info["domain"] = {**dom, "scale": 0.0001, "offset": 0.0}  # a declared scale to reflectance
    band = model_item(info, "forest", "forest.safetensors")["assets"]["model"]["raster:bands"][0]
    assert band["scale"] == 0.0001 and band["offset"] == 0.0


@pytest.mark.slow
def test_the_demo_writes_valid_stac(tmp_path: Path, stac_schemas: Path) -> None:
    run_demo(tmp_path / "demo", size=128, workers=0)
    docs = _all_documents(tmp_path / "demo" / "stac")
    assert len(docs) == 11 and "model-demo-synthetic.json" in docs  # 10 Items and the Collection
    validator = _pystac_validator(stac_schemas)
    for name, d in docs.items():
        assert validate_stac(d, stac_schemas) == [], name
        pystac.validation.validate_dict(d, validator=validator)
    for k in (1, 2):
        derived = {
            link["href"] for link in docs[f"landcover_date{k}.json"]["links"] if link["rel"] == "derived_from"
        }
        assert derived == {f"./scene_date{k}.json", "./model-demo-synthetic.json"}
