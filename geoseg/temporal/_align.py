"""Class maps of several dates on one reference grid, read block by block.

Change and loss only mean something where every date describes the same pixel, so every
comparison starts here. Maps on the reference grid (the first map's unless another is
named; equivalent CRSs written differently count as equal) are read as they are. Any
other map is reprojected onto the reference grid inside each block task through a GDAL
``WarpedVRT`` with nearest-neighbour resampling, so classes are never blended and no
reprojected copy of the whole map is made. Maps whose extents do not overlap the
reference are refused before any work. Pixels that are nodata in a map, outside it, or
hold a value missing from the class table, are invalid for that date.

Any single-band integer raster is a class map. Its classes are named by geoseg's
metadata, a raster attribute table, category names or a QGIS style beside it
(:func:`geoseg.raster.find_classes`), with a legend the user gives over them; maps
must not name one id differently. A map that geoseg did not write may hold values its
names leave out (or have no names at all), so its values are found first, block by block,
and the ones nothing names become classes named by their ids ("3").

The small parsers the CLI and workflows share with :mod:`geoseg.change` and
:mod:`geoseg.track` (class names or ids, dates) live here too: they check arguments
against the maps' class table and dates."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import rasterio
from rasterio.enums import Resampling

from geoseg.classes import CLASS_NODATA, ClassInfo
from geoseg.errors import BadRasterError, ConfigError, GridMismatchError, MissingFileError
from geoseg.raster import (
    GDAL_ENV,
    ClassTable,
    Grid,
    LegendEntry,
    PixelWindow,
    RasterSource,
    class_values,
    find_classes,
    open_raster,
    read_window,
)

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class ClassMap:
    """One dated class map as it is read on the reference grid."""

    source: RasterSource  # its own grid, band 1, nodata (255 when it declares none)
    warp: bool  # reprojected onto the reference grid when read
    date: str | None = None

    @property
    def path(self) -> str:
        return self.source.paths[0]

    @property
    def nodata(self) -> float:
        return float(self.source.nodata) if self.source.nodata is not None else float(CLASS_NODATA)


@dataclass(frozen=True)
class AlignedMaps:
    """Class maps of several dates, read block by block on one reference grid."""

    grid: Grid
    classes: tuple[ClassInfo, ...]
    maps: tuple[ClassMap, ...]

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def class_ids(self) -> np.ndarray:
        return np.array([c.id for c in self.classes], dtype=np.int64)

    def read_index(self, i: int, window: PixelWindow) -> np.ndarray:
        """Class *indices* (positions in ``classes``) of map ``i`` on ``window``; -1 = invalid."""
        values, valid = read_aligned(self.maps[i], self.grid, window)
        return to_index(values, valid, self.class_ids)

    def paths(self) -> list[str]:
        return [m.path for m in self.maps]


def _open_class_map(path: PathLike) -> RasterSource:
    p = str(path)
    if not p.startswith("/vsi") and not os.path.exists(p):
        raise MissingFileError("no such file; check the path", p)
    src = open_raster(p)
    if src.count != 1:
        raise BadRasterError(
            f"has {src.count} bands; a class map has one (pick one with `gdal_translate -b N`, "
            "or classify imagery first)",
            p,
        )
    if np.dtype(src.dtype).kind not in "ui":
        raise BadRasterError(f"holds {src.dtype} values; a class map holds integer class ids", p)
    if src.nodata is None:
        src = RasterSource(src.bands, src.grid, src.dtype, float(CLASS_NODATA), src.uses_mask)
    return src


def _describe_classes(classes: Sequence[ClassInfo]) -> str:
    return ", ".join(f"{c.id}={c.name}" for c in sorted(classes, key=lambda c: c.id))


#: at most this many classes: a uint8 class map's values besides nodata
MAX_CLASSES = 255


def align_maps(
    paths: Sequence[PathLike],
    reference: PathLike | Grid | int | None = None,
    dates: Sequence[str] | None = None,
    classes: Sequence[ClassInfo] | None = None,
    legend: Sequence[LegendEntry] | None = None,
    legend_file: PathLike | None = None,
) -> AlignedMaps:
    """Validate class maps and put them on one grid (only maps geoseg did not write are read).

    ``reference``: the index of one of the maps (default 0), the path of any raster whose
    grid to use, or a ``Grid``. The class table is what the maps name (they must not name
    one id differently), with ``legend`` over it (from ``legend_file`` when given: then
    every value the maps hold must be named), and the values nothing names named by
    their ids; ``classes`` instead overrides it all. Raises ``GridMismatchError`` for a
    map that does not overlap the reference grid.
    """
    if not paths:
        raise ConfigError("no class maps given")
    sources = [_open_class_map(p) for p in paths]
    if isinstance(reference, Grid):
        grid, ref_name = reference, "the reference grid"
    elif reference is None or isinstance(reference, int):
        k = reference or 0
        if not 0 <= k < len(sources):
            raise ConfigError(f"reference map {k} is out of range: there are {len(sources)} maps")
        grid, ref_name = sources[k].grid, sources[k].paths[0]
    else:
        ref_src = open_raster(reference)
        grid, ref_name = ref_src.grid, str(reference)

    if classes is None:
        classes = _class_table(sources, legend, legend_file)
    classes = sorted(classes, key=lambda c: c.id)
    if len({c.id for c in classes}) != len(classes):
        raise ConfigError("the class table lists a class id twice")
    if len(classes) > MAX_CLASSES:
        raise ConfigError(f"{len(classes)} classes: at most {MAX_CLASSES} are supported")

    maps = []
    for k, src in enumerate(sources):
        warp = not src.grid.same_as(grid)
        if warp:
            _check_overlap(src, grid, ref_name)
        maps.append(ClassMap(src, warp, dates[k] if dates is not None else None))
    return AlignedMaps(grid, tuple(classes), tuple(maps))


def _class_table(
    sources: Sequence[RasterSource], legend: Sequence[LegendEntry] | None, legend_file: PathLike | None
) -> list[ClassInfo]:
    """The classes of several maps: their names merged, the legend over them, unnamed values by id."""
    named: dict[int, tuple[ClassInfo, str]] = {}  # id -> class, the map that named it
    palette: dict[int, tuple[int, int, int]] = {}
    values: set[int] = set()
    for src in sources:
        path = src.paths[0]
        own = find_classes(path)
        table = own.with_legend(legend)
        for c in table.classes:
            seen = named.get(c.id)
            if seen is not None and seen[0].name != c.name:
                raise BadRasterError(
                    f"names class {c.id} {c.name!r} but {seen[1]} names it {seen[0].name!r} "
                    f"(it has classes {_describe_classes(table.classes)}); change is only defined between maps "
                    "with the same class table: give one legend for all with --legend or --classes",
                    path,
                )
            named.setdefault(c.id, (c, path))
        for k, v in own.palette.items():
            palette.setdefault(k, v)
        if not own.from_geoseg:  # geoseg's own maps hold only the classes of their table
            found = class_values(src, MAX_CLASSES)
            if len(found) > MAX_CLASSES:
                raise BadRasterError(
                    f"holds more than {MAX_CLASSES} distinct values: not a class map (imagery? "
                    "classify it first, e.g. with track --spectral)",
                    path,
                )
            values.update(found)
    merged = ClassTable(tuple(c for c, _ in (named[i] for i in sorted(named))), "maps", palette)
    missing = sorted(values - set(named))
    if legend_file is not None and missing:
        listed = ", ".join(map(str, sorted(named)))
        raise ConfigError(
            f"does not match the maps: they hold class {missing[0]}"
            f"{' (and ' + str(len(missing) - 1) + ' more)' if len(missing) > 1 else ''} but the legend "
            f"names only {listed}; pass the legend that goes with these maps",
            legend_file,
        )
    return list(merged.with_values(missing).classes)


def _check_overlap(src: RasterSource, grid: Grid, ref_name: str) -> None:
    from rasterio.warp import transform_bounds

    path = src.paths[0]
    if src.grid.crs is None or grid.crs is None:
        raise GridMismatchError("has no CRS, so it cannot be aligned with the other maps", path)
    try:
        left, bottom, right, top = transform_bounds(src.grid.crs, grid.crs, *src.grid.bounds, densify_pts=21)
    except Exception as exc:
        raise GridMismatchError(
            f"cannot be brought into the CRS of {ref_name} ({exc}); reproject it first with gdalwarp", path
        ) from exc
    g_left, g_bottom, g_right, g_top = grid.bounds
    finite = all(math.isfinite(v) for v in (left, bottom, right, top))
    if not finite or min(right, g_right) <= max(left, g_left) or min(top, g_top) <= max(bottom, g_bottom):
        raise GridMismatchError(
            f"does not overlap {ref_name} (its extent {src.grid.describe()} vs {grid.describe()}); "
            "give maps of the same area",
            path,
        )


def read_aligned(m: ClassMap, grid: Grid, window: PixelWindow) -> tuple[np.ndarray, np.ndarray]:
    """Raw class values of ``m`` on ``window`` of ``grid`` and the valid mask."""
    if not m.warp:
        data, valid = read_window(m.source, window)
        return data[0], valid
    from rasterio.vrt import WarpedVRT

    nodata = m.nodata
    inside = window.intersection(grid.window)
    values = np.full(window.shape, nodata, dtype=m.source.dtype)
    valid = np.zeros(window.shape, dtype=bool)
    if inside is None:
        return values, valid
    # The VRT fills everything outside the source with the source's own nodata, so one
    # comparison marks both nodata and "off the map" as invalid.
    with (
        rasterio.Env(**GDAL_ENV),
        rasterio.open(m.path) as ds,
        WarpedVRT(
            ds,
            crs=grid.crs,
            transform=grid.transform,
            width=grid.width,
            height=grid.height,
            resampling=Resampling.nearest,
            src_nodata=nodata,
            nodata=nodata,
        ) as vrt,
    ):
        part = vrt.read(1, window=inside.to_rasterio())
    dst = inside.relative_to(window).slices()
    values[dst] = part
    valid[dst] = part != nodata
    return values, valid


def to_index(values: np.ndarray, valid: np.ndarray, class_ids: np.ndarray) -> np.ndarray:
    """Class ids -> positions in ``class_ids`` (sorted); -1 where invalid or not a class."""
    v = values.astype(np.int64, copy=False)
    pos = np.searchsorted(class_ids, v)
    pos = np.minimum(pos, len(class_ids) - 1)
    known = valid & (class_ids[pos] == v)
    return np.where(known, pos, -1).astype(np.int16)


def resolve_classes(
    wanted: Sequence[str | int] | None, classes: Sequence[ClassInfo], what: str, where: str | None = None
) -> list[int]:
    """Class names or ids -> indices into ``classes``; every class when ``wanted`` is empty."""
    if not wanted:
        return list(range(len(classes)))
    by_name = {c.name.lower(): k for k, c in enumerate(classes)}
    by_id = {c.id: k for k, c in enumerate(classes)}
    out: list[int] = []
    for w in wanted:
        text = str(w).strip()
        k = by_name.get(text.lower())
        if k is None and re.fullmatch(r"\d+", text):
            k = by_id.get(int(text))
        if k is None:
            raise ConfigError(
                f"{what} {text!r} is not a class of {where or 'the maps'} (classes: {_describe_classes(classes)}); "
                "give one of those names or ids"
            )
        if k not in out:
            out.append(k)
    return out
