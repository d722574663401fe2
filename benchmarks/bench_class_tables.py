"""What class tables and legends cost: the legend sidecars a class COG gets, and the scan of
a plain map's values that ``change`` and ``track`` make before their blocks.

On an N x N uint8 class map of 8 classes (smooth noise, some nodata):

- ``class_map_writer`` finishing the COG with its legend sidecars (the values present are
  counted from the staged raster), against the same COG without them;
- ``class_values``: every value of a plain map (no geoseg tags), block by block;
- ``find_classes``: reading the class table of a map (tags, PAM sidecar, RAT).

    .venv/bin/python benchmarks/bench_class_tables.py --size 8192
    .venv/bin/python benchmarks/bench_class_tables.py --size 2048      # quick
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np
from affine import Affine
from rasterio.crs import CRS

from geoseg.classes import ClassInfo
from geoseg.raster import (
    Grid,
    PixelWindow,
    RasterWriter,
    class_map_writer,
    class_values,
    find_classes,
    open_raster,
)

CLASSES = [ClassInfo(i, f"class {i}", (30 * i, 255 - 30 * i, 120)) for i in range(8)]


def classes_array(size: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    coarse = rng.random((size // 256 + 2, size // 256 + 2))
    rows = np.linspace(0, coarse.shape[0] - 1.001, size)
    cols = np.linspace(0, coarse.shape[1] - 1.001, size)
    field = coarse[rows.astype(int)][:, cols.astype(int)]
    a = (field * 8).astype(np.uint8)
    a[: size // 20] = 255  # a nodata edge
    return a


def timed(label: str, fn) -> float:  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    fn()
    s = time.perf_counter() - t
    print(f"  {label:<52} {s:7.2f} s")
    return s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=8192)
    size = ap.parse_args().size
    grid = Grid((size, size), Affine(10, 0, 500_000, 0, -10, 9_000_000), CRS.from_epsg(32720))
    a = classes_array(size)
    print(f"{size} x {size} uint8 class map, {len(CLASSES)} classes")
    with tempfile.TemporaryDirectory() as d:
        work = Path(d)

        def write(path: Path) -> None:
            with class_map_writer(path, grid, CLASSES) as w:
                for row in range(0, size, 1024):
                    w.write(PixelWindow(row, 0, min(1024, size - row), size), a[row : row + 1024])

        def best(label: str, fn) -> float:  # type: ignore[no-untyped-def]
            return min(timed(label, fn) for _ in range(3))

        # the same class COG (tags, colour table) without its sidecars: the counting pass and
        # the two small files are what the legend adds
        with (
            mock.patch.object(RasterWriter, "_value_counts", lambda self: {}),
            mock.patch("geoseg.raster._write.stage_legend", lambda *args: []),
        ):
            bare = best("class COG without legend sidecars", lambda: write(work / "plain.tif"))
        named = best("class COG with RAT, category names, .qml", lambda: write(work / "c.tif"))
        print(
            f"  {'legend sidecars cost (best of 3 each)':<52} {named - bare:+7.2f} s ({100 * (named - bare) / bare:+.0f} %)"
        )
        src = open_raster(work / "plain.tif")
        found: list[int] = []
        timed("class_values of the plain map (change/track's scan)", lambda: found.extend(class_values(src)))
        assert found == sorted(int(v) for v in np.unique(a) if v != 255)
        timed(
            "find_classes of the class COG (x100)", lambda: [find_classes(work / "c.tif") for _ in range(100)]
        )


if __name__ == "__main__":
    main()
