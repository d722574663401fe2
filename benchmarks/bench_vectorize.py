"""Benchmark ``geoseg vectorize`` against whole-raster polygonisation.

Variants, each run as its own process and measured from outside, polling every 20 ms: wall
time; peak memory of the whole process tree as the sum of proportional set sizes (PSS: pages
shared between forked workers count once, so the sum is not inflated); and the largest resident
set of any single process:

- ``geoseg vectorize`` with ``--workers 2`` (a LocalCluster of two one-thread processes), at
  two block sizes to show that memory follows the block size, not the raster;
- (a) ``rasterio.features.shapes`` over the whole raster into a GeoDataFrame written to a
  GeoPackage (the usual script);
- (b) GDAL's ``gdal_polygonize.py`` writing a GeoPackage (Debian package gdal-bin; skipped with
  a message when it is not installed).

Every output's polygons are then compared with geoseg's as (class, pixel count) multisets.

``--formats gpkg,parquet,fgb,pmtiles,geojson`` measures the output formats instead: the same
``geoseg vectorize`` (block 2048, ``--workers 2``) into each format, its wall time, peak
memory and file size against the GeoPackage, and for the formats that keep polygons whole
the same (class, pixel count) multiset check; PMTiles is counted in tiles and features at
its deepest zoom.

The input is a realistic fragmented 6-class map, generated once and cached: smooth-noise land
cover, rectangular parcels of three crops in the agricultural zone, single-pixel speckle, and
an irregular nodata edge like a satellite swath. At 8192 x 8192 it has ~55,000 polygons, the
size of the reference measurement in DESIGN.md.

    .venv/bin/python benchmarks/bench_vectorize.py --size 8192
    .venv/bin/python benchmarks/bench_vectorize.py --size 2048      # quick
    .venv/bin/python benchmarks/bench_vectorize.py --size 8192 --formats gpkg,parquet,fgb,pmtiles,geojson
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil
import rasterio
from affine import Affine
from scipy import ndimage

BIN = Path(sys.executable).parent
STRIP = 1024
NODATA = 255

WHOLE_RASTER_SCRIPT = """
import sys
import geopandas as gpd
import rasterio
import rasterio.features
import shapely.geometry

src, out = sys.argv[1], sys.argv[2]
with rasterio.open(src) as ds:
    values, transform, crs, nodata = ds.read(1), ds.transform, ds.crs, ds.nodata
shapes = rasterio.features.shapes(values, mask=values != nodata, transform=transform, connectivity=4)
geoms, classes = [], []
for geom, value in shapes:
    geoms.append(shapely.geometry.shape(geom))
    classes.append(int(value))
