"""xarray integration: scenes as lazy DataArrays, lazy class maps, class-map COGs.

For notebook users who think in ``xarray``::

    scene = open_scene("s2.tif", chunks=512)              # dask-backed (band, y, x)
    classes = predict_xr(scene, "forest-s2-rgb")          # lazy uint8 (y, x), nodata 255
    classes.sel(x=slice(a, b), y=slice(c, d)).compute()   # predicts only the tiles it needs
    write_classmap(classes, "classes.tif")                # the class-map COG, block by block

``predict_xr`` tiles exactly as ``geoseg.pipeline.predict`` does (``Grid.tiles``: cores of
``tile_size``, read windows grown by ``overlap``, the last row and column slid back to keep
real context) and batches tiles the same way, calling the pipeline's own task function
(``predict_reads``) on pixels dask has gathered for each batch. The same model and options
therefore give the same classes, pixel for pixel, as ``geoseg predict``. The graph is built
with ``dask.delayed`` per batch rather than ``map_overlap``, because ``map_overlap``'s
fixed halo cannot express the slid-back edge tiles."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rioxarray  # also registers the .rio accessor
import xarray as xr

from geoseg.classes import CLASS_NODATA, ClassInfo, default_colour
from geoseg.errors import BadRasterError, GeosegError, ModelError
from geoseg.files import check_writable
from geoseg.inference._options import PredictSettings
from geoseg.raster import Grid, PixelWindow, Tile, batch_tiles, class_map_writer, open_raster

# One Predictor per process (pipeline._PREDICTORS); this lock stops two threads of the
# threaded scheduler from loading the same model at once.
_LOAD_LOCK = threading.Lock()


def _normalise_chunks(chunks: Any) -> Any:
    """An int means square spatial chunks with every band in each chunk."""
    if isinstance(chunks, int) and not isinstance(chunks, bool):
        return {"band": -1, "y": chunks, "x": chunks}
    return chunks


def open_scene(
    path_or_paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    bands: Sequence[str | int] | None = None,
    chunks: int | dict[str, int] | str | None = 512,
    band_names: Sequence[str] | None = None,
) -> xr.DataArray:
    """Open a raster (or single-band files stacked as bands) as a dask-backed DataArray.

    The result has dims ``(band, y, x)``, the band coordinate holding band names
    (descriptions, colour interpretation or ``band1..N``; ``band_names`` overrides them),
    the raw pixel dtype (no masking or scaling), ``rio.nodata`` set from the file(s), and
    the CRS and transform on ``rio``. ``bands`` selects bands by name or 1-based index.
    ``chunks`` is passed to ``rioxarray.open_rasterio``; an int ``n`` means ``n x n``
    pixels with all bands together. Pixels are read inside dask tasks.

    Files are validated by ``geoseg.io.open_raster`` first, so bad input fails with one
    clear message naming the file.
    """
    paths = [path_or_paths] if isinstance(path_or_paths, (str, os.PathLike)) else list(path_or_paths)
    source = open_raster(paths, bands=bands, band_names=band_names)
    chunks_: Any = _normalise_chunks(chunks)
    opened: dict[str, xr.DataArray] = {}
    parts = []
    for ref in source.bands:
        if ref.path not in opened:
            # lock=False: each dask task opens its own handle, so reads run in parallel
            raster = rioxarray.open_rasterio(ref.path, chunks=chunks_, mask_and_scale=False, lock=False)
            if not isinstance(raster, xr.DataArray):  # subdatasets (HDF/netCDF) come back as Datasets
                raise BadRasterError("has subdatasets; open one of them by its GDAL name", ref.path)
            opened[ref.path] = raster
        parts.append(opened[ref.path].isel(band=[ref.index - 1]))
    da = parts[0] if len(parts) == 1 else xr.concat(parts, dim="band", join="override")
    if source.dtype != da.dtype:
        da = da.astype(source.dtype)
    if chunks_ is not None and len(parts) > 1:
        da = da.chunk({"band": -1})
    da = da.assign_coords(band=list(source.band_names))
    attrs = {k: v for k, v in da.attrs.items() if k not in ("_FillValue", "long_name")}
    attrs["long_name"] = tuple(source.band_names)
    nodatavals = [r.nodata for r in source.bands]
    if any(v is not None for v in nodatavals) and len(set(map(str, nodatavals))) > 1:
        attrs["nodatavals"] = tuple(np.nan if v is None else v for v in nodatavals)
    da.attrs = attrs
    da = da.rio.write_crs(source.grid.crs) if source.grid.crs is not None else da
    da = da.rio.write_transform(source.grid.transform)
    return da.rio.write_nodata(source.nodata, encoded=False)


def _predict_batch(
    pixels: Sequence[np.ndarray],
    valids: Sequence[np.ndarray],
    tiles: Sequence[Tile],
    model_path: str,
    device: str,
    backend: str,
    threads: int,
    tta: bool = False,
    zoom: float = 1.0,
    input_scale: float | None = None,
) -> list[np.ndarray]:
    """One task: the class codes of each tile's core (255 for all-nodata tiles).

    The pixels were gathered by dask; from here on it is the pipeline's own task code.
    """
    from geoseg.inference._tasks import _predictor, predict_reads

    with _LOAD_LOCK:
        _predictor(model_path, device, backend, threads)  # load once, not once per thread
    results = predict_reads(
        list(zip(pixels, valids, strict=True)),
        tiles,
        model_path,
        device,
        backend,
        threads,
        tta=tta,
        zoom=zoom,
        input_scale=input_scale,
    )
    return [
        np.full(tile.core.shape, CLASS_NODATA, np.uint8) if classes is None else classes
        for tile, (_, classes, _) in zip(tiles, results, strict=True)
    ]


def _spatial_dims(da: xr.DataArray) -> tuple[Hashable, Hashable]:
    try:
        return da.rio.y_dim, da.rio.x_dim
    except Exception as exc:  # rioxarray raises its own MissingSpatialDimensionError
        raise BadRasterError(
            f"DataArray {da.name or ''} has no y/x dimensions rioxarray recognises ({exc})"
        ) from exc


def _select_bands(
    da: xr.DataArray,
    band_dim: Hashable | None,
    spec: Any,
    model_name: str,
    wanted: Sequence[str] | None = None,
) -> xr.DataArray:
    """``wanted`` bands (names in the band coordinate, or 1-based indices), else the model's
    bands by name when the band coordinate names them, else all in order."""
    names = (
        [str(v).lower() for v in da[band_dim].values]
        if band_dim is not None and band_dim in da.coords
        else []
    )
    if wanted and band_dim is not None:
        picks = []
        for w in wanted:
            if w.isdigit() and 1 <= int(w) <= da.sizes[band_dim]:
                picks.append(int(w) - 1)
            elif w.lower() in names:
                picks.append(names.index(w.lower()))
            else:
                raise ModelError(
                    f"bands: the DataArray has no band {w!r} (it has {names or da.sizes[band_dim]})"
                )
        da = da.isel({band_dim: picks})
        names = [names[i] for i in picks] if names else []
    n = 1 if band_dim is None else da.sizes[band_dim]
    if names and not wanted and all(b.lower() in names for b in spec.bands):
        return da.isel({band_dim: [names.index(b.lower()) for b in spec.bands]})
    if n != len(spec.bands):
        have = list(map(str, da[band_dim].values)) if band_dim is not None and band_dim in da.coords else n
        raise ModelError(
            f"{model_name} expects {len(spec.bands)} bands ({', '.join(spec.bands)}) but the DataArray "
            f"has {n} ({have}); select bands first, e.g. da.sel(band=[...])"
        )
    return da


def _valid_mask(data: Any, nodata: Any) -> Any:
    """Lazy ``(y, x)`` mask: True where every band is finite and differs from its nodata."""
    import dask.array as dsa

    ok = dsa.ones(data.shape[1:], dtype=bool, chunks=data.chunks[1:])
    if np.issubdtype(data.dtype, np.floating):
        ok = ok & dsa.isfinite(data).all(axis=0)
    if nodata is None:
        return ok
    values = np.atleast_1d(np.asarray(nodata, dtype=np.float64))
    if values.size == 1:
        if np.isnan(values[0]):
            return ok
        return ok & (data != values[0]).all(axis=0)
    for b, value in enumerate(values):
        if not np.isnan(value):
            ok = ok & (data[b] != value)
    return ok


def _class_attrs(classes: Sequence[ClassInfo], model_name: str) -> dict[str, Any]:
    """Class ids and names in CF ``flag_values``/``flag_meanings`` form, plus geoseg's JSON."""
    return {
        "long_name": "land cover class",
        "flag_values": np.array([c.id for c in classes], dtype=np.uint8),
        "flag_meanings": " ".join(c.name.replace(" ", "_") for c in classes),
        "class_names": [c.name for c in classes],
        "geoseg_classes": json.dumps(
            [{"id": c.id, "name": c.name, "colour": list(c.colour)} for c in classes]
        ),
        "geoseg_model": model_name,
    }


