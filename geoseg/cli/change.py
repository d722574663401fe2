"""``geoseg change``: two class maps -> transition matrix, change raster and polygons."""

from __future__ import annotations

from pathlib import Path

import click

from geoseg.cli._options import block_options
from geoseg.cli._products import echo_products
from geoseg.cli._progress import progress_bar


@click.command("change")
@click.argument("before", type=click.Path(path_type=Path))
@click.argument("after", type=click.Path(path_type=Path))
@click.option("--out", "-o", required=True, type=click.Path(path_type=Path),
              help="GeoPackage for the change polygons and the tables (.gpkg).")  # fmt: skip
@click.option("--raster", type=click.Path(path_type=Path), default=None,
              help="Also write the change raster (COG; value = from_index * n + to_index).")  # fmt: skip
@click.option("--from", "from_classes", multiple=True, metavar="CLASS",
              help="Only changes from this class (name or id); repeatable [default: any].")  # fmt: skip
@click.option("--to", "to_classes", multiple=True, metavar="CLASS",
              help="Only changes to this class (name or id); repeatable [default: any].")  # fmt: skip
@click.option("--min-area", type=float, default=0.0, show_default=True, metavar="HECTARES",
              help="Leave change polygons smaller than this out of the layer (tables count every pixel).")  # fmt: skip
@click.option("--landcover", is_flag=True, help="Also write both dates' land-cover polygon layers.")
@click.option("--report", "report_dir", type=click.Path(path_type=Path), default=None,
              help="Folder for PNG maps, charts and an HTML report.")  # fmt: skip
@click.option("--reference", type=click.Path(path_type=Path), default=None,
              help="Raster whose grid the maps are aligned to [default: BEFORE's].")  # fmt: skip
@block_options(1024)
def command(
    before: Path,
    after: Path,
    out: Path,
    raster: Path | None,
    from_classes: tuple[str, ...],
    to_classes: tuple[str, ...],
    min_area: float,
    landcover: bool,
    report_dir: Path | None,
    reference: Path | None,
    block_size: int,
    workers: int | None,
    scheduler: str | None,
) -> None:
    """Compare the class maps BEFORE and AFTER (maps on other grids are reprojected onto
    BEFORE's, nearest neighbour): transition matrix and per-class gains, losses and net
    change in hectares, change polygons (from_class, to_class, area_ha), tables in OUT.

    \b
    Example:
      geoseg change 2015.tif 2020.tif --out change.gpkg --from forest --min-area 0.5 \\
          --raster change.tif --report report/
    """
    from geoseg.temporal import detect_change

    with progress_bar("change", unit="%") as bar:
        result = detect_change(
            before,
            after,
            out,
            raster=raster,
            from_classes=list(from_classes),
            to_classes=list(to_classes),
            min_area_ha=min_area,
            landcover=landcover,
            report_dir=report_dir,
            reference=reference,
            block_size=block_size,
            workers=workers,
            scheduler=scheduler,
            progress=bar,
        )
    report = result.report / "index.html" if result.report is not None else None
    echo_products(
        result.summary(), result.out, result.layers, [(result.raster, "change raster"), (report, "report")]
    )
