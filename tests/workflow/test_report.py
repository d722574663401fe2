"""The workflow report: the summary first, a table of contents that resolves, sub-reports that
link back, the minimum mapping unit said, and tile galleries of image | mask | map."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import rasterio
import yaml

from geoseg.workflow import load_workflow, run_workflow

# No model: two dates of synthetic truth, compared, tracked and scored against each other.
REPORTED = {
    "workflow": "reported",
    "dask": {"workers": 0},
    "steps": [
        {"name": "before", "kind": "synthetic", "size": 256, "seed": 3, "date": "2020"},
        {"name": "after", "kind": "synthetic", "size": 256, "seed": 3, "after_change": True, "date": "2024"},
        {"name": "polygons", "kind": "vectorize", "map": "before.truth", "layer": "landcover_2020",
         "min_area_ha": 0.5},
        {"name": "change", "kind": "change", "before": "before.truth", "after": "after.truth", "min_area_ha": 0.5},
        {"name": "loss", "kind": "track", "maps": ["before.truth", "after.truth"], "forest": ["forest"],
         "min_area_ha": 0.5},
        {"name": "report", "kind": "report", "max_maps": 2,
         "accuracy": [{"name": "stability", "map": "after.truth", "truth": "before.truth"}]},
    ],
}  # fmt: skip


class Page(HTMLParser):
    """What a browser would show of a page: ids, links by the nav they sit in, and each
    section's title and text."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.navs: dict[str, list[str]] = {}  # nav class -> hrefs
        self.sections: list[dict[str, str]] = []
        self.images: list[str] = []
        self._nav: str | None = None
        self._h2 = False
        self._style = False
        self.feed(path.read_text(encoding="utf-8"))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(str(a["id"]))
        if tag == "nav":
            self._nav = str(a.get("class"))
            self.navs.setdefault(self._nav, [])
        elif tag == "a" and self._nav is not None:
            self.navs[self._nav].append(str(a["href"]))
        elif tag == "section":
            self.sections.append({"id": str(a.get("id")), "title": "", "text": ""})
        elif tag == "h2":
            self._h2 = True
        elif tag == "img":
            self.images.append(str(a["src"]))
        self._style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        if tag == "nav":
            self._nav = None
        elif tag == "h2":
            self._h2 = False
        self._style = False

    def handle_data(self, data: str) -> None:
        if self._style or not self.sections:
            return
        key = "title" if self._h2 else "text"
        self.sections[-1][key] += data if self._h2 else " " + data

    def text(self, section_id: str) -> str:
        s = next(s for s in self.sections if s["id"] == section_id)
        return " ".join(s["text"].split())


@pytest.fixture(scope="module")
def reported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("reported")
    (root / "wf.yaml").write_text(yaml.safe_dump(REPORTED, sort_keys=False))
    run_workflow(load_workflow(root / "wf.yaml", root / "out"))
    return root / "out"


def _read(path: Path) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read(1)


