"""``geoseg change``: two class maps -> transition matrix, change raster and polygons."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from geoseg.cli._options import from_flags, options
from geoseg.cli._products import echo_products
from geoseg.cli._progress import progress_bar
from geoseg.temporal import ChangeOptions


@click.command("change")
@click.argument("before", type=click.Path(path_type=Path))
@click.argument("after", type=click.Path(path_type=Path))
@click.option("--out", "-o", required=True, type=click.Path(path_type=Path),
              help="GeoPackage for the change polygons and the tables (.gpkg); or .parquet, .fgb, .pmtiles, "
              ".geojson: one file a layer (OUT, OUT_<layer>.<suffix>), the tables as OUT_<table>.parquet.")  # fmt: skip
@click.option("--raster", type=click.Path(path_type=Path), default=None,
              help="Also write the change raster (COG; value = from_index * n + to_index).")  # fmt: skip
@click.option("--report", "report_dir", type=click.Path(path_type=Path), default=None,
              help="Folder for PNG maps, charts and an HTML report.")  # fmt: skip
@click.option("--reference", type=click.Path(path_type=Path), default=None,
              help="Raster whose grid the maps are aligned to [default: BEFORE's].")  # fmt: skip
@options(ChangeOptions)
def command(
    before: Path, after: Path, out: Path, raster: Path | None, report_dir: Path | None,
    reference: Path | None, **flags: Any,
) -> None:  # fmt: skip
    """Compare the class maps BEFORE and AFTER (maps on other grids are reprojected onto
    BEFORE's, nearest neighbour): transition matrix and per-class gains, losses and net
    change in hectares, change polygons (from_class, to_class, area_ha), tables in OUT.

    \b
    Example:
      geoseg change 2015.tif 2020.tif --out change.gpkg --from forest --min-area 0.5 \\
          --raster change.tif --report report/
    """
    from geoseg.api import change

    opts = from_flags(ChangeOptions, flags)
    with progress_bar("change", unit="%") as bar:
        result = change(
            before, after, out, opts, raster=raster, report_dir=report_dir, reference=reference, progress=bar
        )
    report = result.report / "index.html" if result.report is not None else None
    echo_products(
        result.summary(), result.files, result.layers, [(result.raster, "change raster"), (report, "report")]
    )
