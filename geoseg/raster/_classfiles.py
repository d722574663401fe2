"""Legends a user gives for a class map in a file (``1=forest`` pairs on the command line are
:data:`geoseg.options.ClassPairs`).

A legend file is a class table in one of the forms GIS users already have:

- CSV with a header naming ``id`` and ``name`` (and optionally ``colour``/``color`` as
  ``#rrggbb`` or ``r,g,b``); JSON or YAML: a list of ``{id, name, colour}``, a mapping
  ``{id: name}`` or ``{id: {name, colour}}``, or either under a ``classes`` key;
- a QGIS style (``.qml``) of a raster: the paletted/unique-values renderer's entries, or
  a pseudocolour renderer with *exact* interpolation (what QGIS writes for a
  reclassified raster). Interpolated ramps describe continuous values, not classes, and
  are refused;
- a colour map (``.clr``, ``.txt``): ESRI/GDAL ``value R G B [label]`` lines, or QGIS's
  "Export colour map" text (``value,R,G,B,A,label`` after an ``INTERPOLATION:`` line).

Entries keep whether a colour was given (:class:`LegendEntry`), so a legend that only
names classes leaves the map's own colours alone.
"""

from __future__ import annotations

import csv
import json
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from geoseg.errors import ConfigError, MissingFileError

RGB = tuple[int, int, int]
PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class LegendEntry:
    """One class of a legend: its value, its name and, when the legend gives one, its colour."""

    id: int
    name: str
    colour: RGB | None = None


def load_legend(path: PathLike) -> list[LegendEntry]:
    """The legend in a file: CSV, JSON, YAML, a QGIS ``.qml`` style or a ``.clr``/``.txt`` colour map."""
    p = Path(path)
    if not p.is_file():
        raise MissingFileError(
            "no such legend file; check the path (a legend is CSV, JSON, YAML, a QGIS .qml style "
            "or a .clr colour map)",
            p,
        )
    suffix = p.suffix.lower()
    try:
        text = p.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot be read as a legend ({exc})", p) from exc
    if suffix == ".qml":
        entries = read_qml(text, p)
    elif suffix in (".clr", ".txt"):
        entries = read_colour_map(text, p)
    else:
        entries = _read_table(text, suffix, p)
    if not entries:
        raise ConfigError("names no class: expected rows of id, name[, colour]", p)
    seen: set[int] = set()
    for e in entries:
        if e.id in seen:
            raise ConfigError(f"lists a class id twice ({e.id})", p)
        seen.add(e.id)
    return entries


def _read_table(text: str, suffix: str, p: Path) -> list[LegendEntry]:
    try:
        if suffix == ".csv":
            rows: Any = list(csv.DictReader(text.splitlines()))
        elif suffix == ".json":
            rows = json.loads(text)
        else:
            import yaml

            rows = yaml.safe_load(text)
    except ValueError as exc:
        raise ConfigError(f"cannot be read as a class table ({exc})", p) from exc
    except Exception as exc:  # yaml.YAMLError and friends
        raise ConfigError(f"cannot be read as a class table ({type(exc).__name__}: {exc})", p) from exc
    if isinstance(rows, dict) and "classes" in rows:
        rows = rows["classes"]
    if isinstance(rows, dict):
        rows = [{"id": k, **(v if isinstance(v, dict) else {"name": v})} for k, v in rows.items()]
    if not isinstance(rows, list) or not rows:
        raise ConfigError("is not a class table: expected rows of id, name[, colour]", p)
    out: list[LegendEntry] = []
    for row in rows:
        try:
            # CSV headers as spreadsheets write them: "ID", " Name "
            row = {str(k).strip().lower(): v for k, v in row.items()}
            out.append(
                LegendEntry(
                    int(row["id"]), str(row["name"]), parse_colour(row.get("colour", row.get("color")))
                )
            )
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"bad class row {row!r}: needs an integer id and a name ({exc})", p) from exc
    return out