frame = gpd.GeoDataFrame({"class_id": classes}, geometry=geoms, crs=crs)
frame.to_file(out, layer="landcover", driver="GPKG", engine="pyogrio")
"""


# --------------------------------------------------------------------------------------
# Input


def make_class_map(path: Path, size: int, seed: int = 0) -> None:
    """Write a fragmented class map strip by strip (memory stays small at any size)."""
    rng = np.random.default_rng(seed)
    cell = 96  # landscape features a few hundred metres across
    lattice = ndimage.gaussian_filter(rng.normal(size=(size // cell + 3, size // cell + 3)), 1.0)
    parcel = 64
    crops = rng.choice([2, 3, 4], size=(size // parcel + 1, size // parcel + 1))
    edge = ndimage.gaussian_filter1d(rng.normal(size=size // 16 + 2), 3) * 600 + 250  # swath edge
    q = np.quantile(lattice, [0.30, 0.45, 0.70, 0.85, 0.93])
    profile = {
        "driver": "GTiff", "width": size, "height": size, "count": 1, "dtype": "uint8", "nodata": NODATA,
        "crs": "EPSG:32720", "transform": Affine(10, 0, 600_000, 0, -10, 9_650_000),
        "tiled": True, "blockxsize": 512, "blockysize": 512, "compress": "DEFLATE",
    }  # fmt: skip
    tmp = path.with_name(path.name + ".partial")
    with rasterio.open(tmp, "w", **profile) as ds:
        cols = np.arange(size)
        for r0 in range(0, size, STRIP):
            rows = np.arange(r0, min(r0 + STRIP, size))
            rr, cc = np.meshgrid(rows / cell, cols / cell, indexing="ij")
            noise = ndimage.map_coordinates(lattice, [rr, cc], order=3, mode="nearest")
            classes = (np.digitize(noise, q) + 1).astype(np.uint8)  # 1 forest .. 6 water
            classes = np.where(classes == 2, 5, classes).astype(np.uint8)
            farm = (noise > q[0]) & (noise < q[2])  # agricultural zone: parcels of three crops
            crop = crops[rows[:, None] // parcel, cols[None, :] // parcel]
            classes[farm] = crop[farm]
            strip_rng = np.random.default_rng([seed, r0])
            speckle = strip_rng.random(classes.shape) < 0.0008
            classes[speckle] = strip_rng.integers(1, 7, int(speckle.sum()))
            swath = np.interp(rows, np.arange(len(edge)) * 16, edge)
            classes[cols[None, :] < swath[:, None]] = NODATA
            ds.write(classes, 1, window=rasterio.windows.Window(0, r0, size, len(rows)))  # type: ignore[call-arg]
    tmp.replace(path)


# --------------------------------------------------------------------------------------
# Measuring


@dataclass
class Run:
    name: str
    seconds: float
    peak_tree: int  # bytes: PSS summed over the process tree, at its largest
    peak_one: int  # bytes, the largest single process
    polygons: int | None = None
    same: str = ""
    note: str = ""


def measure(name: str, argv: list[str], log: Path) -> Run:
    """Run ``argv``; poll the memory of it and every descendant."""
    start = time.perf_counter()
    with open(log, "w") as out:
        proc = psutil.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        peak_tree = peak_one = 0
        while proc.poll() is None:
            total = 0
            try:
                family = [proc, *proc.children(recursive=True)]
            except psutil.NoSuchProcess:
                break
            for p in family:
                try:
                    mem = p.memory_full_info()  # reads /proc/PID/smaps_rollup: ~0.2 ms
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
                total += mem.pss
                peak_one = max(peak_one, mem.rss)
            peak_tree = max(peak_tree, total)
            time.sleep(0.02)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed (exit {proc.returncode}):\n{log.read_text()[-3000:]}")
    return Run(name, seconds, peak_tree, peak_one)


def polygon_set(path: Path, pixel_area: float) -> list[tuple[int, int]]:
    """(class, pixel count) of every polygon of the output's first layer, sorted."""
    import geopandas as gpd
    import pyogrio
    import shapely

    if path.suffix == ".parquet":  # the pyogrio wheel's GDAL has no Parquet driver
        frame = gpd.read_parquet(path, columns=["class_id", "geometry"])
    else:
        frame = pyogrio.read_dataframe(path, columns=["class_id"])
    pixels = np.rint(shapely.area(frame.geometry.values) / pixel_area).astype(int)
    return sorted(zip(frame.class_id.astype(int).tolist(), pixels.tolist(), strict=True))


def file_bytes(out: Path) -> int:
    """The output and what goes with it (the QGIS style sidecar)."""
    return sum(p.stat().st_size for p in (out, out.with_suffix(".qml")) if p.exists())


