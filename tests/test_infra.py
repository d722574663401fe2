"""Infrastructure on well-kept libraries: Jinja2 pages, the filelock run lock, rio-cogeo's
COG check, smp's losses against ours, one file hash and one progress aggregator."""

from __future__ import annotations

import fnmatch
import hashlib
import os
import subprocess
import sys
import threading
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import yaml
from affine import Affine

import geoseg
from geoseg.errors import OutputError
from geoseg.files import file_sha256, folder_sha256, sha256_file
from geoseg.products import render_html
from geoseg.products._html import cell
from geoseg.products._reports import _Section
from geoseg.progress import Parts
from geoseg.raster import validate_cog
from geoseg.workflow import load_workflow, run_workflow
from geoseg.workflow._report_step import LAYER_NOTES, layer_note
from geoseg.workflow._state import HashCache, _locked

REPO = Path(__file__).resolve().parents[1]
GEOSEG = str(Path(sys.executable).parent / "geoseg")


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


# ------------------------------------------------------------------ HTML pages (Jinja2)


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


# ------------------------------------------------------------------ the run lock (filelock)


def test_second_run_on_one_folder_fails_at_once(tmp_path: Path) -> None:
    wf = tmp_path / "w.yaml"
    wf.write_text(
        yaml.safe_dump({"workflow": "w", "steps": [{"name": "a", "kind": "synthetic", "size": 64}]})
    )
    out = tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom pathlib import Path\nfrom geoseg.workflow._state import _locked\n"
         "with _locked(Path(sys.argv[1])):\n    print('held', flush=True)\n    time.sleep(120)", str(out)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        p = subprocess.run([GEOSEG, "run", str(wf), "--out-dir", str(out)], capture_output=True, text=True,
                           timeout=300)  # fmt: skip
        lines = p.stderr.strip().splitlines()
        assert p.returncode == 2 and len(lines) == 1, p.stderr
        assert "another `geoseg run` is using this output folder" in lines[0] and str(out) in lines[0]
        with pytest.raises(OutputError, match="another `geoseg run`"), _locked(out):
            pass
    finally:
        holder.kill()  # a killed run leaves no stale lock behind: the OS drops it
        holder.wait()
    assert run_workflow(load_workflow(wf, out)).ran == ["a"]
    with _locked(out), pytest.raises(OutputError), _locked(out):  # one at a time in one process too
        pass


# ------------------------------------------------------------------ COG check (rio-cogeo)


def _write(path: Path, driver: str = "GTiff", size: int = 1200, **profile: object) -> Path:
    prof = {"driver": driver, "count": 1, "height": size, "width": size, "dtype": "uint8",
            "crs": "EPSG:32720", "transform": Affine(10, 0, 500_000, 0, -10, 9_000_000), **profile}  # fmt: skip
    with rasterio.open(path, "w", **prof) as ds:
        ds.write((np.arange(size * size).reshape(1, size, size) % 7).astype("uint8"))
    return path


