"""STAC Items for geoseg's products and a Collection for a workflow's outputs.

Every raster product (class maps, change rasters, loss-year rasters, synthetic scenes) and
every GeoPackage gets one Item: its footprint in WGS 84, the projection extension (code,
shape, transform, bbox in the native CRS), the raster extension (data type, nodata,
resolution), the classification extension for class maps (value, name, colour), the file
extension (size and sha256 multihash) and geoseg's provenance: the model (name, sha256),
the inputs (paths, sha256), the parameters and the geoseg version, as ``geoseg:*``
properties, ``processing:software``, and ``derived_from`` links to the inputs' Items.

The catalog is written with relative links (``stac/collection.json`` beside
``stac/<item>.json``), so the output folder can be moved or served as it is.

Models: every checkpoint a workflow used or trained gets an Item with the Machine Learning
Model extension (:mod:`geoseg.products._stac_model`), and each product a model made links
to it (``derived_from``, as MLM asks of prediction outputs); products made from those
(polygons, change) link to them in turn.

Validation: :func:`geoseg.products.validate_stac` checks a document against the official
JSON Schemas of STAC and its extensions, read from a local folder (no network);
:func:`check_stac` checks without any schema what the core specification requires of an
Item or a Collection (types, ids, geometry and bbox, datetime or a range, links, assets,
extension URIs)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pystac
from pystac.extensions.classification import Classification, ClassificationExtension
from pystac.extensions.file import FileExtension
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.raster import DataType, RasterBand, RasterExtension

from geoseg import __version__
from geoseg.classes import ClassInfo
from geoseg.products._stac_model import class_name as _class_name
from geoseg.products._stac_model import model_href, model_item

PROCESSING_SCHEMA = "https://stac-extensions.github.io/processing/v1.2.0/schema.json"


GPKG_MEDIA_TYPE = "application/geopackage+sqlite3"


PathLike = str | os.PathLike[str]


@dataclass
class Product:
    """One file geoseg made, and what the STAC Item should say about it."""

    path: Path
    item_id: str
    title: str
    kind: str  # "classmap", "change", "loss_year", "image", "truth", "vector", "model" (a checkpoint: MLM)
    provenance: dict[str, Any] = field(default_factory=dict)
    date: str | None = None  # YYYY[-MM[-DD]] of the imagery, if known
    date_range: tuple[str, str] | None = None  # first and last date, for multi-date products
    sha256: str | None = None
    derived_from: list[str] = field(default_factory=list)  # item ids of input products
    layers: dict[str, int] = field(default_factory=dict)  # GeoPackage: layer -> features
    extra_assets: dict[str, tuple[Path, str, str]] = field(default_factory=dict)  # key: (path, type, role)


def _when(text: str) -> datetime:
    parts = [int(p) for p in str(text).split("-")]
    while len(parts) < 3:
        parts.append(1)
    return datetime(parts[0], parts[1], parts[2], tzinfo=timezone.utc)


def _mtime(path: Path) -> datetime:
    return datetime.fromtimestamp(path.stat().st_mtime, tz=timezone.utc).replace(microsecond=0)


def _footprint(crs: Any, bounds: tuple[float, float, float, float]) -> tuple[dict[str, Any], list[float]]:
    """The bounds as a WGS 84 polygon (edges densified, so curved edges stay inside) and bbox."""
    from rasterio.warp import transform_geom

    left, bottom, right, top = bounds
    ring = [[left, bottom], [right, bottom], [right, top], [left, top], [left, bottom]]
    geom: dict[str, Any] = {"type": "Polygon", "coordinates": [ring]}
    if crs is not None:
        geom = dict(transform_geom(crs, "EPSG:4326", geom, precision=7, antimeridian_cutting=True))
    xs, ys = [], []

    def walk(c: Any) -> None:
        if isinstance(c[0], (int, float)):
            xs.append(float(c[0]))
            ys.append(float(c[1]))
        else:
            for x in c:
                walk(x)

    walk(geom["coordinates"])
    geom = json.loads(json.dumps(geom))  # tuples -> lists, for a stable JSON round trip
    return geom, [min(xs), min(ys), max(xs), max(ys)]


def _properties(p: Product, created: datetime) -> tuple[datetime | None, dict[str, Any]]:
    props: dict[str, Any] = {
        "title": p.title,
        "created": created.isoformat().replace("+00:00", "Z"),
        "processing:software": {"geoseg": __version__},
    }
    for k, v in p.provenance.items():
        props[f"geoseg:{k}"] = v
    if p.date_range is not None:
        props["start_datetime"] = _when(p.date_range[0]).isoformat().replace("+00:00", "Z")
        props["end_datetime"] = _when(p.date_range[1]).isoformat().replace("+00:00", "Z")
        return None, props
    if p.date is not None:
        return _when(p.date), props
    return created, props  # no acquisition date known (synthetic data): when it was made


def _multihash(sha256: str) -> str:
    return "1220" + sha256  # multihash: 0x12 = sha2-256, 0x20 = 32 bytes


def raster_item(p: Product, classes: Sequence[ClassInfo] | None = None) -> pystac.Item:
    """An Item for a raster product (read from the file's header)."""
    import rasterio

    from geoseg.raster import read_classes

    with rasterio.open(p.path) as ds:
        crs, bounds, transform = ds.crs, tuple(ds.bounds), ds.transform
        shape, dtype, nodata, res = [ds.height, ds.width], ds.dtypes[0], ds.nodata, ds.res
        count = ds.count
    geom, bbox = _footprint(crs, bounds)
    created = _mtime(p.path)
    dt, props = _properties(p, created)
    item = pystac.Item(p.item_id, geom, bbox, dt, props)
    proj = ProjectionExtension.ext(item, add_if_missing=True)
    code = crs.to_string() if crs is not None and crs.to_epsg() is not None else None
    proj.apply(
        code=code,
        wkt2=None if code else (crs.to_wkt() if crs is not None else None),
        shape=shape,
        transform=list(transform)[:6],
        bbox=list(bounds),
    )
    media = pystac.MediaType.COG if p.kind != "image" else pystac.MediaType.GEOTIFF
    asset = pystac.Asset(str(p.path), title=p.title, media_type=media, roles=["data"])
    item.add_asset("data", asset)
    RasterExtension.ext(asset, add_if_missing=True).apply(
        bands=[
            RasterBand.create(nodata=nodata, data_type=DataType(dtype), spatial_resolution=float(abs(res[0])))
            for _ in range(count)
        ]
    )
    _file_fields(asset, p)
    table = list(classes) if classes is not None else (read_classes(p.path) if p.kind != "image" else [])
    if table and p.kind in ("classmap", "truth", "change"):
        ClassificationExtension.ext(asset, add_if_missing=True).apply(
            classes=[
                Classification.create(
                    value=c.id,
                    name=_class_name(c.name),
                    title=c.name,
                    description=c.name,
                    color_hint="{:02X}{:02X}{:02X}".format(*c.colour),
                )
                for c in table
            ]
        )
    _add_extras(item, p)
    return item


def vector_item(p: Product) -> pystac.Item:
    """An Item for a GeoPackage: footprint of all its spatial layers, one asset."""
    import pyogrio

    bounds: list[float] | None = None
    crs = None
    for name, geom_type in pyogrio.list_layers(str(p.path)):
        if not geom_type:
            continue
        info = pyogrio.read_info(str(p.path), layer=name, force_total_bounds=True)
        b = info.get("total_bounds")
        if b is None or not all(map(_finite, b)):
            continue
        crs = crs or info.get("crs")
        bounds = list(b) if bounds is None else [min(bounds[0], b[0]), min(bounds[1], b[1]),
                                                  max(bounds[2], b[2]), max(bounds[3], b[3])]  # fmt: skip
    created = _mtime(p.path)
    dt, props = _properties(p, created)
    props["geoseg:layers"] = dict(p.layers)
    geom, bbox = (None, None) if bounds is None else _footprint(crs, tuple(bounds))  # type: ignore[arg-type]
    item = pystac.Item(p.item_id, geom, bbox, dt, props)
    asset = pystac.Asset(str(p.path), title=p.title, media_type=GPKG_MEDIA_TYPE, roles=["data"])
    item.add_asset("data", asset)
    _file_fields(asset, p)
    _add_extras(item, p)
    return item


def _finite(v: float) -> bool:
    import math

    return math.isfinite(v)


def _file_fields(asset: pystac.Asset, p: Product) -> None:
    FileExtension.ext(asset, add_if_missing=True).apply(
        size=p.path.stat().st_size, checksum=_multihash(p.sha256) if p.sha256 else None
    )


def _add_extras(item: pystac.Item, p: Product) -> None:
    for key, (path, media, role) in p.extra_assets.items():
        if path.exists():
            item.add_asset(key, pystac.Asset(str(path), media_type=media, roles=[role]))
    if PROCESSING_SCHEMA not in item.stac_extensions:
        item.stac_extensions.append(PROCESSING_SCHEMA)


def make_item(p: Product) -> pystac.Item:
    """The Item for ``p``, by kind."""
    return vector_item(p) if p.kind == "vector" else raster_item(p)


def write_stac(
    products: Sequence[Product],
    folder: PathLike,
    collection_id: str,
    description: str,
    title: str | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> tuple[Path, list[Path]]:
    """Write one Item per product and a Collection linking them into ``folder``.

    Hrefs are relative; a model (``kind="model"``: an MLM Item, :mod:`._stac_model`) is
    linked relatively when it lies under ``folder``'s parent (a model a workflow trained),
    else by its absolute path (a catalog model elsewhere). Models do not widen the
    Collection's extent: it describes the mapped data. Each file is written to a temporary
    name and renamed. Returns (collection path, item paths).
    """
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    docs: list[dict[str, Any]] = []
    for p in products:
        if p.kind == "model":
            from geoseg.inference import describe

            name = str(p.provenance.get("name") or p.path.stem)
            docs.append(
                model_item(describe(p.path), p.item_id, model_href(p.path, out, out.parent), name=name)
            )
            continue
        d = make_item(p).to_dict(include_self_link=False, transform_hrefs=False)
        for asset in d["assets"].values():
            asset["href"] = os.path.relpath(asset["href"], out)
        docs.append(d)
    ids = {d["id"] for d in docs}
    by_id = {p.item_id: p for p in products}
    data = [d for d in docs if by_id[d["id"]].kind != "model"]
    bboxes = [d["bbox"] for d in data if d.get("bbox")]
    times: list[datetime] = []
    for d in data:
        for key in ("datetime", "start_datetime", "end_datetime"):
            v = d["properties"].get(key)
            if isinstance(v, str):
                times.append(datetime.fromisoformat(v.replace("Z", "+00:00")))
    spatial = (
        [[min(b[0] for b in bboxes), min(b[1] for b in bboxes), max(b[2] for b in bboxes), max(b[3] for b in bboxes)]]
        if bboxes
        else [[-180.0, -90.0, 180.0, 90.0]]
    )  # fmt: skip
    extent = pystac.Extent(
        pystac.SpatialExtent(spatial),
        pystac.TemporalExtent([[min(times) if times else None, max(times) if times else None]]),
    )
    coll = pystac.Collection(
        collection_id, description, extent, title=title, license="other",
        extra_fields={"geoseg:provenance": dict(provenance or {})},
    )  # fmt: skip
    coll_path = out / "collection.json"
    written: list[Path] = []
    coll_dict = coll.to_dict(include_self_link=False, transform_hrefs=False)
    coll_dict["links"] = [
        {"rel": "root", "href": "./collection.json", "type": "application/json"},
        *({"rel": "item", "href": f"./{d['id']}.json", "type": "application/geo+json", "title": d["properties"]["title"]}
          for d in docs),
    ]  # fmt: skip
    for d in docs:
        d["collection"] = collection_id
        d["links"] = [
            {"rel": "collection", "href": "./collection.json", "type": "application/json"},
            {"rel": "parent", "href": "./collection.json", "type": "application/json"},
            {"rel": "root", "href": "./collection.json", "type": "application/json"},
        ]
        for src in by_id[d["id"]].derived_from:
            if src in ids:
                link = {"rel": "derived_from", "href": f"./{src}.json", "type": "application/geo+json"}
                if by_id[src].kind == "model":  # MLM: a prediction links to its model this way
                    link["title"] = f"model {by_id[src].provenance.get('name') or src}"
                d["links"].append(link)
        path = out / f"{d['id']}.json"
        _write_json(path, d)
        written.append(path)
    _write_json(coll_path, coll_dict)
    return coll_path, written


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def check_stac(d: Mapping[str, Any]) -> list[str]:
    """What an Item or Collection dict lacks, by the core STAC 1.x rules ([] when fine)."""
    problems: list[str] = []
    kind = d.get("type")
    if not isinstance(d.get("stac_version"), str):
        problems.append("stac_version missing")
    if not isinstance(d.get("id"), str) or not d.get("id"):
        problems.append("id missing")
    ext = d.get("stac_extensions", [])
    if not isinstance(ext, list) or not all(isinstance(e, str) and e.startswith("https://") for e in ext):
        problems.append("stac_extensions must be a list of schema URLs")
    links = d.get("links")
    if not isinstance(links, list) or not all(
        isinstance(x, dict) and "href" in x and "rel" in x for x in links
    ):
        problems.append("links must be a list of objects with href and rel")
    if kind == "Feature":
        geom = d.get("geometry", "missing")
        if geom == "missing":
            problems.append("geometry missing (null is allowed)")
        elif geom is not None:
            if not isinstance(geom, dict) or "type" not in geom or "coordinates" not in geom:
                problems.append("geometry is not GeoJSON")
            bbox = d.get("bbox")
            if not isinstance(bbox, list) or len(bbox) not in (4, 6):
                problems.append("bbox required with a geometry (4 or 6 numbers)")
            elif not (-180 <= bbox[0] <= bbox[2] <= 180 and -90 <= bbox[1] <= bbox[3] <= 90):
                problems.append(f"bbox {bbox} is not WGS 84 longitude/latitude")
        props = d.get("properties")
        if not isinstance(props, dict):
            problems.append("properties missing")
        else:
            if props.get("datetime") is None and not (
                props.get("start_datetime") and props.get("end_datetime")
            ):
                problems.append("datetime is null without start_datetime and end_datetime")
            for key in ("datetime", "start_datetime", "end_datetime", "created"):
                v = props.get(key)
                if v is not None and not _rfc3339(v):
                    problems.append(f"{key} {v!r} is not RFC 3339")
        assets = d.get("assets")
        if not isinstance(assets, dict) or not all(
            isinstance(a, dict) and "href" in a for a in assets.values()
        ):
            problems.append("assets must map keys to objects with href")
    elif kind == "Collection":
        for key in ("description", "license"):
            if not isinstance(d.get(key), str):
                problems.append(f"{key} missing")
        extent = d.get("extent", {})
        try:
            bboxes = extent["spatial"]["bbox"]
            intervals = extent["temporal"]["interval"]
            if not bboxes or not all(len(b) in (4, 6) for b in bboxes):
                problems.append("extent.spatial.bbox must hold bboxes")
            if not intervals or not all(len(i) == 2 for i in intervals):
                problems.append("extent.temporal.interval must hold [start, end] pairs")
        except (KeyError, TypeError):
            problems.append("extent.spatial.bbox and extent.temporal.interval required")
    else:
        problems.append(f"type {kind!r} is neither Feature (Item) nor Collection")
    return problems


def _rfc3339(value: Any) -> bool:
    if not isinstance(value, str) or "T" not in value:
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return value.endswith("Z") or "+" in value[10:] or "-" in value[10:]
