"""A class map's class table: what the file says its values mean, and which values it holds.

Class maps come from many tools, and each names its classes its own way. In order, the
first that names anything wins:

1. geoseg's own metadata (``GEOSEG_CLASSES``, else ``CLASS_<id>`` tags);
2. a GDAL raster attribute table (thematic RAT: value, name and colour columns), as
   ERDAS, ArcGIS, KEA or a PAM ``.aux.xml`` sidecar carry it;
3. GDAL category names (``.aux.xml`` sidecars, ENVI ``class names``), e.g.
   zion-landsat8/nlcd.tif;
4. a QGIS style beside the file (``<name>.qml``), then a colour map (``<name>.clr``).

Colours come from the same source when it has them, else from the file's colour table,
else :func:`geoseg.classes.default_colour`. Values that nothing names are named by their id
("3") where a name is needed (change, track); a legend the user gives
(:meth:`ClassTable.with_legend`) overrides the names (and colours) of the ids it lists.

GDAL finds sidecars only with PAM enabled, so the file is opened here with
``GDAL_PAM_ENABLED=YES`` and ``GDAL_DISABLE_READDIR_ON_OPEN=TRUE`` (probe for the sidecar
by name rather than list the folder; ``EMPTY_DIR``, geoseg's reading default, hides
sidecars). Only metadata is read, which never marks the PAM state dirty, so GDAL writes
no ``.aux.xml`` next to the input when the dataset closes. The band's category names
and RAT reach Python through GDAL's own serialisation: a VRT copy (metadata only, no
pixels) in memory, because rasterio has no API for either.
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.errors import RasterioIOError

from geoseg.classes import ClassInfo, default_colour
from geoseg.errors import BadRasterError, ConfigError, MissingFileError, first_line
from geoseg.raster._classfiles import RGB, LegendEntry, read_colour_map, read_qml
from geoseg.raster._grid import PixelWindow
from geoseg.raster._read import RasterSource, read_window

PathLike = str | os.PathLike[str]

#: how a class map is opened to read its sidecars (see the module doc)
PAM_READ_ENV = {"GDAL_PAM_ENABLED": "YES", "GDAL_DISABLE_READDIR_ON_OPEN": "TRUE"}

TAGS = "geoseg metadata"
RAT = "raster attribute table"
CATEGORIES = "category names"

# GDAL's GDALRATFieldUsage codes, as the RAT's XML serialisation writes them
_USAGE_NAME, _USAGE_MIN, _USAGE_MAX, _USAGE_MINMAX = 2, 3, 4, 5
_USAGE_RED, _USAGE_GREEN, _USAGE_BLUE = 6, 7, 8
_TYPE_REAL, _TYPE_STRING = 1, 2


@dataclass(frozen=True)
class ClassTable:
    """The classes of a class map that something names, where the names come from, and
    the file's colour table (for colouring the classes nothing names)."""

    classes: tuple[ClassInfo, ...] = ()
    source: str = ""  # TAGS, RAT, CATEGORIES, a sidecar or legend file's name; "" = unnamed
    palette: dict[int, RGB] = field(default_factory=dict, repr=False)

    @property
    def named(self) -> bool:
        """Whether anything names the classes (else they are known by their ids only)."""
        return bool(self.classes)

    @property
    def from_geoseg(self) -> bool:
        """Named by geoseg's own metadata: the whole table of a map geoseg wrote."""
        return self.source == TAGS

    def names(self) -> dict[int, str]:
        """id -> name of the named classes."""
        return {c.id: c.name for c in self.classes}

    def colour(self, value: int) -> RGB:
        """The colour of ``value``: the file's colour table's, else a default one."""
        return self.palette.get(value) or default_colour(value)

    def with_legend(self, legend: Sequence[LegendEntry] | None, source: str = "legend") -> ClassTable:
        """The names (and colours, where it gives them) of ``legend`` over this table's."""
        if not legend:
            return self
        by_id = {c.id: c for c in self.classes}
        for e in legend:
            old = by_id.get(e.id)
            by_id[e.id] = ClassInfo(e.id, e.name, e.colour or (old.colour if old else self.colour(e.id)))
        label = source if not self.named else f"{source} over the {self.source}"
        return replace(self, classes=tuple(by_id[i] for i in sorted(by_id)), source=label)

    def with_values(self, values: Iterable[int]) -> ClassTable:
        """Add the ``values`` nothing names, each named by its id."""
        by_id = {c.id: c for c in self.classes}
        for v in values:
            if int(v) not in by_id:
                by_id[int(v)] = ClassInfo(int(v), str(int(v)), self.colour(int(v)))
        return replace(self, classes=tuple(by_id[i] for i in sorted(by_id)))


