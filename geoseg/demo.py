"""The end-to-end demo on a synthetic region: the README's first command.

Everything it needs ships with geoseg (no download, no server): it writes a synthetic
Sentinel-2-like region at two dates with known truth, maps land cover at both dates with
the shipped demo model (tile by tile on a local Dask cluster), vectorises the maps,
detects change and deforestation, and scores the maps against the truth.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from geoseg.errors import OutputError
from geoseg.progress import Progress

DEMO_MODEL = "demo-synthetic"
DEMO_SEED = 3  # a region the demo model never saw (it was trained on seed 7)


@dataclass
class DemoResult:
    out_dir: Path
    products: dict[str, Path] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)


def run_demo(
    out_dir: str | Path = "geoseg-demo",
    size: int = 2048,
    seed: int = DEMO_SEED,
    model: str | Path | None = None,
    workers: int | None = None,
    progress: Progress | None = None,
) -> DemoResult:
    """Two dates of a synthetic region -> class COGs -> polygons, change, report."""
    from geoseg import synthetic
    from geoseg.change import detect_change
    from geoseg.io import validate_cog
    from geoseg.model import resolve_model_path
    from geoseg.pipeline import connect, predict

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise OutputError("exists and is not a directory; choose another --out", out)
    out.mkdir(parents=True, exist_ok=True)
    res = DemoResult(out)
    t0 = time.perf_counter()
    spec = synthetic.SceneSpec(size, size, seed=seed)
    for date in (1, 2):
        synthetic.write_scene(spec, out / f"scene_date{date}.tif", truth_path=out / f"truth_date{date}.tif", date=date)
        res.products[f"scene_date{date}"] = out / f"scene_date{date}.tif"
        res.products[f"truth_date{date}"] = out / f"truth_date{date}.tif"
    res.lines.append(
        f"wrote a synthetic Sentinel-2-like region of {size} x {size} px at 10 m ({size * size / 1e6:.1f} MP, "
        f"4 bands) at two dates, with clearings and regrowth between them, in {time.perf_counter() - t0:.1f} s"
    )
    model_path = resolve_model_path(model or DEMO_MODEL)
    res.products["model"] = model_path
    client = connect(None, workers, 1)  # one local cluster for both dates
    try:
        results = [
            predict(
                [out / f"scene_date{date}.tif"], model_path, out / f"landcover_date{date}.tif",
                client=client, progress=progress,
            )  # fmt: skip
            for date in (1, 2)
        ]
    finally:
        cluster = client.cluster
        client.close()
        cluster.close()
    for date, result in zip((1, 2), results, strict=True):
        res.products[f"landcover_date{date}"] = result.out
        ok, errors, _ = validate_cog(result.out)
        if not ok:
            raise RuntimeError(f"demo wrote an invalid COG {result.out}: {errors}")
        res.lines.append(f"date {date}: {result.summary()}")
        scores = _scores(result.out, out / f"truth_date{date}.tif")
        res.metrics[f"date{date}"] = scores.as_dict()
        res.lines.append(
            f"date {date}: accuracy against the known truth {scores.accuracy:.3f}, mIoU {scores.miou:.3f}"
        )
    change = detect_change(
        out / "landcover_date1.tif", out / "landcover_date2.tif", out / "geoseg-demo.gpkg",
        raster=out / "change.tif", landcover=True, report_dir=out / "report", workers=workers,
    )  # fmt: skip
    res.products["geopackage"] = out / "geoseg-demo.gpkg"
    res.products["change"] = out / "change.tif"
    if change.report is not None:
        res.products["report"] = change.report
    layers = ", ".join(f"{k} ({v})" for k, v in change.layers.items())
    res.lines.append(f"vectorised both maps and their change into {out / 'geoseg-demo.gpkg'}: {layers}")
    truth = _truth_change(out, spec)
    forest = [c.name for c in change.classes].index("forest")
    lost = float(change.area_ha[forest].sum() - change.area_ha[forest, forest])
    res.lines.append(f"forest lost between the dates: {lost:.1f} ha mapped, {truth:.1f} ha in the truth")
    res.metrics["forest_loss_ha"] = {"mapped": round(lost, 2), "truth": round(truth, 2)}
    (out / "accuracy.json").write_text(json.dumps(res.metrics, indent=2))
    res.products["accuracy"] = out / "accuracy.json"
    res.lines.append(f"done in {time.perf_counter() - t0:.1f} s")
    return res


def _scores(pred_path: Path, truth_path: Path) -> Any:
    import rasterio

    from geoseg.metrics import Scores, confusion
    from geoseg.synthetic import CLASSES

    with rasterio.open(pred_path) as p, rasterio.open(truth_path) as t:
        matrix = confusion(t.read(1), p.read(1), len(CLASSES))
    return Scores(matrix, [c.name for c in CLASSES])


def _truth_change(out: Path, spec: Any) -> float:
    """Forest lost in the truth, in hectares (pixels are 10 m: 0.01 ha)."""
    import rasterio

    from geoseg.synthetic import FOREST

    with rasterio.open(out / "truth_date1.tif") as a, rasterio.open(out / "truth_date2.tif") as b:
        before, after = a.read(1), b.read(1)
    lost = (before == FOREST) & (after != FOREST) & (after != 255)
    return float(lost.sum()) * spec.pixel_size**2 / 10_000
