"""A class raster's legend beside it, so GIS show class names: GDAL's ``.aux.xml`` and a QGIS ``.qml``.

What QGIS lists in a raster's legend, and why each file is written:

- With a colour table and nothing else, QGIS's paletted renderer lists *every* entry of
  the table, and a TIFF palette has 2^bits entries whatever the classes (256 for uint8,
  65,536 for uint16): the legend reads 0..255. Labels are the entries' category names
  when the band has them (QGIS 3.x), else the numbers.
- QGIS >= 3.30 builds the renderer from a thematic raster attribute table (RAT) first,
  one class per row with its name and colour, and its identify tool shows the row.
- Any QGIS 3 loads ``<name>.qml`` beside a file as the layer's default style.

A GeoTIFF cannot hold a RAT or category names: GDAL keeps both in a PAM sidecar,
``<file>.aux.xml``. So a raster with a legend gets ``<file>.aux.xml`` (category names
for 8-bit rasters, a thematic RAT of the values present: ``value``, ``class_name``,
``pixels``, ``red``, ``green``, ``blue``) and ``<stem>.qml`` (a paletted style of the
values present, named). Both are written from the class table, not read back from the
raster, and both are optional for geoseg itself: its own metadata tags carry the class
table inside the COG.

Sidecars travel with their raster: :func:`move_raster` and :func:`remove_raster` move or
remove the raster and its sidecars together, and replacing a raster drops a stale
``.aux.xml`` (statistics or a RAT of the file it replaces).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from geoseg.classes import ClassInfo

PathLike = str | os.PathLike[str]

#: the largest value category names are written up to (one name per value from 0)
MAX_CATEGORY = 255
_INT32_MAX = 2**31 - 1


def aux_xml_path(path: PathLike) -> Path:
    """Where GDAL looks for a raster's PAM sidecar: ``<file>.aux.xml``."""
    p = Path(path)
    return p.with_name(p.name + ".aux.xml")


def qml_path(path: PathLike) -> Path:
    """Where QGIS looks for a layer's default style: ``<stem>.qml``."""
    return Path(path).with_suffix(".qml")


def sidecar_paths(path: PathLike) -> tuple[Path, Path]:
    """The legend sidecars a raster at ``path`` may have (they need not exist)."""
    return aux_xml_path(path), qml_path(path)


def present_classes(classes: Sequence[ClassInfo], counts: Mapping[int, int]) -> list[tuple[ClassInfo, int]]:
    """The classes the raster holds (``counts``: pixels per value), with their pixel counts."""
    return [(c, int(counts[c.id])) for c in sorted(classes, key=lambda c: c.id) if counts.get(c.id, 0) > 0]


def aux_xml(classes: Sequence[ClassInfo], counts: Mapping[int, int]) -> str:
    """The PAM document: category names (values up to 255) and the thematic RAT of the
    classes present."""
    parts = ["<PAMDataset>", '  <PAMRasterBand band="1">']
    by_id = {c.id: c.name for c in classes}
    if by_id and min(by_id) >= 0 and max(by_id) <= MAX_CATEGORY:
        parts.append("    <CategoryNames>")
        parts += [f"      <Category>{escape(by_id.get(i, ''))}</Category>" for i in range(max(by_id) + 1)]
        parts.append("    </CategoryNames>")
    rows = present_classes(classes, counts)
    if rows:
        # GDAL's RAT integers are 32-bit: larger pixel counts are written as reals
        count_type = 0 if max(n for _, n in rows) <= _INT32_MAX else 1
        fields = [("value", 0, 5), ("class_name", 2, 2), ("pixels", count_type, 1),
                  ("red", 0, 6), ("green", 0, 7), ("blue", 0, 8)]  # fmt: skip
        parts.append('    <GDALRasterAttributeTable tableType="thematic">')
        for k, (name, kind, usage) in enumerate(fields):
            parts.append(
                f'      <FieldDefn index="{k}"><Name>{name}</Name><Type>{kind}</Type><Usage>{usage}</Usage></FieldDefn>'
            )
        for k, (c, n) in enumerate(rows):
            cells = [str(c.id), escape(c.name), str(n), *(str(int(v)) for v in c.colour[:3])]
            parts.append(f'      <Row index="{k}">' + "".join(f"<F>{v}</F>" for v in cells) + "</Row>")
        parts.append("    </GDALRasterAttributeTable>")
    parts += ["  </PAMRasterBand>", "</PAMDataset>", ""]
    return "\n".join(parts)