def predict_xr(
    da: xr.DataArray,
    model: str | os.PathLike[str],
    options: PredictSettings | None = None,
    **keywords: Any,
) -> xr.DataArray:
    """Lazy class map of a ``(band, y, x)`` DataArray -> uint8 ``(y, x)`` DataArray.

    ``model`` is a checkpoint path or a catalog model name. Bands are picked by name when
    the band coordinate carries the model's band names, else all bands are used in order.
    Pixels equal to the input's nodata (``rio.nodata``, or per-band ``nodatavals``) or not
    finite are invalid; invalid pixels come out as 255, and tiles with no valid pixel are
    never run through the model. The result keeps the input's y/x coordinates, CRS and
    transform, has ``rio.nodata`` 255, and carries the classes in its attrs
    (``flag_values``, ``flag_meanings``, ``class_names``, ``geoseg_classes``).

    Nothing is computed here: each batch of ``batch_size`` tiles is one dask task, run by
    whatever scheduler computes the result (threads, processes or a distributed cluster).
    ``options`` (or the same by name in ``keywords``) are those of :func:`predict` but
    where it runs: ``threads`` is the torch/ONNX thread count per running task.
    """
    import dask
    import dask.array as dsa
    from dask.base import tokenize

    from geoseg.files import file_sha256
    from geoseg.inference._device import resolve_backend, resolve_device
    from geoseg.inference._model import read_spec, resolve_model_path
    from geoseg.inference._pipeline import _ensure_onnx_export

    opts = PredictSettings.build({**(options.model_dump() if options else {}), **keywords})
    model_path = resolve_model_path(model).resolve()
    spec = read_spec(model_path)
    if opts.zoom is None:
        opts = opts.replace(zoom=spec.zoom)
    y_dim, x_dim = _spatial_dims(da)
    band_dims = [d for d in da.dims if d not in (y_dim, x_dim)]
    if len(band_dims) > 1:
        raise GeosegError(
            f"expected dims (band, {y_dim}, {x_dim}), got {da.dims}; select or stack the others"
        )
    band_dim = band_dims[0] if band_dims else None
    nodata = da.attrs.get("nodatavals", da.rio.nodata)
    if band_dim is not None and "nodatavals" in da.attrs and band_dim in da.coords:
        # keep per-band nodata in step with the band selection below
        nodata = dict(zip(map(str, da[band_dim].values), np.atleast_1d(da.attrs["nodatavals"]), strict=False))
    da = _select_bands(da, band_dim, spec, model_path.name, opts.bands)
    if isinstance(nodata, dict):
        nodata = [nodata[str(v)] for v in da[band_dim].values]
    da = da.transpose(band_dim, y_dim, x_dim) if band_dim is not None else da.expand_dims("band", axis=0)
    dev = resolve_device(opts.device)
    be = resolve_backend(opts.backend, dev)
    if be == "onnx":
        be = _ensure_onnx_export(model_path, opts.backend)  # once here, not racing in every task

    height, width = da.shape[1], da.shape[2]
    grid = Grid((height, width), da.rio.transform(), da.rio.crs)
    data = da.data
    if not isinstance(data, dsa.Array):
        data = dsa.from_array(data, chunks=(-1, opts.tile_size, opts.tile_size))
    data = data.rechunk((-1, opts.tile_size, opts.tile_size))
    valid = _valid_mask(data, nodata)
    tiles = grid.tiles(opts.tile_size, opts.overlap)
    ov = opts.overlap
    after_r = max(t.read.row_end for t in tiles) - height
    after_c = max(t.read.col_end for t in tiles) - width
    scalar_nodata = None if nodata is None or np.ndim(nodata) else float(nodata)
    fill = _fill_value(data.dtype, scalar_nodata)
    padded = dsa.pad(data, ((0, 0), (ov, after_r), (ov, after_c)), mode="constant", constant_values=fill)
    vpadded = dsa.pad(valid, ((ov, after_r), (ov, after_c)), mode="constant", constant_values=False)

    token = tokenize(data, str(model_path), file_sha256(model_path), opts, be, dev)
    n_rows, n_cols = max(t.row for t in tiles) + 1, max(t.col for t in tiles) + 1
    blocks: list[list[Any]] = [[None] * n_cols for _ in range(n_rows)]
    n = opts.batch_for(dev)
    for i, batch in enumerate(batch_tiles(tiles, n)):  # the pipeline's batches
        rs = [slice(t.read.row_off + ov, t.read.row_end + ov) for t in batch]
        cs = [slice(t.read.col_off + ov, t.read.col_end + ov) for t in batch]
        pixels = [padded[:, r, c] for r, c in zip(rs, cs, strict=True)]
        valids = [vpadded[r, c] for r, c in zip(rs, cs, strict=True)]
        cores = dask.delayed(_predict_batch, pure=True)(
            pixels,
            valids,
            batch,
            str(model_path),
            dev,
            be,
            opts.threads,
            opts.tta,
            opts.zoom,
            opts.input_scale,
            dask_key_name=f"predict_xr-{token}-{i}",
        )
        for k, tile in enumerate(batch):
            blocks[tile.row][tile.col] = dsa.from_delayed(cores[k], shape=tile.core.shape, dtype=np.uint8)
    classes = dsa.block(blocks)

    coords = {k: v for k, v in da.coords.items() if not set(v.dims) - {y_dim, x_dim}}
    out = xr.DataArray(classes, dims=(y_dim, x_dim), coords=coords, name="classes")
    out.attrs = _class_attrs(spec.classes, model_path.name)
    if grid.crs is not None:
        out = out.rio.write_crs(grid.crs)
    out = out.rio.write_transform(grid.transform)
    return out.rio.write_nodata(CLASS_NODATA, encoded=False)