def test_cog_check_combines_rio_cogeo_and_geoseg(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    assert validate_cog(_write(tmp_path / "cog.tif", "COG", compress="deflate")) == (True, [], [])

    ok, errors, warnings = validate_cog(_write(tmp_path / "plain.tif"))
    assert not ok and "not written with the COG layout (IFDs and overviews before the data)" in errors
    assert "The file is greater than 512xH or 512xW, but is not tiled" in errors  # rio-cogeo's
    assert "no overviews on a raster larger than one block" in errors and "not tiled" not in errors  # once
    assert "not compressed" in warnings and not any(
        "recommended to include internal overviews" in w for w in warnings
    )

    # A small tiled GeoTIFF has its IFD before its data, which is all rio-cogeo asks of it;
    # without GDAL's COG layout declared, geoseg refuses it.
    from rio_cogeo.cogeo import cog_validate

    small = _write(
        tmp_path / "small.tif", size=256, tiled=True, blockxsize=128, blockysize=128, compress="deflate"
    )
    assert cog_validate(small, quiet=True) == (True, [], [])
    assert validate_cog(small) == (
        False,
        ["not written with the COG layout (IFDs and overviews before the data)"],
        [],
    )

    # small and in strips: rio-cogeo lets it pass, geoseg wants tiles
    strips = _write(tmp_path / "strips.tif", size=256, compress="deflate")
    assert cog_validate(strips, quiet=True)[0]
    assert "not tiled" in validate_cog(strips)[1]
    assert capfd.readouterr().err == ""  # the library prints nothing


# ------------------------------------------------------------------ file hashes


def test_one_file_hash_cached_by_inode_size_and_mtime(tmp_path: Path) -> None:
    f = tmp_path / "a.bin"
    data = os.urandom(3 << 20)  # several read chunks
    f.write_bytes(data)
    assert file_sha256(f) == sha256_file(f) == hashlib.sha256(data).hexdigest()
    tmp = tmp_path / ".a.bin.partial"
    tmp.write_bytes(b"other")
    os.replace(tmp, f)  # written aside and renamed: a new inode
    assert file_sha256(f) == hashlib.sha256(b"other").hexdigest()
    with open(f, "ab") as fh:  # grown in place: a new size
        fh.write(b"!")
    assert file_sha256(f) == hashlib.sha256(b"other!").hexdigest() == sha256_file(f)


def test_folder_hash_and_the_workflow_cache(tmp_path: Path) -> None:
    d = tmp_path / "report"
    (d / "sub").mkdir(parents=True)
    (d / "index.html").write_text("page")
    (d / "sub" / "a.png").write_bytes(b"png")
    expect = hashlib.sha256()
    for rel, content in (("index.html", b"page"), ("sub/a.png", b"png")):  # the digest state files hold
        expect.update(rel.encode() + b"\0" + hashlib.sha256(content).hexdigest().encode())
    assert folder_sha256(d) == expect.hexdigest()

    entries: dict[str, dict[str, object]] = {}
    cache = HashCache(entries)
    assert cache.sha256(d) == expect.hexdigest() and len(entries) == 2  # each file remembered
    key = str((d / "index.html").absolute())
    entries[key]["sha256"] = "remembered"  # same size and mtime: the state file's hash is trusted
    assert cache.sha256(d / "index.html") == "remembered"
    (d / "index.html").write_text("page 2")
    assert cache.sha256(d / "index.html") == hashlib.sha256(b"page 2").hexdigest()
    (d / "sub" / "a.png").rename(d / "sub" / "b.png")
    assert folder_sha256(d) != expect.hexdigest()


# ------------------------------------------------------------------ progress


def test_counted_parts_sum_tiles_across_threads() -> None:
    calls: list[tuple[int, int, str]] = []
    parts = Parts(lambda d, t, p="": calls.append((d, t, p)), [10, 20, 5])

    def run(k: int, n: int) -> None:
        cb = parts.part(k)
        for i in range(1, n + 1):
            cb(i, n, f"map {k}")

    threads = [threading.Thread(target=run, args=(k, n)) for k, n in enumerate((10, 20, 5))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 35 and all(t == 35 for _, t, _ in calls)  # the total is right from the first tile on
    assert [d for d, _, _ in calls] == list(range(1, 36)) and calls[-1][0] == 35
    Parts(None, [3]).part(0)(1, 3)  # no callback: nothing to do


def test_weighted_parts_are_phases_on_one_scale() -> None:
    calls: list[tuple[int, int, str]] = []
    parts = Parts(lambda d, t, p="": calls.append((d, t, p)), weights=[2, 1, 1])
    parts.part(0, "blocks")(5, 10)
    parts.part(0, "blocks")(10, 10)
    # phase 1 had nothing to do and never reported: phase 2 starts at 75 %
    parts.part(2, "regrowth polygons")(1, 2, "12 polygons")
    parts.part(2, "done")(1, 1)
    assert calls == [(25, 100, "blocks"), (50, 100, "blocks"), (88, 100, "12 polygons"), (100, 100, "done")]
    with pytest.raises(ValueError, match="either totals"):
        Parts(None)


# ------------------------------------------------------------------ losses: ours against smp's


@pytest.fixture(scope="module")
def smp_losses() -> Any:
    from geoseg.inference._compat import import_smp

    import_smp()  # the torchvision patch, before smp's import
    from segmentation_models_pytorch import losses

    return losses


def _batch(classes: int = 4, seed: int = 0) -> tuple[Any, Any]:
    import torch

    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, classes, 16, 16, generator=g)
    target = torch.randint(0, classes, (2, 16, 16), generator=g)
    target[0, :4] = 255  # nodata labels
    return logits, target


WEIGHTS = [1.0, 2.0, 0.5, 1.5]


def test_ce_is_torch_and_not_smps_soft_ce(smp_losses: Any) -> None:
    import torch

    from geoseg.training._losses import make_loss

    logits, target = _batch()
    valid = target != 255
    ours = make_loss(["ce"])(logits, target)
    assert torch.equal(ours, torch.nn.functional.cross_entropy(logits, target, ignore_index=255))
    w = torch.tensor(WEIGHTS)
    assert torch.equal(make_loss(["ce"], WEIGHTS)(logits, target),
                       torch.nn.functional.cross_entropy(logits, target, weight=w, ignore_index=255))  # fmt: skip
    smp = smp_losses.SoftCrossEntropyLoss(smooth_factor=0.0, ignore_index=255)(logits, target)
    # smp divides by every pixel, ignored ones too
    torch.testing.assert_close(smp, ours * valid.sum() / valid.numel())
    assert not torch.allclose(smp, ours)


@pytest.mark.parametrize(("name", "settings"), [("dice", {}), ("tversky", {"alpha": 0.3, "beta": 0.7})])
def test_dice_and_tversky_equal_smps_only_with_every_class_present(
    smp_losses: Any, name: str, settings: dict[str, float]
) -> None:
    import torch

    from geoseg.training._losses import make_loss

    cls = smp_losses.DiceLoss if name == "dice" else smp_losses.TverskyLoss
    smp = cls("multiclass", ignore_index=255, smooth=1.0, **settings)
    logits, target = _batch()
    assert set(target[target != 255].unique().tolist()) == {0, 1, 2, 3}
    ours = make_loss([name])(logits, target)
    torch.testing.assert_close(ours, smp(logits, target))  # equal to float rounding
    # class weights weigh only the CE and focal terms of ours: the same value with them
    assert torch.equal(make_loss([name], WEIGHTS)(logits, target), ours)

    absent = target.masked_fill(target == 3, 1)  # class 3 not in this batch
    ours, theirs = make_loss([name])(logits, absent), smp(logits, absent)
    assert ours - theirs > 0.1  # smp drops the absent class's term (sets it to 0); ours keeps it


def test_focal_is_softmax_focal_not_smps_one_vs_rest(smp_losses: Any) -> None:
    import torch
    from segmentation_models_pytorch.losses._functional import softmax_focal_loss_with_logits

    from geoseg.training._losses import make_loss

    logits, target = _batch()
    valid = target != 255
    ours = make_loss(["focal"])(logits, target)
    same = softmax_focal_loss_with_logits(logits, target.masked_fill(~valid, 0), gamma=2.0, reduction="none")
    assert torch.equal(ours, same[valid].mean())  # the textbook softmax focal loss, bit for bit
    one_vs_rest = smp_losses.FocalLoss("multiclass", ignore_index=255)(logits, target)
    assert not torch.allclose(ours, one_vs_rest, rtol=0.1)
    assert not torch.allclose(make_loss(["focal"], WEIGHTS)(logits, target), ours)  # ours takes class weights