def qml(classes: Sequence[ClassInfo], counts: Mapping[int, int]) -> str:
    """A QGIS style: the paletted (unique values) renderer of the classes present, named."""
    entries = [
        f'        <paletteEntry value="{c.id}" color="{_hex(c.colour)}" alpha="255" label={quoteattr(c.name)}/>'
        for c, _ in present_classes(classes, counts)
    ]
    return (
        "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"
        '<qgis version="3.28.0" styleCategories="Symbology">\n'
        "  <pipe>\n"
        '    <rasterrenderer type="paletted" band="1" opacity="1" alphaBand="-1" nodataColor="">\n'
        "      <rasterTransparency/>\n"
        "      <colorPalette>\n" + "\n".join(entries) + "\n      </colorPalette>\n"
        "    </rasterrenderer>\n"
        '    <brightnesscontrast brightness="0" contrast="0" gamma="1"/>\n'
        '    <huesaturation saturation="0" grayscaleMode="0" colorizeOn="0" colorizeRed="255" '
        'colorizeGreen="128" colorizeBlue="128" colorizeStrength="100" invertColors="0"/>\n'
        '    <rasterresampler maxOversampling="2"/>\n'
        "    <resamplingStage>resamplingFilter</resamplingStage>\n"
        "  </pipe>\n"
        "  <blendMode>0</blendMode>\n"
        "</qgis>\n"
    )


def _hex(colour: Sequence[int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*(int(v) for v in colour[:3]))


def stage_legend(
    path: PathLike, classes: Sequence[ClassInfo], counts: Mapping[int, int]
) -> list[tuple[Path, Path]]:
    """Write the legend sidecars of ``path`` under temporary names; returns (temporary,
    final) pairs for :func:`commit_sidecars`. Nothing is written when no class is named."""
    if not classes:
        return []
    docs = [(aux_xml_path(path), aux_xml(classes, counts))]
    if present_classes(classes, counts):
        docs.append((qml_path(path), qml(classes, counts)))
    staged: list[tuple[Path, Path]] = []
    try:
        for final, text in docs:
            tmp = final.with_name(f".{final.name}.partial")
            tmp.write_text(text, encoding="utf-8")
            staged.append((tmp, final))
    except BaseException:
        discard_sidecars(staged)
        raise
    return staged


def commit_sidecars(path: PathLike, staged: Sequence[tuple[Path, Path]]) -> None:
    """Move staged sidecars into place beside ``path`` (just renamed into place itself),
    and drop a stale ``.aux.xml`` the new raster did not bring."""
    finals = {final for _, final in staged}
    for tmp, final in staged:
        os.replace(tmp, final)
    stale = aux_xml_path(path)
    if stale not in finals:
        stale.unlink(missing_ok=True)


def discard_sidecars(staged: Sequence[tuple[Path, Path]]) -> None:
    for tmp, _ in staged:
        tmp.unlink(missing_ok=True)


def move_raster(src: PathLike, dst: PathLike) -> None:
    """Rename a raster and its legend sidecars (a stale ``.aux.xml`` at ``dst`` is dropped)."""
    os.replace(src, dst)
    for old, new in zip(sidecar_paths(src), sidecar_paths(dst), strict=True):
        if old.exists():
            os.replace(old, new)
        elif new.suffix == ".xml":
            new.unlink(missing_ok=True)


def remove_raster(path: PathLike) -> None:
    """Remove a raster and its legend sidecars (whichever exist)."""
    Path(path).unlink(missing_ok=True)
    for side in sidecar_paths(path):
        side.unlink(missing_ok=True)
