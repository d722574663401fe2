"""``geoseg vectorize``: class map -> polygon layer (GeoPackage, GeoParquet, FlatGeobuf, PMTiles or GeoJSON)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from geoseg.cli._options import from_flags, options
from geoseg.cli._progress import progress_bar
from geoseg.vector import DEFAULT_LAYER, VectorizeOptions


@click.command("vectorize")
@click.argument("classmap", type=click.Path(path_type=Path))
@click.option(
    "--out", "-o", required=True, type=click.Path(path_type=Path),
    help="Output file; the format follows the extension: .gpkg (GeoPackage), .parquet (GeoParquet), "
    ".fgb (FlatGeobuf), .pmtiles (vector tiles, zoom levels from the pixel size) or .geojson.",
)  # fmt: skip
@options(VectorizeOptions)
def command(classmap: Path, out: Path, **flags: Any) -> None:
    """Turn the class map CLASSMAP into polygons with class, area (ha) and perimeter (m).

    Polygons are built block by block on Dask and merged across block seams, so they are
    the same as polygonising the whole raster at once.
    """
    from geoseg.api import vectorize

    opts = from_flags(VectorizeOptions, flags)
    with progress_bar("vectorize", unit="block") as bar:
        result = vectorize(classmap, out, opts.replace(layer=opts.layer or DEFAULT_LAYER), progress=bar)
    sieved = (
        f", {result.sieved_pixels:,} pixels below the minimum area reassigned" if opts.min_area_ha else ""
    )
    click.echo(
        f"{result.polygons:,} polygons ({result.seam_polygons:,} across block seams) -> "
        f"{result.path} layer {result.layer!r} in {result.seconds:.1f} s, "
        f"{result.megapixels_per_second:.1f} megapixels/s{sieved}"
    )