def classes_from_tags(tags: dict[str, str]) -> list[ClassInfo]:
    """The class table geoseg's :func:`class_tags` wrote into a raster's metadata (or [])."""
    if "GEOSEG_CLASSES" in tags:
        return [
            ClassInfo(int(c["id"]), str(c["name"]), tuple(c["colour"]))
            for c in json.loads(tags["GEOSEG_CLASSES"])
        ]
    named = {int(k[6:]): v for k, v in tags.items() if k.startswith("CLASS_") and k[6:].isdigit()}
    return [ClassInfo(i, n, default_colour(i)) for i, n in sorted(named.items())]


def _open_with_pam(path: str) -> Any:
    if not path.startswith(("/vsi", "http://", "https://")) and not os.path.exists(path):
        raise MissingFileError("no such file; check the path", path)
    try:
        return rasterio.open(path)
    except RasterioIOError as exc:
        raise BadRasterError(f"not a raster GDAL can read ({first_line(exc)})", path) from exc


def find_classes(path: PathLike, band: int = 1) -> ClassTable:
    """The class table ``path`` (band ``band``) carries, or its sidecars do (see the module doc).

    Ids that are the band's nodata value, or that its data type cannot hold, are left out.
    """
    from rasterio.io import MemoryFile
    from rasterio.shutil import copy as rio_copy

    p = str(path)
    with rasterio.Env(**PAM_READ_ENV), _open_with_pam(p) as ds:
        tags = ds.tags()
        dtype, nodata = ds.dtypes[band - 1], ds.nodatavals[band - 1]
        try:
            palette = {int(k): (int(v[0]), int(v[1]), int(v[2])) for k, v in ds.colormap(band).items()}
        except ValueError:  # no colour table
            palette = {}
        try:
            with MemoryFile(ext=".vrt") as mem:
                rio_copy(ds, mem.name, driver="VRT")
                xml_band = ET.fromstring(mem.read()).find(f"VRTRasterBand[@band='{band}']")
        except (RasterioIOError, ET.ParseError):  # a driver VRT cannot describe: no RAT to read
            xml_band = None
    found: tuple[str, list[ClassInfo]] = (TAGS, classes_from_tags(tags))
    if not found[1] and xml_band is not None:
        found = (RAT, _rat_classes(xml_band, palette))
        if not found[1]:
            found = (CATEGORIES, _category_classes(xml_band, palette))
    if not found[1]:
        found = _sidecar_classes(p, palette)
    source, classes = found
    keep = [c for c in classes if _holds(c.id, dtype, nodata)]
    return ClassTable(tuple(sorted(keep, key=lambda c: c.id)), source if keep else "", palette)


def _holds(value: int, dtype: str, nodata: float | None) -> bool:
    if nodata is not None and float(value) == float(nodata):
        return False
    dt = np.dtype(dtype)
    if dt.kind in "ui":
        info = np.iinfo(dt)
        return info.min <= value <= info.max
    return True


def _rat_classes(band: ET.Element, palette: dict[int, RGB]) -> list[ClassInfo]:
    """The named rows of the band's thematic raster attribute table."""
    rat = band.find("GDALRasterAttributeTable")
    if rat is None:
        return []
    fields = []
    for f in rat.findall("FieldDefn"):
        fields.append(
            ((f.findtext("Name") or "").strip(), int(f.findtext("Type") or 0), int(f.findtext("Usage") or 0))
        )
    if not fields:
        return []

    def column(usage: int) -> int | None:
        return next((k for k, (_, _, u) in enumerate(fields) if u == usage), None)

    value_col = column(_USAGE_MINMAX)
    if value_col is None:
        value_col = column(_USAGE_MIN)  # ranges of one value each (min == max) in practice
    if value_col is None:  # tools that write a generic "Value" column
        value_col = next(
            (
                k
                for k, (n, t, _) in enumerate(fields)
                if n.lower() in ("value", "class_value", "code") and t != _TYPE_STRING
            ),
            None,
        )
    name_col = column(_USAGE_NAME)
    if name_col is None:
        name_col = next((k for k, (_, t, _) in enumerate(fields) if t == _TYPE_STRING), None)
    if name_col is None:
        return []
    rgb = [column(u) for u in (_USAGE_RED, _USAGE_GREEN, _USAGE_BLUE)]
    row0, size = float(rat.get("Row0Min", 0)), float(rat.get("BinSize", 1))
    out: dict[int, ClassInfo] = {}
    for k, row in enumerate(rat.findall("Row")):
        cells = [c.text or "" for c in row.findall("F")]
        if len(cells) < len(fields):
            continue
        name = cells[name_col].strip()
        try:
            value = float(cells[value_col]) if value_col is not None else row0 + k * size
        except ValueError:
            continue
        if not name or value != int(value):
            continue
        colour: RGB | None = None
        if all(c is not None for c in rgb):
            try:
                parts = [float(cells[c]) for c in rgb if c is not None]
            except ValueError:
                parts = []
            if parts:
                # HFA (ERDAS) stores colour columns as reals in 0..1, others as 0..255 integers
                real = any(fields[c][1] == _TYPE_REAL for c in rgb if c is not None)
                scale = 255.0 if real and all(0.0 <= x <= 1.0 for x in parts) else 1.0
                r, g, b = (round(min(255.0, max(0.0, x * scale))) for x in parts)
                colour = (r, g, b)
        i = int(value)
        out.setdefault(i, ClassInfo(i, name, colour or palette.get(i) or default_colour(i)))
    return [out[i] for i in sorted(out)]