def _fill_value(dtype: np.dtype[Any], nodata: float | None) -> Any:
    """What padding past the edge holds: nodata when it fits the dtype, else 0 (it is masked anyway)."""
    if nodata is None or np.isnan(nodata):
        return dtype.type(0)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        if not (float(nodata).is_integer() and info.min <= nodata <= info.max):
            return dtype.type(0)
    return dtype.type(nodata)


def _classes_of(da: xr.DataArray) -> list[ClassInfo]:
    """The class table from ``predict_xr``'s attrs (or CF flag attrs) of a class DataArray."""
    if "geoseg_classes" in da.attrs:
        return [
            ClassInfo(int(c["id"]), str(c["name"]), tuple(c["colour"]))
            for c in json.loads(da.attrs["geoseg_classes"])
        ]
    if "flag_values" in da.attrs:
        ids = [int(v) for v in np.atleast_1d(da.attrs["flag_values"])]
        names = str(da.attrs.get("flag_meanings", "")).split() or [f"class{i}" for i in ids]
        return [ClassInfo(i, n, default_colour(i)) for i, n in zip(ids, names, strict=False)]
    raise GeosegError(
        "the DataArray carries no class table (attrs 'geoseg_classes' or 'flag_values'); "
        "pass classes=[ClassInfo(...), ...]"
    )


