"""Digest of every product geoseg makes on its shipped inputs, to prove a refactor changed none.

Runs, into ``OUT`` (a fresh folder): the synthetic demo (``geoseg demo``), the Pucallpa
workflow, ``demo --real`` (the Amazon validation tiles, when ``$GEOSEG_DATA`` has them) and
``geoseg predict`` with every shipped model on a real input, then ``vectorize``, ``change``
and ``track`` as single commands on those maps. It prints one JSON object: for each
product, a digest of its content:

- rasters: sha256 of the file's bytes, and separately of its pixels, tags and georeferencing
  (so a changed byte is told apart from a changed map);
- GeoPackages: per layer or table, the rows in order (geometry WKB and attributes), and the
  layer styles and metadata without the timestamps GDAL and geoseg write into them;
- JSON and HTML: the text with timestamps, durations and absolute paths masked.

Usage (from the repository root)::

    .venv/bin/python benchmarks/product_digest.py OUT > digest.json
    .venv/bin/python benchmarks/product_digest.py --compare before.json after.json

``--compare`` lists the products whose digests differ (exit status 1 when any does).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import rasterio

ROOT = Path(__file__).resolve().parent.parent
GEOSEG = [str(Path(sys.executable).parent / "geoseg")]

# Text that legitimately differs between two runs of the same code.
_VOLATILE = [
    (re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?"), "<time>"),
    (re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}(:\d{2})?"), "<time>"),
    (re.compile(r"\d+(\.\d+)? ?s\b"), "<secs>"),
    (re.compile(r"[\d.]+ MP/s"), "<rate>"),
    (re.compile(r'"seconds": [\d.e+-]+'), '"seconds": <secs>'),
    # a GeoPackage's bytes hold write times: STAC items' checksums of files are checked
    # through the files' own digests instead
    (re.compile(r'"file:checksum": "[0-9a-f]+"'), '"file:checksum": <sha>'),
    (re.compile(r'"file:size": \d+'), '"file:size": <size>'),
]


def _mask(text: str, out: Path) -> str:
    text = text.replace(str(out), "<out>").replace(str(ROOT), "<root>")
    for pattern, repl in _VOLATILE:
        text = pattern.sub(repl, text)
    return text


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def raster_digest(path: Path, out: Path) -> dict[str, Any]:
    with rasterio.open(path) as ds:
        h = hashlib.sha256()
        for b in range(1, ds.count + 1):
            h.update(ds.read(b).tobytes())
        tags = {k: _mask(v, out) for k, v in ds.tags().items()}
        cmap = None
        if ds.count == 1:
            try:
                cmap = sorted(ds.colormap(1).items())
            except ValueError:
                cmap = None
        return {
            "bytes": _sha(path.read_bytes()),
            "pixels": h.hexdigest(),
            "tags": _sha(json.dumps(tags, sort_keys=True).encode()),
            "grid": [ds.width, ds.height, ds.count, str(ds.dtypes[0]), list(ds.transform)[:6], str(ds.crs)],
            "nodata": ds.nodata,
            "colormap": _sha(json.dumps(cmap).encode()) if cmap else None,
            "descriptions": list(ds.descriptions),
        }


def gpkg_digest(path: Path, out: Path) -> dict[str, Any]:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in con.execute("SELECT table_name FROM gpkg_contents ORDER BY table_name")]
        result: dict[str, Any] = {}
        for t in tables:
            if t == "layer_styles":  # its update_time differs run to run: digested below
                continue
            cols = [r[1] for r in con.execute(f'PRAGMA table_info("{t}")')]
            rows = con.execute(f'SELECT * FROM "{t}" ORDER BY rowid').fetchall()
            h = hashlib.sha256(json.dumps(cols).encode())
            for row in rows:
                h.update(repr(row).encode())
            result[t] = {"rows": len(rows), "content": h.hexdigest()}
        have = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "layer_styles" in have:
            rows = con.execute(
                "SELECT f_table_name, styleName, styleQML, styleSLD, useAsDefault, description "
                "FROM layer_styles ORDER BY f_table_name, styleName"
            ).fetchall()
            result["<layer_styles>"] = _sha(repr(rows).encode())
        if "gpkg_metadata" in have:
            rows = con.execute("SELECT metadata FROM gpkg_metadata ORDER BY id").fetchall()
            result["<metadata>"] = _sha(_mask(repr(rows), out).encode())
        return result
    finally:
        con.close()


def text_digest(path: Path, out: Path) -> str:
    return _sha(_mask(path.read_text(errors="replace"), out).encode())


def digest_tree(folder: Path, out: Path) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for p in sorted(folder.rglob("*")):
        # the run state records mtimes and hashes of files digested on their own
        if not p.is_file() or ".geoseg-run" in p.parts or p.name == ".geoseg-run.json":
            continue
        rel = str(p.relative_to(out))
        suffix = p.suffix.lower()
        if suffix in (".tif", ".tiff"):
            found[rel] = raster_digest(p, out)
        elif suffix == ".gpkg":
            found[rel] = gpkg_digest(p, out)
        elif suffix in (".json", ".html", ".yaml", ".txt", ".csv", ".qml", ".xml"):  # .xml: legend sidecars
            found[rel] = text_digest(p, out)
        elif suffix == ".png":
            found[rel] = _sha(p.read_bytes())
    return found


def _run(*args: str, cwd: Path = ROOT) -> None:
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    proc = subprocess.run([*GEOSEG, *args], cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"geoseg {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")


def make_products(out: Path) -> None:
    data = Path(os.environ.get("GEOSEG_DATA", ROOT.parent / "shared" / "data"))
    _run("demo", "--out", str(out / "demo"), "--workers", "2")
    _run("run", "workflows/track_deforestation.yaml", "--out-dir", str(out / "pucallpa"))
    amazon = data / "amazon-s2-rgb" / "validation" / "images"
    cli = out / "cli"
    cli.mkdir(parents=True)
    if amazon.is_dir():
        _run("demo", "--real", "--out", str(out / "demo-real"), "--workers", "2")
        tiles = sorted(amazon.glob("*.tif*"))[:2]
        for model in ("forest-s2-rgb", "forest-s2-rgb-fast"):
            for i, tile in enumerate(tiles):
                _run(
                    "predict",
                    str(tile),
                    "--model",
                    model,
                    "--out",
                    str(cli / f"{model}-{i}.tif"),
                    "--workers",
                    "0",
                )
    if (data / "nc-landsat7").is_dir():
        _run("predict", "nc-landsat7", "--model", "landcover-nc-landsat7", "--out", str(cli / "nc.tif"))
        _run("vectorize", str(cli / "nc.tif"), "--out", str(cli / "nc.gpkg"), "--min-area", "0.5")
    d1, d2 = out / "demo" / "landcover_date1.tif", out / "demo" / "landcover_date2.tif"
    _run("change", str(d1), str(d2), "--out", str(cli / "change.gpkg"), "--raster", str(cli / "change.tif"))
    _run("vectorize", str(d1), "--out", str(cli / "landcover.gpkg"))
    _run(
        "track", str(d1), str(d2), "--dates", "2020-07-01,2024-07-01", "--forest", "forest",
        "--out", str(cli / "track.gpkg"), "--loss-year", str(cli / "loss_year.tif"),
    )  # fmt: skip


def compare(a: Path, b: Path) -> int:
    before, after = json.loads(a.read_text()), json.loads(b.read_text())
    differ = 0
    for key in sorted(set(before) | set(after)):
        if before.get(key) != after.get(key):
            differ += 1
            if key not in before or key not in after:
                print(f"{key}: only in {'after' if key not in before else 'before'}")
                continue
            va, vb = before[key], after[key]
            if isinstance(va, dict) and isinstance(vb, dict):
                parts = sorted(k for k in set(va) | set(vb) if va.get(k) != vb.get(k))
                print(f"{key}: differs in {', '.join(parts)}")
            else:
                print(f"{key}: differs")
    print(f"{len(set(before) | set(after))} products, {differ} differ")
    return 1 if differ else 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path, nargs="?")
    ap.add_argument("--compare", nargs=2, type=Path, metavar=("BEFORE", "AFTER"))
    args = ap.parse_args()
    if args.compare:
        sys.exit(compare(*args.compare))
    if args.out is None:
        ap.error("give OUT or --compare BEFORE AFTER")
    out = args.out.resolve()
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    make_products(out)
    print(json.dumps(digest_tree(out, out), indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
