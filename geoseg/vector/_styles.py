"""QGIS default styles of polygon layers (QML and SLD in the ``layer_styles`` table)."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from geoseg.classes import ClassInfo

STYLES_TABLE = "layer_styles"
PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class Category:
    """One class of a categorized renderer: the attribute value, its label and colour."""

    value: str | int
    label: str
    colour: tuple[int, int, int]


@dataclass(frozen=True)
class LayerStyle:
    """A categorized polygon style for one layer.

    ``expression`` is a field name or a QGIS expression (e.g. ``"from_class" || ' -> ' ||
    "to_class"``); ``sld_fields`` are the fields the SLD filters compare, in the same order
    as the parts of each category value split on ``' -> '`` (SLD has no string concat).
    """

    layer: str
    expression: str
    categories: tuple[Category, ...]
    name: str = "geoseg"
    description: str = ""
    geometry_column: str = "geom"
    sld_fields: tuple[str, ...] = ()
    opacity: float = 1.0

    def qml(self) -> str:
        """The QML document QGIS stores in ``layer_styles.styleQML``."""
        cats = []
        symbols = []
        for k, c in enumerate(self.categories):
            cats.append(
                f'      <category render="true" symbol="{k}" value={quoteattr(str(c.value))} '
                f"label={quoteattr(c.label)} type={quoteattr('string' if isinstance(c.value, str) else 'integer')}/>"
            )
            symbols.append(_qml_fill_symbol(str(k), c.colour, self.opacity))
        return (
            "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"
            '<qgis version="3.28.0" styleCategories="Symbology">\n'
            f'  <renderer-v2 type="categorizedSymbol" attr={quoteattr(self.expression)} '
            'forceraster="0" symbollevels="0" enableorderby="0" referencescale="-1">\n'
            "    <categories>\n" + "\n".join(cats) + "\n    </categories>\n"
            "    <symbols>\n" + "\n".join(symbols) + "\n    </symbols>\n"
            "  </renderer-v2>\n"
            "  <blendMode>0</blendMode>\n  <featureBlendMode>0</featureBlendMode>\n"
            "  <layerGeometryType>2</layerGeometryType>\n"
            "</qgis>\n"
        )

    def sld(self) -> str:
        """An SLD 1.1 document with one rule per category (``layer_styles.styleSLD``)."""
        fields = self.sld_fields or (self.expression,)
        rules = []
        for c in self.categories:
            parts = str(c.value).split(" -> ") if len(fields) > 1 else [str(c.value)]
            tests = "".join(
                f"<ogc:PropertyIsEqualTo><ogc:PropertyName>{escape(f)}</ogc:PropertyName>"
                f"<ogc:Literal>{escape(v)}</ogc:Literal></ogc:PropertyIsEqualTo>"
                for f, v in zip(fields, parts, strict=False)
            )
            if len(fields) > 1:
                tests = f"<ogc:And>{tests}</ogc:And>"
            rules.append(
                f"<se:Rule><se:Name>{escape(c.label)}</se:Name>"
                f"<se:Description><se:Title>{escape(c.label)}</se:Title></se:Description>"
                f"<ogc:Filter>{tests}</ogc:Filter>"
                "<se:PolygonSymbolizer><se:Fill>"
                f'<se:SvgParameter name="fill">{_hex(c.colour)}</se:SvgParameter>'
                f'<se:SvgParameter name="fill-opacity">{self.opacity:g}</se:SvgParameter>'
                "</se:Fill><se:Stroke>"
                '<se:SvgParameter name="stroke">#232323</se:SvgParameter>'
                '<se:SvgParameter name="stroke-width">0.25</se:SvgParameter>'
                "</se:Stroke></se:PolygonSymbolizer></se:Rule>"
            )
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<StyledLayerDescriptor xmlns="http://www.opengis.net/sld" '
            'xmlns:ogc="http://www.opengis.net/ogc" xmlns:se="http://www.opengis.net/se" '
            'version="1.1.0">'
            f"<NamedLayer><se:Name>{escape(self.layer)}</se:Name><UserStyle>"
            f"<se:Name>{escape(self.name)}</se:Name><se:FeatureTypeStyle>"
            + "".join(rules)
            + "</se:FeatureTypeStyle></UserStyle></NamedLayer></StyledLayerDescriptor>\n"
        )


def _hex(colour: Sequence[int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*colour[:3])


def _qml_fill_symbol(name: str, colour: Sequence[int], opacity: float) -> str:
    """A simple fill symbol, written both as QGIS >= 3.26 ``Option`` maps and as the older
    ``prop`` elements, so QGIS 3.x of any age reads it."""
    rgba = f"{colour[0]},{colour[1]},{colour[2]},255"
    props = {
        "color": rgba,
        "outline_color": "35,35,35,255",
        "outline_style": "solid",
        "outline_width": "0.1",
        "outline_width_unit": "MM",
        "style": "solid",
        "joinstyle": "bevel",
    }
    options = "".join(f'<Option type="QString" name="{k}" value="{v}"/>' for k, v in props.items())
    old = "".join(f'<prop k="{k}" v="{v}"/>' for k, v in props.items())
    return (
        f'      <symbol type="fill" name="{name}" alpha="{opacity:g}" clip_to_extent="1" force_rhr="0">'
        f'<layer class="SimpleFill" enabled="1" locked="0" pass="0">'
        f'<Option type="Map">{options}</Option>{old}</layer></symbol>'
    )


def landcover_style(layer: str, classes: Sequence[ClassInfo]) -> LayerStyle:
    """Land-cover polygons coloured by ``class_name``, in the class map's own colours."""
    return LayerStyle(
        layer,
        "class_name",
        tuple(Category(c.name, c.name, c.colour) for c in classes),
        description="land cover by class (geoseg)",
    )