def _category_classes(band: ET.Element, palette: dict[int, RGB]) -> list[ClassInfo]:
    names = band.find("CategoryNames")
    if names is None:
        return []
    out = []
    for i, cat in enumerate(names.findall("Category")):
        name = (cat.text or "").strip()
        if name:
            out.append(ClassInfo(i, name, palette.get(i) or default_colour(i)))
    return out


def style_sidecars(path: str) -> list[Path]:
    """The QGIS style and colour map that may sit beside a local raster: ``<stem>.qml``, ``<stem>.clr``."""
    if path.startswith(("/vsi", "http://", "https://")):
        return []
    p = Path(path)
    return [p.with_suffix(".qml"), p.with_suffix(".clr")]


def _sidecar_classes(path: str, palette: dict[int, RGB]) -> tuple[str, list[ClassInfo]]:
    for side in style_sidecars(path):
        if not side.is_file():
            continue
        text = side.read_text(encoding="utf-8-sig", errors="replace")
        try:
            entries = read_qml(text, side) if side.suffix == ".qml" else read_colour_map(text, side)
        except ConfigError:
            continue  # a style of continuous values (a DEM's ramp) names no classes
        classes = [
            ClassInfo(e.id, e.name, e.colour or palette.get(e.id) or default_colour(e.id)) for e in entries
        ]
        if classes:
            return side.name, classes
    return "", []


# --------------------------------------------------------------------------------------
# Which values a class map holds


SCAN_BLOCK = 1024  # px: a block of uint8 codes is 1 MB; int32 4 MB


def _windows(source: RasterSource, size: int) -> Iterator[PixelWindow]:
    h, w = source.grid.shape
    for row in range(0, h, size):
        for col in range(0, w, size):
            yield PixelWindow(row, col, min(size, h - row), min(size, w - col))


def class_values(source: RasterSource, limit: int = 255) -> list[int]:
    """Every valid value of band 1 of an integer raster, ascending, read block by block.

    Stops as soon as more than ``limit`` distinct values are seen (then it is not a class
    map: the caller says so), so imagery costs one block or two, not a whole pass.
    """
    kind = np.dtype(source.dtype).kind
    if kind not in "ui":
        raise BadRasterError(
            f"holds {source.dtype} values; a class map holds integer class ids", source.paths[0]
        )
    seen: set[int] = set()
    small = np.dtype(source.dtype).itemsize <= 2
    for window in _windows(source, SCAN_BLOCK):
        data, valid = read_window(source, window)
        vals = data[0][valid]
        if not vals.size:
            continue
        if small and vals.min() >= 0:
            # a histogram is ~10x faster than sorting for the 8/16-bit codes most maps use
            seen.update(np.flatnonzero(np.bincount(vals.astype(np.int64))).tolist())
        else:
            seen.update(np.unique(vals).tolist())
        if len(seen) > limit:
            break
    return sorted(int(v) for v in seen)


SAMPLE_PIXELS = 1 << 20  # a class map shows its classes long before a megapixel
SAMPLE_WINDOW = 256


def sample_values(source: RasterSource, pixels: int = SAMPLE_PIXELS) -> np.ndarray:
    """The valid values of band 1 in a sample of about ``pixels`` pixels.

    A raster no larger than that is read whole; a larger one in ``SAMPLE_WINDOW``-square
    windows at full resolution spread evenly over it (overviews could hold averaged,
    invented values, so they are not used).
    """
    h, w = source.grid.shape
    if h * w <= pixels:
        data, valid = read_window(source, source.grid.window)
        return np.asarray(data[0][valid])
    per_side = max(1, int((pixels / SAMPLE_WINDOW**2) ** 0.5))
    rows = np.linspace(0, max(0, h - SAMPLE_WINDOW), per_side).astype(int)
    cols = np.linspace(0, max(0, w - SAMPLE_WINDOW), per_side).astype(int)
    parts = []
    for r in dict.fromkeys(rows.tolist()):
        for c in dict.fromkeys(cols.tolist()):
            window = PixelWindow(r, c, min(SAMPLE_WINDOW, h - r), min(SAMPLE_WINDOW, w - c))
            data, valid = read_window(source, window)
            parts.append(data[0][valid])
    return np.concatenate(parts) if parts else np.zeros(0, dtype=source.dtype)
