"""``geoseg vectorize``: class map -> polygon layer (GeoPackage, FlatGeobuf or GeoJSON)."""

from __future__ import annotations

from pathlib import Path

import click

from geoseg.cli._options import block_options
from geoseg.cli._progress import progress_bar


@click.command("vectorize")
@click.argument("classmap", type=click.Path(path_type=Path))
@click.option(
    "--out", "-o", required=True, type=click.Path(path_type=Path),
    help="Output file; the format follows the extension: .gpkg, .fgb or .geojson.",
)  # fmt: skip
@click.option("--layer", default="landcover", show_default=True, help="Layer name (GeoPackage).")
@click.option(
    "--min-area", type=float, default=None, metavar="HECTARES",
    help="Minimum mapping unit: smaller regions join the class they share the longest boundary with.",
)  # fmt: skip
@click.option(
    "--simplify", type=float, default=None, metavar="METRES",
    help="Simplify edges by about this much, keeping neighbours' shared edges (no gaps, no overlaps).",
)  # fmt: skip
@click.option(
    "--connectivity", type=click.Choice(["4", "8"]), default="4", show_default=True,
    help="Pixels touching only at a corner belong to one polygon with 8, to two with 4 (as GDAL).",
)  # fmt: skip
@block_options(2048, help="Block side in pixels (one Dask task).")
@click.option(
    "--classes", "classes", type=click.Path(path_type=Path), default=None,
    help="Class table (YAML, JSON or CSV of id,name[,colour]) when the raster names no classes.",
)  # fmt: skip
def command(
    classmap: Path,
    out: Path,
    layer: str,
    min_area: float | None,
    simplify: float | None,
    connectivity: str,
    block_size: int,
    workers: int | None,
    scheduler: str | None,
    classes: Path | None,
) -> None:
    """Turn the class map CLASSMAP into polygons with class, area (ha) and perimeter (m).

    Polygons are built block by block on Dask and merged across block seams, so they are
    the same as polygonising the whole raster at once.
    """
    from geoseg.vector import vectorize

    with progress_bar("vectorize", unit="block") as bar:
        result = vectorize(
            classmap,
            out,
            layer=layer,
            min_area_ha=min_area,
            simplify_m=simplify,
            connectivity=int(connectivity),
            block_size=block_size,
            workers=workers,
            scheduler=scheduler,
            classes=classes,
            progress=bar,
        )
    sieved = f", {result.sieved_pixels:,} pixels below the minimum area reassigned" if min_area else ""
    click.echo(
        f"{result.polygons:,} polygons ({result.seam_polygons:,} across block seams) -> "
        f"{result.path} layer {result.layer!r} in {result.seconds:.1f} s, "
        f"{result.megapixels_per_second:.1f} megapixels/s{sieved}"
    )