def change_style(
    layer: str, classes: Sequence[ClassInfo], pairs: Sequence[tuple[int, int]] | None = None
) -> LayerStyle:
    """Change polygons coloured by transition (``from_class -> to_class``) in
    :func:`transition_colour`'s colours (those of the change raster and the report's map and
    chart); ``pairs`` (class indices) limits the legend to what occurs."""
    n = len(classes)
    chosen = pairs if pairs is not None else [(i, j) for i in range(n) for j in range(n) if i != j]
    cats = tuple(
        Category(
            f"{classes[i].name} -> {classes[j].name}",
            f"{classes[i].name} → {classes[j].name}",
            transition_colour(classes, i, j),
        )
        for i, j in chosen
    )
    return LayerStyle(
        layer,
        '"from_class" || \' -> \' || "to_class"',
        cats,
        description="change by transition, in the new class's colour shaded by the old class (geoseg)",
        sld_fields=("from_class", "to_class"),
    )


# Shades of a class's colour for its further sources: mixed with black (< 0) or white (> 0)
# by this much, nearest first, then (dark colours leave little room) its hue turned by
# _SHADE_HUES degrees. A shade is kept only if its luma stays inside _SHADE_LUMA (none turns
# near-black, the "other change" colour, or white) and it is at least _SHADE_APART (RGB
# distance) from the shades kept before it and from the class's unchanged tint.
_SHADE_LADDER = (-0.3, 0.3, -0.5, 0.5, -0.7, 0.65, -0.85, 0.8, -0.15, 0.15)
_SHADE_HUES = (30, -30, 60, -60)
_SHADE_LUMA = (0.15, 0.85)
_SHADE_APART = 40.0
_UNCHANGED_WHITE = 0.82  # unchanged: the class's colour mixed with a light grey by this much


def _mix(colour: Sequence[int], amount: float) -> tuple[int, int, int]:
    towards = 255 if amount > 0 else 0
    a = abs(amount)
    r, g, b = (round((1 - a) * c + a * towards) for c in colour[:3])
    return (r, g, b)


def _turn(colour: Sequence[int], degrees: float) -> tuple[int, int, int]:
    import colorsys

    h, lightness, sat = colorsys.rgb_to_hls(*(v / 255 for v in colour[:3]))
    r, g, b = (round(255 * v) for v in colorsys.hls_to_rgb((h + degrees / 360) % 1.0, lightness, sat))
    return (r, g, b)


def _distance(a: Sequence[int], b: Sequence[int]) -> float:
    return float(sum((x - y) ** 2 for x, y in zip(a[:3], b[:3], strict=True)) ** 0.5)


def _unchanged(colour: Sequence[int]) -> tuple[int, int, int]:
    w = _UNCHANGED_WHITE
    r, g, b = (round((1 - w) * v + w * 235) for v in colour[:3])
    return (r, g, b)


def _luma(colour: Sequence[int]) -> float:
    return (0.2126 * colour[0] + 0.7152 * colour[1] + 0.0722 * colour[2]) / 255


def transition_colour(classes: Sequence[ClassInfo], i: int, j: int) -> tuple[int, int, int]:
    """The one colour of the transition from class index ``i`` to ``j`` (indices into ``classes``).

    Every product shows a transition in this colour: the change raster's colour table, the
    change layer's QGIS style, the report's change map and its transition chart.

    Parameters
    ----------
    classes
        The class table, in the order the change raster's codes index it.
    i, j
        The class index before and after.

    Returns
    -------
    tuple of int
        ``(r, g, b)``. Unchanged (``i == j``): a pale tint of the class, so that change stands
        out over it. Changed: the colour of the class it became (a clearing into grassland
        reads as grassland); its first source in table order has exactly that colour, each
        further one a darker or lighter shade of it, so two transitions into one class are
        still told apart.
    """
    if i == j:
        return _unchanged(classes[i].colour)
    target = classes[j].colour
    rank = [k for k in range(len(classes)) if k != j].index(i)
    lo, hi = _SHADE_LUMA
    shades = [(target[0], target[1], target[2])]
    taken = [*shades, _unchanged(target)]
    candidates = [_mix(target, a) for a in _SHADE_LADDER] + [_turn(target, d) for d in _SHADE_HUES]
    for m in candidates:
        if lo <= _luma(m) <= hi and all(_distance(m, t) >= _SHADE_APART for t in taken):
            shades.append(m)
            taken.append(m)
    return shades[rank % len(shades)]  # more sources than shades (9+ classes): they repeat


