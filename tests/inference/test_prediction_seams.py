"""The seam invariant of DESIGN.md, with the shipped (trained) demo model.

A trained model never agrees 100 % with one whole-image pass (context changes answers
everywhere), so the test is: along tile lines the stitched map changes class no more
often than the whole-image map does along the same lines (at most 1.5x), agreement with
the whole-image pass is at least 98 %, and accuracy against the truth is not lower.
"""

from __future__ import annotations

import numpy as np
import pytest
import rasterio

from geoseg.data import SceneSpec, write_scene
from geoseg.inference import Predictor, load_checkpoint, normalise, predict, resolve_model_path
from geoseg.raster import open_raster

SIZE, TILE, OVERLAP = 1024, 256, 64


def _line_changes(classes: np.ndarray, lines: list[int]) -> int:
    """Class changes across each tile line (between pixel line-1 and line), rows and columns."""
    n = 0
    for k in lines:
        a, b = classes[k - 1, :], classes[k, :]
        n += int(((a != b) & (a != 255) & (b != 255)).sum())
        a, b = classes[:, k - 1], classes[:, k]
        n += int(((a != b) & (a != 255) & (b != 255)).sum())
    return n


@pytest.fixture(scope="module")
def maps(tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    tmp = tmp_path_factory.mktemp("seams")
    spec = SceneSpec(SIZE, SIZE, seed=11)
    scene = write_scene(spec, tmp / "scene.tif", truth_path=tmp / "truth.tif")
    model = resolve_model_path("demo-synthetic")
    predict([scene], model, tmp / "tiled.tif", tile_size=TILE, overlap=OVERLAP, workers=1, backend="torch")
    loaded = load_checkpoint(model)
    pixels, valid = open_raster(scene).read()
    predictor = Predictor(loaded, device="cpu", backend="torch", threads=2)
    whole = predictor.classes(predictor.probabilities(normalise(pixels, valid, loaded.spec)[None]))[0]
    whole[~valid] = 255
    with rasterio.open(tmp / "tiled.tif") as t, rasterio.open(tmp / "truth.tif") as tr:
        return {"tiled": t.read(1), "whole": whole, "truth": tr.read(1)}


@pytest.mark.slow
def test_no_seam_along_tile_lines(maps: dict[str, np.ndarray]) -> None:
    lines = list(range(TILE, SIZE, TILE))
    tiled = _line_changes(maps["tiled"], lines)
    whole = _line_changes(maps["whole"], lines)
    print(
        f"class changes across tile lines: tiled {tiled}, whole image {whole}, ratio {tiled / max(whole, 1):.3f}"
    )
    assert whole > 0  # the model's map has real class boundaries crossing the lines
    assert tiled <= 1.5 * whole, (tiled, whole)


def test_agreement_with_one_whole_image_pass(maps: dict[str, np.ndarray]) -> None:
    valid = maps["whole"] != 255
    agreement = (maps["tiled"][valid] == maps["whole"][valid]).mean()
    print(f"agreement with the whole-image pass: {agreement:.4f}")
    assert agreement >= 0.98
    assert len(np.unique(maps["whole"][valid])) >= 5  # predictions vary over the scene


def test_accuracy_not_lower_than_whole_image(maps: dict[str, np.ndarray]) -> None:
    truth = maps["truth"]
    valid = truth != 255
    acc_tiled = (maps["tiled"][valid] == truth[valid]).mean()
    acc_whole = (maps["whole"][valid] == truth[valid]).mean()
    print(f"accuracy against truth: tiled {acc_tiled:.4f}, whole image {acc_whole:.4f}")
    assert acc_tiled >= acc_whole - 0.002, (acc_tiled, acc_whole)
