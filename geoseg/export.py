"""GeoPackage finishing: layer copies, QGIS default styles and provenance metadata.

A workflow's vector products end up in one GeoPackage. Each step writes its layers into a
scratch GeoPackage (the library functions make whole files), and :func:`merge_layers`
copies them into the workflow's GeoPackage through a temporary copy that is renamed into
place at the end, so the file is never seen half-updated.

Two things make the file friendly in a GIS, both plain SQLite tables that GDAL and QGIS
already know:

- **Styles** go in ``layer_styles``, the table QGIS reads a layer's default style from
  (the same columns QGIS creates when you "save style in the database"). Each row holds a
  categorized renderer in QML (QGIS) and SLD (GeoServer and other OGC tools) with the
  classes' own colours, so land cover, change and loss-year layers open coloured.
- **Provenance** goes in the GeoPackage metadata extension (``gpkg_metadata`` +
  ``gpkg_metadata_reference``): one JSON document per layer (scope ``table``) and one for
  the whole file (scope ``geopackage``), with the model and its sha256, the inputs and
  their sha256, the parameters and the geoseg version. GDAL shows foreign metadata rows
  as ``GPKG_METADATA_ITEM_<n>`` items; :func:`read_provenance` returns the JSON. The
  layers' own GDAL metadata (``ogrinfo`` shows it) gets the same facts as flat items.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from collections.abc import Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from geoseg.errors import OutputError
from geoseg.io import ClassInfo

STYLES_TABLE = "layer_styles"
PROVENANCE_URI = "https://github.com/geoseg/geoseg/blob/main/README.md#provenance"
PROVENANCE_MIME = "application/json"
_METADATA_EXTENSION = "http://www.geopackage.org/spec120/#extension_metadata"

PathLike = str | os.PathLike[str]


# ======================================================================================
# Styles


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
    """Change polygons coloured by transition (``from_class -> to_class``) in the colour of
    the class they became; ``pairs`` (class indices) limits the legend to what occurs."""
    n = len(classes)
    chosen = pairs if pairs is not None else [(i, j) for i in range(n) for j in range(n) if i != j]
    cats = tuple(
        Category(
            f"{classes[i].name} -> {classes[j].name}",
            f"{classes[i].name} → {classes[j].name}",
            classes[j].colour,
        )
        for i, j in chosen
    )
    return LayerStyle(
        layer,
        '"from_class" || \' -> \' || "to_class"',
        cats,
        description="change by transition, coloured by the new class (geoseg)",
        sld_fields=("from_class", "to_class"),
    )


def loss_year_style(layer: str, years: Sequence[int]) -> LayerStyle:
    """Forest-loss polygons coloured by ``year`` (yellow early to dark red late)."""
    from geoseg.change import loss_year_palette

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


def _write_styles(con: sqlite3.Connection, styles: Sequence[LayerStyle]) -> None:
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


# ======================================================================================
# Provenance metadata


_METADATA_DDL = (
    """CREATE TABLE IF NOT EXISTS gpkg_metadata (
        id INTEGER CONSTRAINT m_pk PRIMARY KEY ASC NOT NULL,
        md_scope TEXT NOT NULL DEFAULT 'dataset',
        md_standard_uri TEXT NOT NULL,
        mime_type TEXT NOT NULL DEFAULT 'text/xml',
        metadata TEXT NOT NULL DEFAULT '')""",
    """CREATE TABLE IF NOT EXISTS gpkg_metadata_reference (
        reference_scope TEXT NOT NULL,
        table_name TEXT,
        column_name TEXT,
        row_id_value INTEGER,
        timestamp DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
        md_file_id INTEGER NOT NULL,
        md_parent_id INTEGER,
        CONSTRAINT crmr_mfi_fk FOREIGN KEY (md_file_id) REFERENCES gpkg_metadata(id),
        CONSTRAINT crmr_mpi_fk FOREIGN KEY (md_parent_id) REFERENCES gpkg_metadata(id))""",
)


def _ensure_metadata_tables(con: sqlite3.Connection) -> None:
    for ddl in _METADATA_DDL:
        con.execute(ddl)
    for table in ("gpkg_metadata", "gpkg_metadata_reference"):
        if not con.execute(
            "SELECT 1 FROM gpkg_extensions WHERE table_name = ? AND extension_name = 'gpkg_metadata'",
            (table,),
        ).fetchone():
            con.execute(
                "INSERT INTO gpkg_extensions (table_name, column_name, extension_name, definition, scope) "
                "VALUES (?, NULL, 'gpkg_metadata', ?, 'read-write')",
                (table, _METADATA_EXTENSION),
            )


def _write_provenance(con: sqlite3.Connection, table: str | None, provenance: Mapping[str, Any]) -> None:
    """Replace geoseg's provenance record of ``table`` (None: the whole GeoPackage)."""
    _ensure_metadata_tables(con)
    scope, name = ("table", table) if table is not None else ("geopackage", None)
    old = [
        r[0]
        for r in con.execute(
            "SELECT r.md_file_id FROM gpkg_metadata_reference r JOIN gpkg_metadata m ON m.id = r.md_file_id "
            "WHERE r.reference_scope = ? AND r.table_name IS ? AND m.md_standard_uri = ?",
            (scope, name, PROVENANCE_URI),
        )
    ]
    for md_id in old:
        con.execute("DELETE FROM gpkg_metadata_reference WHERE md_file_id = ?", (md_id,))
        con.execute("DELETE FROM gpkg_metadata WHERE id = ?", (md_id,))
    cur = con.execute(
        "INSERT INTO gpkg_metadata (md_scope, md_standard_uri, mime_type, metadata) VALUES ('dataset', ?, ?, ?)",
        (PROVENANCE_URI, PROVENANCE_MIME, json.dumps(provenance, indent=1, sort_keys=True)),
    )
    con.execute(
        "INSERT INTO gpkg_metadata_reference (reference_scope, table_name, column_name, row_id_value, "
        "timestamp, md_file_id, md_parent_id) VALUES (?, ?, NULL, NULL, ?, ?, NULL)",
        (scope, name, _now(), cur.lastrowid),
    )