def parse_colour(value: Any) -> RGB | None:
    """``#rrggbb``, ``"r,g,b"``, ``"r g b"`` or ``[r, g, b]`` -> ``(r, g, b)``; None when empty."""
    if value in (None, ""):
        return None
    if isinstance(value, str):
        v = value.strip().lstrip("#")
        if len(v) in (6, 8) and re.fullmatch(r"[0-9a-fA-F]+", v):
            return (int(v[0:2], 16), int(v[2:4], 16), int(v[4:6], 16))
        parts: Sequence[Any] = v.replace(",", " ").replace(";", " ").split()
    else:
        parts = list(value)
    r, g, b = (int(x) for x in parts[:3])
    if not all(0 <= c <= 255 for c in (r, g, b)):
        raise ValueError(f"colour {value!r} is not 0..255 per channel")
    return (r, g, b)


def _whole(text: str, p: Path, what: str) -> int:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"{what} {text!r} is not a number", p) from None
    if value != int(value):
        raise ConfigError(
            f"{what} {text!r} is not a whole number: a legend of classes names whole values "
            "(a continuous colour ramp is not a class table)",
            p,
        )
    return int(value)


def read_qml(text: str, p: Path) -> list[LegendEntry]:
    """The classes of a QGIS raster style: paletted entries, or an exact colour-ramp shader."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise ConfigError(f"is not a QGIS style (XML: {exc})", p) from exc
    entries = root.findall(".//rasterrenderer/colorPalette/paletteEntry")
    if not entries:
        shader = root.find(".//rasterrenderer//colorrampshader")
        if shader is not None:
            kind = (shader.get("colorRampType") or "").upper()
            if kind != "EXACT":
                raise ConfigError(
                    f"styles continuous values ({kind.lower() or 'interpolated'} colour ramp), not classes; "
                    "give a paletted/unique-values style or an exact colour ramp",
                    p,
                )
            entries = shader.findall("item")
    if not entries:
        raise ConfigError("has no raster classes (no paletted renderer and no exact colour ramp)", p)
    out: list[LegendEntry] = []
    for e in entries:
        value = e.get("value", "")
        if "," in value:  # QGIS >= 3.30 groups several values under one label
            ids = [_whole(v, p, "value") for v in value.split(",") if v.strip()]
        else:
            ids = [_whole(value, p, "value")]
        colour = parse_colour(e.get("color")) if e.get("color") else None
        for i in ids:
            out.append(LegendEntry(i, e.get("label") or str(i), colour))
    return out


def read_colour_map(text: str, p: Path) -> list[LegendEntry]:
    """``value R G B [label]`` lines (ESRI/GDAL .clr) or QGIS's exported colour map."""
    out: list[LegendEntry] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("INTERPOLATION:"):
            kind = line.split(":", 1)[1].strip().upper()
            if kind != "EXACT":
                raise ConfigError(
                    f"is a colour ramp with {kind.lower()} interpolation (continuous values), not classes; "
                    "export it with exact interpolation",
                    p,
                )
            continue
        qgis = "," in line  # QGIS: value,R,G,B,A,label (the label may hold spaces, not commas)
        parts = [s.strip() for s in line.split(",")] if qgis else line.split()
        if len(parts) < 4:
            raise ConfigError(f"bad colour map line {raw!r}: expected value R G B [label]", p)
        value = _whole(parts[0], p, "value")
        try:
            colour = parse_colour(parts[1:4])
        except ValueError as exc:
            raise ConfigError(f"bad colour map line {raw!r} ({exc})", p) from exc
        rest = parts[4:]
        if rest and re.fullmatch(r"\d+", rest[0]) and (qgis or len(rest) == 1):
            rest = rest[1:]  # the alpha
        label = (", " if qgis else " ").join(rest).strip()
        out.append(LegendEntry(value, label or str(value), colour))
    return out