def loss_year_style(layer: str, years: Sequence[int]) -> LayerStyle:
    """Forest-loss polygons coloured by ``year`` (yellow early to dark red late)."""
    palette = loss_year_palette(list(years))
    cats = tuple(Category(int(y), f"lost by {y}", palette[int(y)][:3]) for y in sorted(set(years)))
    return LayerStyle(layer, "year", cats, description="first forest loss by year (geoseg)")


def single_style(layer: str, field: str, values: Sequence[str | int], colour: tuple[int, int, int],
                 label: str) -> LayerStyle:  # fmt: skip
    """Every value of ``field`` in one colour (e.g. regrowth)."""
    cats = tuple(Category(v, f"{label} {v}", colour) for v in values)
    return LayerStyle(layer, field, cats, description=f"{label} (geoseg)")


_STYLES_DDL = f"""
CREATE TABLE IF NOT EXISTS "{STYLES_TABLE}" (
    "id" INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    "f_table_catalog" TEXT(256),
    "f_table_schema" TEXT(256),
    "f_table_name" TEXT(256),
    "f_geometry_column" TEXT(256),
    "styleName" TEXT(30),
    "styleQML" TEXT,
    "styleSLD" TEXT,
    "useAsDefault" BOOLEAN,
    "description" TEXT,
    "owner" TEXT(30),
    "ui" TEXT(30),
    "update_time" DATETIME DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
)
"""


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def write_styles(con: sqlite3.Connection, styles: Sequence[LayerStyle]) -> None:
    con.execute(_STYLES_DDL)
    # Registered as an attributes table, as QGIS (through OGR) registers it: GDAL lists it
    # and the file stays a valid GeoPackage.
    if not con.execute("SELECT 1 FROM gpkg_contents WHERE table_name = ?", (STYLES_TABLE,)).fetchone():
        con.execute(
            "INSERT INTO gpkg_contents (table_name, data_type, identifier, description, last_change) "
            "VALUES (?, 'attributes', ?, 'QGIS default layer styles', ?)",
            (STYLES_TABLE, STYLES_TABLE, _now()),
        )
    for s in styles:
        # QGIS finds a layer's default style by table name, geometry column and an empty schema.
        row = con.execute(
            "SELECT column_name FROM gpkg_geometry_columns WHERE table_name = ?", (s.layer,)
        ).fetchone()
        geometry_column = row[0] if row else s.geometry_column
        con.execute(
            f'DELETE FROM "{STYLES_TABLE}" WHERE f_table_name = ? AND styleName = ?', (s.layer, s.name)
        )
        con.execute(f'UPDATE "{STYLES_TABLE}" SET useAsDefault = 0 WHERE f_table_name = ?', (s.layer,))
        con.execute(
            f'INSERT INTO "{STYLES_TABLE}" (f_table_catalog, f_table_schema, f_table_name, f_geometry_column, '
            "styleName, styleQML, styleSLD, useAsDefault, description, owner, ui, update_time) "
            "VALUES ('', '', ?, ?, ?, ?, ?, 1, ?, 'geoseg', NULL, ?)",
            (s.layer, geometry_column, s.name, s.qml(), s.sld(), s.description, _now()),
        )


def read_styles(gpkg: PathLike) -> list[dict[str, Any]]:
    """The rows of ``layer_styles`` (empty when the file has none)."""
    with closing(sqlite3.connect(f"file:{Path(gpkg)}?mode=ro", uri=True)) as con:
        con.row_factory = sqlite3.Row
        if not con.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (STYLES_TABLE,)).fetchone():
            return []
        return [dict(r) for r in con.execute(f'SELECT * FROM "{STYLES_TABLE}" ORDER BY id')]


def loss_year_palette(years: Sequence[int]) -> dict[int, tuple[int, int, int, int]]:
    """Yellow (early) to dark red (late) for loss years; no loss light grey."""
    import matplotlib

    cmap = matplotlib.colormaps["YlOrRd"]
    # TIFF colour tables have no alpha: "no loss" is a light grey rather than transparent.
    table: dict[int, tuple[int, int, int, int]] = {0: (235, 235, 235, 255)}
    uniq = sorted(set(years))
    for k, yr in enumerate(uniq):
        r, g, b, _ = cmap(0.3 + 0.7 * k / max(len(uniq) - 1, 1))
        table[yr] = (round(255 * r), round(255 * g), round(255 * b), 255)
    return table


def loss_year_legend(years: Sequence[int]) -> list[ClassInfo]:
    """The named values of a loss-year raster: 0 "no loss" and each year, in
    :func:`loss_year_palette`'s colours (the raster's legend lists those it holds)."""
    palette = loss_year_palette(list(years))
    return [ClassInfo(0, "no loss", palette[0][:3])] + [
        ClassInfo(int(y), f"lost by {y}", palette[int(y)][:3]) for y in sorted(set(years))
    ]
