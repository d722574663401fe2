"""The HTML pages, from Jinja2 templates: escaping, formats, every part kind, layer notes, package data."""

from __future__ import annotations

import fnmatch
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

import geoseg
from geoseg.products import render_html
from geoseg.products._html import cell
from geoseg.products._reports import _Section
from geoseg.workflow._report_step import LAYER_NOTES, layer_note

REPO = Path(__file__).resolve().parents[2]


class _Text(HTMLParser):
    """The text a browser shows (styles left out), whitespace collapsed; block elements and
    table cells are separated by a space, inline ones (links, bold) are not."""

    INLINE = frozenset({"a", "b", "i", "code", "span"})

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._style = tag == "style"
        if tag not in self.INLINE:
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        self._style = False
        if tag not in self.INLINE:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self._style:
            self.parts.append(data)

    @classmethod
    def of(cls, page: str) -> str:
        p = cls()
        p.feed(page)
        return " ".join("".join(p.parts).split())


def test_product_page_escapes_values_and_right_aligns_numbers() -> None:
    section = _Section(
        "Tables <1>",
        [("a b.png", 'the "map" <img>')],
        [("areas & counts", {"class": ["<script>x</script>", "forest"], "ha": [1234.5, float("nan")],
                             "n": [np.int64(3), None], "flag": [True, "a&b"]})],
        "Some <b>text</b>.",
    )  # fmt: skip
    page = render_html(
        "product_report.html.j2", title="Change <a> & b", meta=["m & 1", ""], sections=[section]
    )
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert (
        "<script>" not in page and "<b>text" not in page and "<img>" not in page
    )  # values never become markup
    assert "<title>Change &lt;a&gt; &amp; b</title>" in page
    assert page.count('<p class="meta">') == 1  # empty meta lines are left out
    assert '<td class="num">1,234.50</td>' in page and '<td class="num">–</td>' in page
    assert '<td class="num">3</td>' in page and "<td></td>" in page
    assert "<td>True</td>" in page and "<td>a&amp;b</td>" in page  # a bool is not a number
    assert '<img src="a b.png" alt="the &#34;map&#34; &lt;img&gt;">' in page
    assert "td.num { text-align: right" in page  # the shared style sheet is inlined: one file per page
    text = _Text.of(page)
    assert 'Tables <1> Some <b>text</b>. the "map" <img> areas & counts class ha n flag' in text


def test_cell_formats() -> None:
    assert cell(0.125) == ("0.12", True) and cell(np.float64(1e6)) == ("1,000,000.00", True)
    assert cell(float("nan")) == ("–", True) and cell(7) == ("7", True) and cell(np.uint8(7)) == ("7", True)
    assert cell(False) == ("False", False) and cell(None) == ("", False) and cell("x") == ("x", False)


def test_workflow_page_lays_out_every_part_kind() -> None:
    per = {"class": ["forest"], "IoU": ["0.900"], "pixels (truth)": [12]}
    sections = [
        {"title": "Maps", "parts": [{"kind": "figures", "figures": [("m.png", "the map")]},
                                    {"kind": "table", "caption": "areas", "columns": {"ha": [1.5]}}]},
        {"title": "Change: c", "parts": [{"kind": "step_report", "href": "../c/index.html", "name": "c"}]},
        {"title": "Accuracy", "parts": [
            {"kind": "scores", "caption": "lc: a.tif against b.tif", "accuracy": 0.91234, "miou": 0.5,
             "kappa": 0.25, "per_class": per},
            {"kind": "loss", "name": "fl", "forest": ["forest", "wet"], "mapped_ha": 1234.5, "truth_ha": 1.0,
             "precision": 0.5, "recall": None, "f1": 0.25, "iou": 0.125},
            {"kind": "evaluation", "model": "m.safetensors", "dataset": "amazon", "split": "test",
             "accuracy": 0.9, "miou": 0.8, "kappa": 0.7, "per_class": None,
             "paper": {"tiles": 15, "accuracy": 0.95, "precision": 0.94, "recall": 0.93, "f1": 0.92}},
        ]},
        {"title": "Layers", "parts": [{"kind": "layers", "href": "../x.gpkg", "name": "x.gpkg",
                                       "rows": {"layer": ["change"], "what": [layer_note("change")]}}]},
        {"title": "Products", "parts": [{"kind": "products", "links": [
            {"label": "a.map", "href": "../a.tif", "text": "a.tif", "size": 2_500_000},
            {"label": "stac", "href": "../stac/collection.json", "text": "stac/collection.json", "size": None}]}]},
    ]  # fmt: skip
    page = render_html("workflow_report.html.j2", title="geoseg: w", meta=["d"], sections=sections)
    text = _Text.of(page)
    for expect in (
        "Maps the map areas ha 1.50",
        "The step's own report: c.",
        "lc: a.tif against b.tif: overall accuracy 0.9123, mIoU 0.5000, kappa 0.2500. per class (classes matched by name)",
        "fl (forest = forest, wet): 1,234.50 ha of loss mapped, 1.00 ha in the truth; loss pixels: precision 0.5000, "
        "recall –, F1 0.2500, IoU 0.1250.",
        "m.safetensors on amazon (test): pooled accuracy 0.9000, mIoU 0.8000, kappa 0.7000. The paper's metric "
        "(John & Zhang 2022: per-tile accuracy and weighted precision/recall, averaged over 15 tiles): accuracy "
        "0.9500, precision 0.9400, recall 0.9300, F1 0.9200.",
        "x.gpkg opens in QGIS",
        "a.map a.tif 2.50 MB stac stac/collection.json",
    ):
        assert expect in text, (expect, text)
    assert '<a href="../c/index.html">c</a>' in page and '<td class="num"></td>' in page
    assert "per class, pooled over the split" not in text  # no per-class scores, no table


