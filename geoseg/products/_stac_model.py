"""A STAC Item for a checkpoint, with the Machine Learning Model (MLM) extension v1.5.2.

What a checkpoint records (``geoseg.inference.describe``) maps onto MLM as follows:

- ``mlm:name`` (the model's name, made to fit MLM's pattern), ``mlm:architecture`` (the
  smp architecture, e.g. ``Unet``), ``mlm:tasks`` ``["semantic-segmentation"]``,
  ``mlm:framework`` PyTorch (with ``mlm:framework_version`` when the checkpoint recorded
  torch's version), ``mlm:total_parameters``, ``mlm:pretrained`` false with
  ``mlm:pretrained_source`` null (geoseg trains its encoders from scratch: no weights are
  downloaded), ``mlm:hyperparameters`` (encoder, zoom, the extra smp arguments).
- One ``mlm:input`` named ``image``: the band names in order, a float32 tensor
  ``[batch, bands, height, width]`` of any size, and the per-band normalisation as z-score
  ``value_scaling`` (mean, std); ``resize_type`` bilinear when the model sees tiles zoomed.
  MLM requires bands that inputs name to be described too: they are the model asset's
  ``raster:bands`` (raster extension; STAC 1.1's own ``bands`` in the properties would
  need bands on an asset as well, by the 1.1.0 Item schema). The input's value domain
  (data type, range, scale) and pixel size, when the checkpoint records them
  (``domain`` of ``describe``), go into each of those bands (``data_type``,
  ``statistics``, ``scale``) and ``gsd``.
- One ``mlm:output`` named ``classes``: float32 scores ``[batch, class, height, width]``,
  channel *k* being the class ``classification:classes[k]`` (value, name, description,
  colour); the class map is their argmax.
- The asset ``model``: the ``.safetensors`` file with roles ``mlm:model`` and
  ``mlm:weights``, ``mlm:artifact_type`` ``safetensors.torch.save_file``, its size and
  sha256 (file extension).
- geoseg's own record (training data, metrics, configuration, version) as
  ``geoseg:provenance``; the per-epoch history stays in the checkpoint.

A model has no footprint: the geometry is null. Its ``datetime`` is when the file was
written (a checkpoint records no training date).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from geoseg import __version__

MLM_SCHEMA = "https://stac-extensions.github.io/mlm/v1.5.2/schema.json"
FILE_SCHEMA = "https://stac-extensions.github.io/file/v2.1.0/schema.json"
RASTER_SCHEMA = "https://stac-extensions.github.io/raster/v1.1.0/schema.json"
PROCESSING_SCHEMA = "https://stac-extensions.github.io/processing/v1.2.0/schema.json"
SAFETENSORS_MEDIA_TYPE = "application/octet-stream; application=safetensors"

_SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$")


def mlm_name(name: str) -> str:
    """``name`` made to fit MLM's pattern (a letter first, letters, digits, ``_.-`` and
    spaces inside, a letter or digit last)."""
    text = re.sub(r"[^A-Za-z0-9_.\- ]", "-", name).strip(" _.-")
    text = re.sub(r"^[^A-Za-z]+", "", text)
    return text if len(text) >= 3 else f"model-{text or 'geoseg'}"


def class_name(name: str) -> str:
    """Classification names match ``^[0-9A-Za-z-_]+$``: spaces and arrows become ``_``."""
    out = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name.replace(" -> ", "_to_"))
    return out or "class"


def _class_objects(classes: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "value": int(c["id"]),
            "name": class_name(str(c["name"])),
            "description": str(c["name"]),
            "color_hint": "{:02X}{:02X}{:02X}".format(*c["colour"]),
        }
        for c in classes
    ]


def _raster_bands(info: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The input bands as raster-extension band objects, with the value domain when known:
    the training rasters' data type, each band's 1st and 99th percentile as its range, and
    a declared scale/offset to physical values (``describe()["domain"]``)."""
    domain = info.get("domain") or {}
    bands: list[dict[str, Any]] = []
    for k, name in enumerate(info["bands"]):
        band: dict[str, Any] = {"name": str(name)}
        if domain.get("dtype"):
            band["data_type"] = str(domain["dtype"])
        if domain.get("low") and domain.get("high"):
            band["statistics"] = {"minimum": float(domain["low"][k]), "maximum": float(domain["high"][k])}
        if domain.get("scale") is not None:
            band["scale"] = float(domain["scale"])
            band["offset"] = float(domain.get("offset") or 0.0)
        bands.append(band)
    return bands


