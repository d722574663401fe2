"""STAC Items and Collection for a workflow's products, checked offline.

pystac's ``validate()`` needs ``jsonschema`` and downloads the JSON schemas, and neither is
available here (no network). So the documents are checked for what the core
specification requires (``geoseg.stac.check_stac``), round-tripped through pystac, and
their links and asset hrefs are followed to real files. Where jsonschema and network are
both present, the last test validates against the schemas too.
"""

from __future__ import annotations

import json
from pathlib import Path

import pystac
import pytest
import rasterio
import yaml

from geoseg.products import Product, check_stac, write_stac
from geoseg.workflow import load_workflow, run_workflow

DOC = {
    "workflow": "stac-test",
    "description": "synthetic truths of two dates, compared",
    "dask": {"workers": 0},
    "steps": [
        {"name": "before", "kind": "synthetic", "size": 128, "seed": 5, "date": "2020-06"},
        {"name": "after", "kind": "synthetic", "size": 128, "seed": 5, "after_change": True, "date": "2024-06"},
        {"name": "polygons", "kind": "vectorize", "map": "before.truth", "layer": "landcover"},
        {"name": "change", "kind": "change", "before": "before.truth", "after": "after.truth", "report": False},
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
        "stac-test-gpkg.json",
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
            assert again["geometry"] == d["geometry"] and again["bbox"] == d["bbox"]


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


def test_schema_validation_where_possible(stac_dir: Path) -> None:
    pytest.importorskip("jsonschema", reason="pystac's validate() needs jsonschema (not installed here)")
    import urllib.request

    try:
        urllib.request.urlopen("https://schemas.stacspec.org", timeout=3)
    except OSError:
        pytest.skip("pystac's validate() downloads the JSON schemas: no network here")
    for d in _docs(stac_dir).values():
        pystac.read_dict(d).validate()