def test_each_layer_has_its_own_note() -> None:
    # ``class_change`` ends with ``change``: it was described as the change polygons
    assert layer_note("class_change") == LAYER_NOTES["class_change"] != LAYER_NOTES["change"]
    for name, note in LAYER_NOTES.items():
        assert layer_note(name) == note and layer_note(f"pucallpa_{name}") == note
    assert layer_note("landcover_2020").startswith("polygons: class_id")


def test_templates_are_package_data() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    globs = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"][
        "geoseg"
    ]
    package = Path(geoseg.__file__).parent
    templates = sorted((package / "products" / "templates").iterdir())
    assert any(t.name == "workflow_report.html.j2" for t in templates)
    for t in templates:
        rel = t.relative_to(package).as_posix()
        assert any(fnmatch.fnmatch(rel, g) for g in globs), f"{rel} would be missing from the wheel"


def test_workflow_page_has_contents_that_resolve_and_new_part_kinds() -> None:
    from geoseg.workflow._report_step import _with_ids

    sections = _with_ids([
        ("Summary", [{"kind": "headlines", "lines": ["change: 1.0 ha <b>changed</b>"]}]),
        ("Tiles: forest", [
            {"kind": "text", "text": "2 tiles"},
            {"kind": "legend", "entries": [("forest", "#1e6e1e"), ("non-forest", "#e6c878")]},
            {"kind": "tiles", "header": ["image", "mask", "map"], "rows": [
                {"panels": [("a_image.jpg", "a: imagery"), (None, "a: mask"), ("a_map.png", "a: map")],
                 "caption": "a: accuracy 0.900"}]},
        ]),
        ("Tiles: forest", []),  # the same title twice: two ids
    ])  # fmt: skip
    assert [s["id"] for s in sections] == ["summary", "tiles-forest", "tiles-forest-2"]
    toc = [(s["id"], s["title"]) for s in sections]
    page = render_html("workflow_report.html.j2", title="t", meta=[], sections=sections, toc=toc)
    ids = set(re.findall(r'id="([^"]+)"', page))
    links = re.findall(r'<nav class="toc">.*?</nav>', page, re.S)[0]
    assert re.findall(r'href="#([^"]+)"', links) == ["summary", "tiles-forest", "tiles-forest-2"]
    assert all(i in ids for i in re.findall(r'href="#([^"]+)"', links))
    assert page.index('id="summary"') < page.index('id="tiles-forest"')
    text = _Text.of(page)
    assert "Contents Summary Tiles: forest Tiles: forest Summary change: 1.0 ha <b>changed</b>" in text
    assert "2 tiles forest non-forest image mask map" in text and "a: mask: none a: accuracy 0.900" in text
    assert 'style="background: #1e6e1e"' in page and '<img src="a_map.png" alt="a: map">' in page
    assert "--panels: 3" in page


def test_product_page_links_back() -> None:
    page = render_html("product_report.html.j2", title="c", meta=[], sections=[],
                       back=("../report/index.html", "w <x> (the workflow's report)"))  # fmt: skip
    assert (
        '<nav class="back"><a href="../report/index.html">← w &lt;x&gt; (the workflow&#39;s report)</a></nav>'
        in page
    )
    assert page.index('class="back"') < page.index("<h1>")
    assert '<nav class="back">' not in render_html("product_report.html.j2", title="c", meta=[], sections=[])