def read_provenance(gpkg: PathLike, layer: str | None = None) -> dict[str, Any] | None:
    """geoseg's provenance JSON for ``layer`` (None: the GeoPackage's own), or None."""
    scope = "table" if layer is not None else "geopackage"
    with closing(sqlite3.connect(f"file:{Path(gpkg)}?mode=ro", uri=True)) as con:
        if not con.execute("SELECT 1 FROM sqlite_master WHERE name = 'gpkg_metadata'").fetchone():
            return None
        row = con.execute(
            "SELECT m.metadata FROM gpkg_metadata m JOIN gpkg_metadata_reference r ON m.id = r.md_file_id "
            "WHERE r.reference_scope = ? AND r.table_name IS ? AND m.md_standard_uri = ? ORDER BY m.id DESC",
            (scope, layer, PROVENANCE_URI),
        ).fetchone()
    return json.loads(row[0]) if row else None


def flat_metadata(provenance: Mapping[str, Any]) -> dict[str, str]:
    """Provenance as flat ``geoseg_*`` strings, for GDAL layer metadata (``ogrinfo`` shows it)."""
    out = {}
    for k, v in provenance.items():
        key = k if k.startswith("geoseg_") else f"geoseg_{k}"
        out[key] = v if isinstance(v, str) else json.dumps(v, sort_keys=True)
    return out


# ======================================================================================
# Copying layers into one GeoPackage


def list_layers(gpkg: PathLike) -> dict[str, str | None]:
    """``{layer: geometry type or None for tables}`` of a GeoPackage ({} if it does not exist)."""
    import pyogrio

    if not Path(gpkg).exists():
        return {}
    return {str(name): (str(g) if g else None) for name, g in pyogrio.list_layers(str(gpkg))}


def _copy_layer(src: Path, layer: str, dst: Path, new_name: str, metadata: Mapping[str, str]) -> int:
    import pyogrio
    import pyogrio.raw

    info = pyogrio.read_info(str(src), layer=layer)
    meta, _, geometry, data = pyogrio.raw.read(str(src), layer=layer)
    merged = {**(info.get("layer_metadata") or {}), **metadata}
    extra: dict[str, Any] = {} if dst.exists() else {"dataset_options": {"VERSION": "1.3"}}
    pyogrio.raw.write(
        str(dst), geometry, data, list(meta["fields"]), layer=new_name, driver="GPKG",
        geometry_type=meta["geometry_type"], crs=meta["crs"], layer_metadata=merged or None,
        promote_to_multi=False, **extra,
    )  # fmt: skip
    return int(info["features"])


