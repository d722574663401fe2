"""A VRT stacking single-band files (or multi-band ones) into one image, with band names."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import rasterio


def write_stack_vrt(
    path: Path, sources: Sequence[Path], band_names: Sequence[str] | None = None, nodata: float | None = None
) -> Path:
    """A VRT at ``path`` stacking the bands of ``sources`` (single-band files, or one
    multi-band file given a nodata override) into one image named ``band_names``
    (``nodata``: the catalog's override); rewritten only when it would differ.

    geoseg reads a file with one data type and one nodata value, but stacked files may
    differ in both (nc-landsat7: five float32 bands with nodata -99999 and an int16 band
    with -32768). So every band gets the common data type and one nodata value, and each
    source's own nodata becomes it (a ComplexSource's NODATA pixels are left at the
    band's NoDataValue), so no band's nodata turns into data.
    """
    override = nodata
    metas = []
    for src in sources:
        with rasterio.open(src) as ds:
            metas.append((ds.width, ds.height, ds.crs.to_wkt() if ds.crs else "", tuple(ds.transform)[:6],
                          ds.dtypes[0], ds.nodata, ds.count))  # fmt: skip
    common = np.result_type(*[m[4] for m in metas]).name
    candidates = [override] if override is not None else [m[5] for m in metas if m[5] is not None]
    nodata = next((v for v in candidates if float(np.asarray(v).astype(common)) == float(v)), None)
    gdal_type = {"uint8": "Byte", "int8": "Int8"}.get(common, common.capitalize())
    bands = []
    # every band of every source, in order (a multi-band file keeps all its bands)
    layers = [(src, meta, b) for src, meta in zip(sources, metas, strict=True) for b in range(1, meta[6] + 1)]
    for k, (src, meta, b) in enumerate(layers, start=1):
        name = band_names[k - 1] if band_names and k <= len(band_names) else f"band{k}"
        src_nodata = override if override is not None else meta[5]
        nd = f"<NoDataValue>{nodata!r}</NoDataValue>" if nodata is not None else ""
        snd = f"<NODATA>{src_nodata!r}</NODATA>" if src_nodata is not None and nodata is not None else ""
        bands.append(
            f'  <VRTRasterBand dataType="{gdal_type}" band="{k}"><Description>{escape(name)}</Description>{nd}'
            f'<ComplexSource><SourceFilename relativeToVRT="0">{escape(str(src.absolute()))}</SourceFilename>'
            f"<SourceBand>{b}</SourceBand>{snd}</ComplexSource></VRTRasterBand>"
        )
    w, h, wkt, t = metas[0][:4]
    gt = f"{t[2]!r}, {t[0]!r}, {t[1]!r}, {t[5]!r}, {t[3]!r}, {t[4]!r}"
    text = (
        f'<VRTDataset rasterXSize="{w}" rasterYSize="{h}">\n  <SRS>{escape(wkt)}</SRS>\n'
        f"  <GeoTransform>{gt}</GeoTransform>\n" + "\n".join(bands) + "\n</VRTDataset>\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text() != text:
        tmp = path.with_name(f".{path.name}.partial")
        tmp.write_text(text)
        os.replace(tmp, path)
    return path
