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
  layers' own GDAL metadata (``ogrinfo`` shows it) gets the same facts as flat items."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from collections.abc import Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from geoseg.errors import OutputError
from geoseg.vector._styles import STYLES_TABLE, LayerStyle, _now, write_styles

#: The GeoPackage version of every file geoseg creates: 1.3, the newest that GDAL 3.6
#: (Debian's ``ogrinfo``, the QGIS builds on it) opens without warning "This version of
#: GeoPackage user_version=... (10400, v1.4.0) may only be partially supported". GDAL 3.10
#: and later would write 1.4; the layers, tables and styles geoseg writes need nothing of it.
GPKG_VERSION = "1.3"


def gpkg_creation_options(path: str | os.PathLike[str]) -> dict[str, Any]:
    """pyogrio's keywords for a GeoPackage write to ``path``: the version when it creates the file.

    A write into an existing file keeps that file's version (GDAL ignores creation
    options there), so they are passed only when ``path`` does not exist yet.
    """
    return {} if os.path.exists(path) else {"dataset_options": {"VERSION": GPKG_VERSION}}


PROVENANCE_URI = "https://github.com/geoseg/geoseg/blob/main/README.md#provenance"


PROVENANCE_MIME = "application/json"


_METADATA_EXTENSION = "http://www.geopackage.org/spec120/#extension_metadata"


PathLike = str | os.PathLike[str]


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
    extra = gpkg_creation_options(dst)
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
                write_styles(con, styles)
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
