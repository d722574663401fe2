"""``geoseg track``: dated class maps -> first year of forest loss, loss polygons per period."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from geoseg.cli._options import from_flags, options
from geoseg.cli._products import echo_products
from geoseg.cli._progress import progress_bar
from geoseg.temporal import ClassifyOptions, TrackOptions


@click.command("track")
@click.argument("maps", nargs=-1, required=True)
@click.option("--out", "-o", required=True, type=click.Path(path_type=Path),
              help="GeoPackage for loss and regrowth polygons and the tables (.gpkg); or .parquet, .fgb, "
              ".pmtiles, .geojson: one file a layer (OUT, OUT_regrowth.<suffix>), the tables as "
              "OUT_<table>.parquet.")  # fmt: skip
@click.option("--loss-year", type=click.Path(path_type=Path), default=None,
              help="Also write the first-loss-year raster (uint16 COG, 0 = no loss).")  # fmt: skip
@click.option("--report", "report_dir", type=click.Path(path_type=Path), default=None,
              help="Folder for PNG maps, a loss chart and an HTML report.")  # fmt: skip
@click.option("--reference", type=click.Path(path_type=Path), default=None,
              help="Raster whose grid the maps are aligned to [default: the first map's].")  # fmt: skip
@click.option("--spectral", is_flag=True,
              help="MAPS are imagery (SWIR1, NIR, red): classify forest / non-forest / water with the "
              "spectral baseline first.")  # fmt: skip
@click.option("--classified", type=click.Path(path_type=Path), default=None,
              help="With --spectral: keep the classified maps (class COGs) in this folder.")  # fmt: skip
@options(TrackOptions)
def command(
    maps: tuple[str, ...], out: Path, loss_year: Path | None, report_dir: Path | None, reference: Path | None,
    spectral: bool, classified: Path | None, **flags: Any,
) -> None:  # fmt: skip
    """Track forest loss over dated class MAPS (oldest first): the first year of loss per
    pixel, loss polygons per period (with the year), regrowth, and loss per period.

    A pixel is lost at a date when its last valid observation before was forest and it
    is non-forest for K valid dates from that date on (--persist K), so one noisy date
    does not make a clearing. MAPS may also be the name of a time series in the data
    catalog (e.g. pucallpa-landsat, with --spectral), which gives the files and dates.

    \b
    Example:
      geoseg track pucallpa-landsat --spectral --forest forest --out loss.gpkg \\
          --loss-year lossyear.tif --classified classified/ --report report/
    """
    from geoseg.api import track

    opts = from_flags(TrackOptions, flags, classify=ClassifyOptions() if spectral else None)
    with progress_bar("track", unit="%") as bar:
        result = track(
            list(maps), out, opts, loss_year=loss_year, report_dir=report_dir, classified=classified,
            reference=reference, progress=bar,
        )  # fmt: skip
    report = result.report / "index.html" if result.report is not None else None
    files = [
        (result.loss_year, "first loss year raster"),
        (classified, "classified maps"),
        (report, "report"),
    ]
    echo_products(result.summary(), result.files, result.layers, files)