@dataclass(frozen=True)
class LayerCopy:
    """One layer to copy: from ``source`` layer ``layer`` to ``name`` in the target."""

    source: Path
    layer: str
    name: str
    provenance: Mapping[str, Any]
    style: LayerStyle | None = None


def merge_layers(
    target: PathLike,
    copies: Sequence[LayerCopy],
    provenance: Mapping[str, Any] | None = None,
    remove: Sequence[str] = (),
) -> dict[str, int]:
    """Copy layers into ``target`` (created if missing), replacing same-named layers, with
    their styles and provenance; ``remove`` drops layers first. Atomic: the work happens on
    a temporary copy renamed over ``target`` at the end. Returns ``{layer: features}``."""
    out = Path(target)
    tmp = out.with_name(f".{out.name}.merging.gpkg")
    _remove_sqlite(tmp)
    counts: dict[str, int] = {}
    try:
        if out.exists():
            shutil.copyfile(out, tmp)
        if remove:
            _drop_layers(tmp, [r for r in remove if r in list_layers(tmp)])
        for c in copies:
            meta = {k: v for k, v in flat_metadata(c.provenance).items() if len(v) < 4000}
            counts[c.name] = _copy_layer(c.source, c.layer, tmp, c.name, meta)
        with closing(sqlite3.connect(tmp)) as con, con:
            styles = [_for_layer(c.style, c.name) for c in copies if c.style is not None]
            if styles:
                _write_styles(con, styles)
            if con.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (STYLES_TABLE,)).fetchone():
                con.execute(
                    f'DELETE FROM "{STYLES_TABLE}" WHERE f_table_name NOT IN '
                    "(SELECT table_name FROM gpkg_contents)"
                )
            for c in copies:
                _write_provenance(con, c.name, c.provenance)
            if provenance is not None:
                _write_provenance(con, None, provenance)
        os.replace(tmp, out)
    except OSError as exc:
        raise OutputError(f"cannot be written ({exc})", out) from exc
    finally:
        _remove_sqlite(tmp)
    return counts


def _for_layer(style: LayerStyle, layer: str) -> LayerStyle:
    """``style`` for another layer name."""
    import dataclasses

    return dataclasses.replace(style, layer=layer)


def _drop_layers(gpkg: Path, layers: Sequence[str]) -> None:
    """Delete layers with everything GDAL keeps about them (spatial index, contents,
    geometry column, extension, feature count, metadata references, styles)."""
    if not layers:
        return
    with closing(sqlite3.connect(gpkg)) as con, con:
        for layer in layers:
            for (geom,) in con.execute(
                "SELECT column_name FROM gpkg_geometry_columns WHERE table_name = ?", (layer,)
            ).fetchall():
                con.execute(f'DROP TABLE IF EXISTS "rtree_{layer}_{geom}"')
            con.execute(f'DROP TABLE IF EXISTS "{layer}"')
            for table in ("gpkg_geometry_columns", "gpkg_extensions", "gpkg_contents", "gpkg_ogr_contents"):
                if con.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (table,)).fetchone():
                    con.execute(f"DELETE FROM {table} WHERE table_name = ?", (layer,))
            if con.execute("SELECT 1 FROM sqlite_master WHERE name = 'gpkg_metadata_reference'").fetchone():
                con.execute("DELETE FROM gpkg_metadata_reference WHERE table_name = ?", (layer,))
                con.execute(
                    "DELETE FROM gpkg_metadata WHERE md_standard_uri IN ('http://gdal.org', ?) "
                    "AND id NOT IN (SELECT md_file_id FROM gpkg_metadata_reference)",
                    (PROVENANCE_URI,),
                )


def _remove_sqlite(path: Path) -> None:
    for suffix in ("", "-journal", "-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)


__all__ = [
    "PROVENANCE_URI",
    "STYLES_TABLE",
    "Category",
    "LayerCopy",
    "LayerStyle",
    "change_style",
    "flat_metadata",
    "landcover_style",
    "list_layers",
    "loss_year_style",
    "merge_layers",
    "read_provenance",
    "read_styles",
    "single_style",
]
