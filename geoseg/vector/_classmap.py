"""A class map as vectorize reads it: opened, its class table found, its parameters and classes checked."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from geoseg.classes import CLASS_NODATA, ClassInfo
from geoseg.errors import (
    BadRasterError,
    ConfigError,
    MissingFileError,
)
from geoseg.raster import RasterSource, open_raster, read_classes


def open_class_map(path: str | os.PathLike[str] | RasterSource) -> RasterSource:
    """Open a single-band class raster; nodata is the declared value, else 255."""
    src = path if isinstance(path, RasterSource) else open_raster(path)
    name = src.paths[0]
    if src.count != 1:
        raise BadRasterError(
            f"has {src.count} bands; a class map has one (pick one with `gdal_translate -b N`)", name
        )
    if src.nodata is None and not src.uses_mask:
        src = replace(src, nodata=float(CLASS_NODATA))
    return src


def load_class_table(path: str | os.PathLike[str]) -> list[ClassInfo]:
    """Read a class table: YAML/JSON (list of {id, name, colour}, or {id: name}) or CSV.

    CSV needs a header with ``id`` and ``name`` and optionally ``colour`` (``#rrggbb``).
    """
    p = Path(path)
    if not p.exists():
        raise MissingFileError("no such class table; check the path", p)
    try:
        text = p.read_text(encoding="utf-8")
        if p.suffix.lower() == ".csv":
            rows: Any = list(csv.DictReader(text.splitlines()))
        elif p.suffix.lower() == ".json":
            rows = json.loads(text)
        else:
            import yaml

            rows = yaml.safe_load(text)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot be read as a class table ({exc})", p) from exc
    except Exception as exc:  # yaml.YAMLError and friends
        raise ConfigError(f"cannot be read as a class table ({type(exc).__name__}: {exc})", p) from exc
    if isinstance(rows, dict) and "classes" in rows:
        rows = rows["classes"]
    if isinstance(rows, dict):
        rows = [{"id": k, **(v if isinstance(v, dict) else {"name": v})} for k, v in rows.items()]
    if not isinstance(rows, list) or not rows:
        raise ConfigError("is not a class table: expected rows of id, name[, colour]", p)
    out: list[ClassInfo] = []
    for row in rows:
        try:
            cid = int(row["id"])
            name = str(row["name"])
            colour = _parse_colour(row.get("colour", row.get("color")))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"bad class row {row!r}: needs an integer id and a name ({exc})", p) from exc
        out.append(ClassInfo(cid, name, colour) if colour else ClassInfo(cid, name))
    ids = [c.id for c in out]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"lists a class id twice ({sorted(i for i in ids if ids.count(i) > 1)[0]})", p)
    return out


def _parse_colour(value: Any) -> tuple[int, int, int] | None:
    if value in (None, ""):
        return None
    if isinstance(value, str):
        v = value.strip().lstrip("#")
        if len(v) == 6:
            return (int(v[0:2], 16), int(v[2:4], 16), int(v[4:6], 16))
        parts = v.replace(",", " ").replace(";", " ").split()
    else:
        parts = list(value)
    r, g, b = (int(x) for x in parts[:3])
    return (r, g, b)


def _check_params(
    connectivity: int, block_size: int, min_area_ha: float | None, simplify_m: float | None
) -> None:
    if connectivity not in (4, 8):
        raise ConfigError(f"connectivity must be 4 or 8, got {connectivity}")
    if block_size < 4:
        raise ConfigError(f"block size must be at least 4 pixels, got {block_size}")
    if min_area_ha is not None and not min_area_ha >= 0:
        raise ConfigError(f"minimum area must be zero or positive hectares, got {min_area_ha}")
    if simplify_m is not None and not simplify_m >= 0:
        raise ConfigError(f"simplification tolerance must be zero or positive metres, got {simplify_m}")


def _class_names(
    raster: str, classes: str | os.PathLike[str] | Sequence[ClassInfo] | None
) -> tuple[dict[int, str], bool, str | None]:
    """id -> name, whether every value must be named, and the table's path."""
    if classes is None:
        return {c.id: c.name for c in read_classes(raster)}, False, None
    if isinstance(classes, (str, os.PathLike)):
        return {c.id: c.name for c in load_class_table(classes)}, True, str(classes)
    return {c.id: c.name for c in classes}, True, None


def _check_classes(
    values: set[int], names: dict[int, str], strict: bool, table: str | None, raster: str
) -> None:
    missing = sorted(values - set(names))
    if strict and missing:
        listed = ", ".join(map(str, sorted(names)))
        raise ConfigError(
            f"does not match {raster}: the raster holds class {missing[0]}"
            f"{' (and ' + str(len(missing) - 1) + ' more)' if len(missing) > 1 else ''} but the table lists only {listed}; "
            "pass the table that goes with this raster",
            table,
        )