def compare_formats(args: argparse.Namespace, raster: Path, pixel_area: float, outputs: Path) -> None:
    """``geoseg vectorize`` into each format: time, memory, size and the polygon set."""
    import pyogrio

    formats = [f.strip().lstrip(".") for f in args.formats.split(",") if f.strip()]
    if "gpkg" not in formats:
        formats.insert(0, "gpkg")  # the reference
    # Rounds alternate the formats and each keeps its best time: on a shared machine
    # other jobs' load comes and goes within minutes (the peak memory is the largest seen).
    best: dict[str, Run] = {}
    for _ in range(args.repeat):
        for fmt in formats:
            out = outputs / f"landcover.{fmt}"
            argv = [str(BIN / "geoseg"), "vectorize", str(raster), "--out", str(out),
                    "--workers", str(args.workers), "--block-size", "2048"]  # fmt: skip
            run = measure(f"geoseg vectorize -> .{fmt}", argv, outputs / f"{fmt}.log")
            if fmt in best:
                run.peak_tree = max(run.peak_tree, best[fmt].peak_tree)
                run.seconds = min(run.seconds, best[fmt].seconds)
            best[fmt] = run
    runs = [(fmt, best[fmt], outputs / f"landcover.{fmt}") for fmt in formats]
    reference = None if args.no_compare else polygon_set(outputs / "landcover.gpkg", pixel_area)
    gpkg_seconds = runs[0][1].seconds
    gpkg_bytes = file_bytes(runs[0][2])
    print(f"\n{args.size} x {args.size} class map ({raster}), {psutil.cpu_count()} CPUs, "
          f"{args.workers} workers, block 2048, best of {args.repeat}")  # fmt: skip
    header = (
        f"{'format':<9} {'time s':>7} {'x gpkg':>7} {'size MB':>8} {'x gpkg':>7} {'peak PSS tree':>14} "
        f"{'features':>9}  same polygons"
    )
    print(header)
    print("-" * len(header))
    for fmt, run, out in runs:
        size = file_bytes(out)
        if fmt == "pmtiles":
            info = pyogrio.read_info(out)
            meta = info["dataset_metadata"] or {}
            features = int(info["features"])
            same = f"tiles: z{meta.get('minzoom')}-{meta.get('maxzoom')}, features at z{meta.get('maxzoom')}"
        else:
            found = polygon_set(out, pixel_area) if reference is not None else None
            features = len(found) if found is not None else -1
            same = (
                ""
                if found is None
                else ("yes" if found == reference else f"NO ({len(found)} vs {len(reference or [])})")
            )
            if fmt == "gpkg" and found is not None:
                same = "reference"
        print(
            f".{fmt:<8} {run.seconds:>7.2f} {run.seconds / gpkg_seconds:>7.2f} {size / 1e6:>8.1f} "
            f"{size / gpkg_bytes:>7.2f} {run.peak_tree / 2**20:>11.0f} MiB {features:>9,}  {same}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=8192, help="raster width and height [8192]")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--block-sizes", default="2048,1024", help="geoseg block sizes to run [2048,1024]")
    parser.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "geoseg-bench-vectorize"
    )
    parser.add_argument("--no-compare", action="store_true", help="skip the polygon-set comparison")
    parser.add_argument(
        "--formats", default="", help="compare output formats instead, e.g. gpkg,parquet,fgb,pmtiles,geojson"
    )
    parser.add_argument("--repeat", type=int, default=3, help="--formats: rounds, best time kept [3]")
    args = parser.parse_args()

    args.workdir.mkdir(parents=True, exist_ok=True)
    raster = args.workdir / f"classes_{args.size}.tif"
    if not raster.exists():
        t = time.perf_counter()
        make_class_map(raster, args.size)
        print(f"generated {raster} in {time.perf_counter() - t:.1f} s")
    with rasterio.open(raster) as ds:
        pixel_area = abs(ds.transform.a * ds.transform.e)
    outputs = args.workdir / "out"
    shutil.rmtree(outputs, ignore_errors=True)
    outputs.mkdir()
    if args.formats:
        compare_formats(args, raster, pixel_area, outputs)
        return

    runs: list[tuple[Run, Path]] = []
    for block in [int(b) for b in args.block_sizes.split(",") if b]:
        out = outputs / f"geoseg_{block}.gpkg"
        argv = [str(BIN / "geoseg"), "vectorize", str(raster), "--out", str(out),
                "--workers", str(args.workers), "--block-size", str(block)]  # fmt: skip
        run = measure(
            f"geoseg vectorize, {args.workers} workers, block {block}", argv, outputs / f"geoseg_{block}.log"
        )
        run.note = (outputs / f"geoseg_{block}.log").read_text().strip().splitlines()[-1]
        runs.append((run, out))
    out = outputs / "shapes.gpkg"
    runs.append((measure("(a) rasterio shapes, whole raster -> GeoDataFrame -> GPKG",
                         [sys.executable, "-c", WHOLE_RASTER_SCRIPT, str(raster), str(out)],
                         outputs / "shapes.log"), out))  # fmt: skip
    polygonize = shutil.which("gdal_polygonize.py")
    if polygonize:
        out = outputs / "gdal.gpkg"
        runs.append((measure("(b) gdal_polygonize.py -> GPKG",
                             [polygonize, "-q", str(raster), "-f", "GPKG", str(out), "landcover", "class_id"],
                             outputs / "gdal.log"), out))  # fmt: skip
    else:
        print("gdal_polygonize.py not found: skipping (b); install it with `apt-get install -y gdal-bin`")

    import pyogrio

    reference = None
    for run, out in runs:
        run.polygons = int(pyogrio.read_info(out)["features"])
        if args.no_compare:
            continue
        found = polygon_set(out, pixel_area)
        if reference is None:
            reference, run.same = found, "reference"
        else:
            run.same = "yes" if found == reference else f"NO ({len(found)} vs {len(reference)})"

    print(f"\n{args.size} x {args.size} class map ({raster}), {psutil.cpu_count()} CPUs")
    header = (
        f"{'variant':<56} {'time s':>7} {'peak PSS tree':>14} {'largest RSS':>13} {'polygons':>9}  same set"
    )
    print(header)
    print("-" * len(header))
    for run, _ in runs:
        print(
            f"{run.name:<56} {run.seconds:>7.2f} {run.peak_tree / 2**20:>11.0f} MiB {run.peak_one / 2**20:>9.0f} MiB "
            f"{run.polygons:>9,}  {run.same}"
        )
    for run, _ in runs:
        if run.note:
            print(f"  {run.name}: {run.note}")


if __name__ == "__main__":
    main()