class _WindowTarget:
    """A ``dask.array.store`` target that writes each block at its window of the grid."""

    def __init__(self, writer: Any) -> None:
        self.writer = writer

    def __setitem__(self, key: tuple[slice, slice], value: np.ndarray) -> None:
        rows, cols = key
        self.writer.write(
            PixelWindow(rows.start, cols.start, rows.stop - rows.start, cols.stop - cols.start), value
        )


def _distributed_client() -> Any:
    try:
        from distributed import default_client

        return default_client()
    except (ImportError, ValueError):
        return None


def write_classmap(
    da_classes: xr.DataArray,
    path: str | os.PathLike[str],
    classes: Sequence[ClassInfo] | None = None,
    tags: dict[str, str] | None = None,
) -> Path:
    """Write a ``(y, x)`` class DataArray as geoseg's class-map COG, block by block.

    Each dask block is computed and written at its window (``geoseg.io.class_map_writer``:
    uint8, nodata 255, colour table, class names, overviews with mode resampling); the
    whole map is never in memory. Under a local scheduler ``dask.array.store`` computes the
    blocks once, in parallel, writing under a lock; with a ``distributed`` client active the
    blocks are computed on the cluster and written here as they arrive (a ``processes``
    scheduler is replaced by threads here: the open file cannot travel to other
    processes). The output appears only when complete.
    """
    import dask.array as dsa
    import dask.multiprocessing
    from dask.base import get_scheduler

    if da_classes.ndim != 2:
        raise GeosegError(f"a class map has 2 dims (y, x), got {da_classes.dims}")
    out = check_writable(path)
    table = list(classes) if classes is not None else _classes_of(da_classes)
    grid = Grid(tuple(da_classes.shape), da_classes.rio.transform(), da_classes.rio.crs)  # type: ignore[arg-type]
    all_tags = dict(tags or {})
    if "geoseg_model" in da_classes.attrs:
        all_tags.setdefault("GEOSEG_MODEL", str(da_classes.attrs["geoseg_model"]))
    data = da_classes.data
    if not isinstance(data, dsa.Array):
        data = dsa.from_array(np.asarray(data), chunks=(1024, 1024))
    writer = class_map_writer(out, grid, table, all_tags)
    try:
        client = _distributed_client()
        if client is None:
            target: Any = _WindowTarget(writer)
            processes = get_scheduler(collections=[data]) is dask.multiprocessing.get
            dsa.store(data, target, lock=threading.Lock(), scheduler="threads" if processes else None)
        else:
            _write_from_cluster(client, data, writer)
        writer.finish()
    except BaseException:
        writer.abort()
        raise
    return out


def _write_from_cluster(client: Any, data: Any, writer: Any) -> None:
    """Compute every block on the cluster; write each here as it arrives, then drop it."""
    from itertools import product

    from distributed import as_completed

    starts = [np.cumsum((0, *c[:-1])) for c in data.chunks]
    windows = {}
    index = list(product(range(data.numblocks[0]), range(data.numblocks[1])))
    futures = client.compute([data.blocks[i, j] for i, j in index])
    for (i, j), future in zip(index, futures, strict=True):
        windows[future.key] = PixelWindow(
            int(starts[0][i]), int(starts[1][j]), data.chunks[0][i], data.chunks[1][j]
        )
    for future in as_completed(futures):
        writer.write(windows[future.key], future.result())
        future.release()