@pytest.mark.slow  # a 256 px workflow with change, track and three reports: ~10 s here
def test_summary_first_contents_resolve_and_sub_reports_link_back(reported: Path) -> None:
    page_path = reported / "report" / "index.html"
    page = Page(page_path)
    assert page.sections[0]["id"] == "summary" and page.sections[0]["title"] == "Summary"
    titles = [s["title"] for s in page.sections]
    assert titles[1:] == ["Maps", "Change: change", "Forest loss: loss", "Accuracy against known truth",
                          "GeoPackage layers: reported.gpkg", "Products"]  # fmt: skip
    # the table of contents lists every section, in order, and each link lands on an id
    toc = page.navs["toc"]
    assert toc == [f"#{s['id']}" for s in page.sections]
    assert all(href[1:] in page.ids for href in toc)

    summary = page.text("summary")
    before, after = _read(reported / "before_truth.tif"), _read(reported / "after_truth.tif")
    valid = (before != 255) & (after != 255)
    # headline change, in hectares (10 m pixels: 0.01 ha each, to the ellipsoid's ~0.1 %)
    m = re.search(r"change: ([\d,.]+) ha of the ([\d,.]+) ha compared changed class", summary)
    assert m, summary
    changed, compared = (float(g.replace(",", "")) for g in m.groups())
    assert changed == pytest.approx(0.01 * (valid & (before != after)).sum(), rel=0.01)
    assert compared == pytest.approx(0.01 * valid.sum(), rel=0.01)
    assert "the largest: forest → " in summary
    # headline loss, and the accuracy table: after's truth scored against before's is the
    # share of pixels that kept their class
    assert re.search(r"loss: [\d,.]+ ha of forest lost between 2020 and 2024", summary)
    agree = (before == after)[valid].mean()
    assert f"stability: after_truth.tif before_truth.tif {agree:.3f}" in summary
    # the minimum mapping unit, with the steps it applies to
    assert "Minimum mapping unit 0.5 ha in the polygon layers" in summary
    assert "(polygons)" in summary and "(change, loss)" in summary
    # areas per class and map: forest of the first date
    forest = re.search(r"forest ([\d,.]+) ([\d,.]+)", summary.split("area by class")[1])
    assert forest and float(forest.group(1).replace(",", "")) == pytest.approx(
        0.01 * (before == 0).sum(), rel=0.01
    )
    # max_maps: 2 of the four quick-looks, and the page says so
    assert "2 more quick-looks not shown (max_maps: 2; max_maps: all shows every one)." in page.text("maps")
    assert sum(1 for src in page.images if not src.startswith("..")) == 2
    for src in page.images:
        assert (page_path.parent / src).resolve().is_file(), src

    # each step's own report links back to this page
    for sub in ("change_report", "loss_report"):
        back = Page(reported / sub / "index.html").navs["back"]
        assert len(back) == 1 and (reported / sub / back[0]).resolve() == page_path.resolve()
    # and the polygons honour the unit
    state = json.loads((reported / ".geoseg-run.json").read_text())
    assert state["steps"]["change"]["layers"]["change"] > 0


@pytest.mark.slow  # two Amazon tiles through the fast forest model: ~3 s here
@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")  # the PNG masks
def test_label_set_tiles_are_shown_as_image_mask_map(shared_data: Path, tmp_path: Path) -> None:
    keys = ["Amazon_24_tiff_20", "Amazon_97_tiff_3"]
    doc = {
        "workflow": "tiles", "dask": {"workers": 0},
        "steps": [{"name": "forest", "kind": "predict", "images": "amazon-s2-rgb", "split": "validation",
                   "dates": keys, "model": "forest-s2-rgb-fast"},
                  {"name": "report", "kind": "report", "max_maps": 1}],
    }  # fmt: skip
    (tmp_path / "wf.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    out = tmp_path / "out"
    run_workflow(load_workflow(tmp_path / "wf.yaml", out))
    page_path = out / "report" / "index.html"
    page = Page(page_path)
    text = page.text("tiles-forest")
    assert "2 tiles of amazon-s2-rgb (validation) mapped by forest; 1 shown as image | mask | map, 1 left out " \
           "(max_maps: 1; max_maps: all shows every one)" in text  # fmt: skip
    shown = sorted(src for src in page.images)
    assert shown == [f"forest_{keys[0]}_{p}" for p in ("image.jpg", "map.png", "mask.png")]
    # the caption's accuracy is the map's against the mask, computed here independently
    pred = _read(out / "forest" / f"{keys[0]}.tif")
    with rasterio.open(
        shared_data / "amazon-s2-rgb" / "validation" / "masks" / "Amazon_24.tiff_20.png"
    ) as ds:
        mask = ds.read(1)[:512, :512]
    acc = ((pred == 0) == (mask == 1)).mean()  # map: 0 forest; mask: 1 forest, 2 non-forest
    assert f"{keys[0]}: accuracy {acc:.3f}" in text
    # the mask panel is the mask in the map's class colours, pixel for pixel
    with rasterio.open(out / "report" / f"forest_{keys[0]}_mask.png") as ds:
        rgb = ds.read()
    assert ((rgb[0] == 30) == (mask == 1)).all()  # forest is #1e6e1e in the catalog
    summary = page.text("summary")
    assert (
        "forest: 2 tiles of amazon-s2-rgb (validation) mapped, 1 shown (max_maps) as image | mask | map"
        in summary
    )
    assert f"the maps shown score {acc:.3f} against their masks on average" in summary