def model_item(
    info: Mapping[str, Any],
    item_id: str,
    href: str,
    *,
    name: str | None = None,
    created: datetime | None = None,
) -> dict[str, Any]:
    """The MLM STAC Item (a dict, as written to JSON) of the checkpoint ``info`` describes.

    ``info`` is :func:`geoseg.inference.describe`'s dict (path, sha256, arch, encoder,
    bands, mean, std, classes, parameters, kwargs, zoom, provenance; ``domain``
    {dtype, minimum, maximum, scale, pixel_size} when the checkpoint records one);
    ``href`` the model asset's link (relative to where the Item is written); ``name`` the
    model's name (default: the file's stem).
    """
    path = Path(info["path"])
    label = name or path.stem
    made = created or datetime.fromtimestamp(path.stat().st_mtime, tz=timezone.utc).replace(microsecond=0)
    stamp = made.isoformat().replace("+00:00", "Z")
    prov = dict(info.get("provenance") or {})
    prov.pop("history", None)  # per-epoch losses: in the checkpoint, not in the catalog
    kwargs = dict(info.get("kwargs") or {})
    bands = list(info["bands"])
    zoom = float(info.get("zoom", 1.0))
    model_input: dict[str, Any] = {
        "name": "image",
        "description": "the image's bands in this order, each normalised as (value - mean) / std",
        "bands": bands,
        "input": {
            "shape": [-1, len(bands), -1, -1],
            "dim_order": ["batch", "bands", "height", "width"],
            "data_type": "float32",
        },
        "value_scaling": [
            {"type": "z-score", "mean": float(m), "stddev": float(s)}
            for m, s in zip(info["mean"], info["std"], strict=True)
        ],
        "resize_type": "interpolation-linear" if zoom != 1 else None,
    }
    classes = list(info["classes"])
    model_output = {
        "name": "classes",
        "description": "per-class scores; channel k is class classification:classes[k], the class map their argmax",
        "tasks": ["semantic-segmentation"],
        "result": {
            "shape": [-1, len(classes), -1, -1],
            "dim_order": ["batch", "class", "height", "width"],
            "data_type": "float32",
        },
        "classification:classes": _class_objects(classes),
    }
    hyper: dict[str, Any] = {"encoder": info["encoder"], "zoom": zoom, **kwargs}
    props: dict[str, Any] = {
        "title": f"{label}: {info['arch']} / {info['encoder']}, {len(bands)} bands, {len(classes)} classes",
        "description": f"A geoseg segmentation model ({info['arch']} with a {info['encoder']} encoder) "
        f"mapping {', '.join(bands)} to {', '.join(str(c['name']) for c in classes)}.",
        "datetime": stamp,
        "created": stamp,
        "mlm:name": mlm_name(label),
        "mlm:architecture": str(info["arch"]),
        "mlm:tasks": ["semantic-segmentation"],
        "mlm:framework": "PyTorch",
        "mlm:total_parameters": int(info["parameters"]),
        "mlm:pretrained": False,
        "mlm:pretrained_source": None,
        "mlm:input": [model_input],
        "mlm:output": [model_output],
        "mlm:hyperparameters": {k: v for k, v in hyper.items() if re.fullmatch(r"[0-9a-zA-Z_.-]+", k)},
        "geoseg:provenance": prov,
        "geoseg:sha256": info["sha256"],
        "processing:software": {"geoseg": __version__},
    }
    version = str(prov.get("torch_version") or "")
    if _SEMVER.match(version):
        props["mlm:framework_version"] = version
    domain = info.get("domain") or {}
    if domain.get("pixel_size_m"):
        props["gsd"] = float(domain["pixel_size_m"])
    extensions = [MLM_SCHEMA, RASTER_SCHEMA, FILE_SCHEMA, PROCESSING_SCHEMA]
    asset = {
        "href": href,
        "type": SAFETENSORS_MEDIA_TYPE,
        "title": f"{label} weights and model spec (safetensors; loads without pickle)",
        "roles": ["mlm:model", "mlm:weights", "data"],
        "mlm:artifact_type": "safetensors.torch.save_file",
        "raster:bands": _raster_bands(info),
        "file:size": path.stat().st_size,
        "file:checksum": "1220" + str(info["sha256"]),  # multihash: sha2-256, 32 bytes
    }
    return {
        "type": "Feature",
        "stac_version": "1.1.0",
        "stac_extensions": extensions,
        "id": item_id,
        "geometry": None,
        "properties": props,
        "links": [],
        "assets": {"model": asset},
    }


def model_href(model: Path, folder: Path, base: Path | None = None) -> str:
    """The model file as an Item in ``folder`` links to it: relative when the model lies
    under ``base`` (default ``folder``; a workflow's output folder, so products and the
    models they trained move together), else absolute (a catalog model elsewhere)."""
    model, folder = model.resolve(), folder.resolve()
    try:
        model.relative_to((base or folder).resolve())
    except ValueError:
        return str(model)
    return os.path.relpath(model, folder)


def write_model_item(
    model: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    item_id: str | None = None,
) -> Path:
    """Write the MLM STAC Item of the checkpoint ``model`` (a path or a catalog name) to ``out``.

    The asset links to the checkpoint relatively when it lies in ``out``'s folder or below,
    else by its absolute path. Nothing is left at ``out`` if anything fails.
    """
    import json

    from geoseg.files import atomic_output, check_writable
    from geoseg.inference import describe

    target = check_writable(out, [model])
    info = describe(model)
    name = str(model) if not Path(model).exists() and "/" not in str(model) else Path(info["path"]).stem
    ident = item_id or slug_id(name)
    d = model_item(info, ident, model_href(Path(info["path"]), target.parent), name=name)
    with atomic_output(target) as tmp:
        tmp.write_text(json.dumps(d, indent=2) + "\n", encoding="utf-8")
    return target


def slug_id(text: str) -> str:
    """An Item id from a name: letters, digits, ``-`` and ``_``."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-") or "model"
