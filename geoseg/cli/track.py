"""``geoseg track``: dated class maps -> first year of forest loss, loss polygons per period."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import click

from geoseg.cli._options import block_options
from geoseg.cli._products import echo_products
from geoseg.cli._progress import progress_bar


def _split(values: tuple[str, ...]) -> list[str]:
    """Repeated options and comma-separated lists, flattened."""
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


def _dates_from_names(maps: list[str]) -> list[str] | None:
    """Dates from file names like ``1985.tif`` or ``2015-06.tif``, when every name is one."""
    from geoseg.errors import ConfigError
    from geoseg.temporal import parse_date

    try:
        for m in maps:
            parse_date(Path(m).stem)
    except ConfigError:
        return None
    return [Path(m).stem for m in maps]


@click.command("track")
@click.argument("maps", nargs=-1, required=True)
@click.option("--dates", "dates_opt", multiple=True, metavar="DATE",
              help="Date of each map (YYYY, YYYY-MM or YYYY-MM-DD), oldest first: repeat the option "
              "or give a comma-separated list [default: from file names like 1985.tif].")  # fmt: skip
@click.option("--forest", "forest", multiple=True, required=True, metavar="CLASS",
              help="The forest class (name or id); repeatable.")  # fmt: skip
@click.option("--out", "-o", required=True, type=click.Path(path_type=Path),
              help="GeoPackage for loss and regrowth polygons and the tables (.gpkg).")  # fmt: skip
@click.option("--loss-year", type=click.Path(path_type=Path), default=None,
              help="Also write the first-loss-year raster (uint16 COG, 0 = no loss).")  # fmt: skip
@click.option("--persist", type=int, default=None, metavar="K",
              help="Dates a pixel must stay non-forest to count as lost [default: 2, or 1 with two maps].")  # fmt: skip
@click.option("--min-area", type=float, default=0.0, show_default=True, metavar="HECTARES",
              help="Leave loss/regrowth polygons smaller than this out of the layers.")  # fmt: skip
@click.option("--report", "report_dir", type=click.Path(path_type=Path), default=None,
              help="Folder for PNG maps, a loss chart and an HTML report.")  # fmt: skip
@click.option("--reference", type=click.Path(path_type=Path), default=None,
              help="Raster whose grid the maps are aligned to [default: the first map's].")  # fmt: skip
@click.option("--spectral", is_flag=True,
              help="MAPS are imagery (SWIR1, NIR, red): classify forest / non-forest / water with the "
              "spectral baseline of geoseg.spectral first.")  # fmt: skip
@click.option("--bands", default=None,
              help="With --spectral: names of the image bands in file order, e.g. swir1,nir,red,green.")  # fmt: skip
@click.option("--classified", type=click.Path(path_type=Path), default=None,
              help="With --spectral: keep the classified maps (class COGs) in this folder.")  # fmt: skip
@block_options(1024)
def command(
    maps: tuple[str, ...],
    dates_opt: tuple[str, ...],
    forest: tuple[str, ...],
    out: Path,
    loss_year: Path | None,
    persist: int | None,
    min_area: float,
    report_dir: Path | None,
    reference: Path | None,
    spectral: bool,
    bands: str | None,
    classified: Path | None,
    block_size: int,
    workers: int | None,
    scheduler: str | None,
) -> None:
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
    from geoseg.errors import ConfigError
    from geoseg.temporal import check_dates, check_persist, resolve_classes, track_loss
    from geoseg.vector import check_outputs

    paths = list(maps)
    dates = _split(dates_opt)
    band_names = _split((bands,)) if bands else None
    if len(paths) == 1 and not Path(paths[0]).exists():
        from geoseg.data import TimeSeriesEntry, load_catalog

        catalog = load_catalog()
        if paths[0] in catalog:
            entry = catalog.get(paths[0], TimeSeriesEntry)
            entry.require()
            dated = entry.dated_paths()
            paths = [str(p) for _, p in dated]
            dates = dates or [d for d, _ in dated]
            if band_names is None and entry.bands:
                band_names = list(entry.bands)
    if len(paths) < 2:
        raise ConfigError(
            f"track needs a time series of at least two dated maps, got {len(paths)}; give every date's map"
        )
    if not dates:
        dates = _dates_from_names(paths) or []
        if not dates:
            raise ConfigError("no dates: give one per map with --dates (e.g. --dates 1985,1990,1995)")
    check_dates(dates, len(paths))
    check_persist(persist, len(paths))
    if (bands or classified) and not spectral:
        raise ConfigError("--bands and --classified only apply with --spectral")
    check_outputs(out, loss_year, report_dir, paths)
    if spectral:  # everything the classified maps will be checked for, before making them
        from geoseg.temporal import SPECTRAL_CLASSES, open_imagery

        resolve_classes(list(forest), SPECTRAL_CLASSES, "forest class", "the spectral classes")
        for p in paths:
            open_imagery(p, band_names)

    imagery = None
    work: Path | None = None
    try:
        if spectral:
            from geoseg.temporal import classify_series

            images = paths
            folder = classified
            if folder is None:
                folder = work = Path(tempfile.mkdtemp(prefix="geoseg-classified-"))
            with progress_bar("classify", unit="map") as bar:
                made = classify_series(images, dates, folder, band_names=band_names, progress=bar)
            paths = [str(p) for p in made]
            if report_dir is not None:
                src = open_imagery(images[0], band_names)
                order = [b.index for b in src.bands]  # SWIR1, NIR, red as the file numbers them
                names = "/".join(b.name.upper() for b in src.bands)
                imagery = [(dates[k], images[k], order, names) for k in (0, len(images) - 1)]
        with progress_bar("track", unit="%") as bar:
            result = track_loss(
                paths,
                dates,
                list(forest),
                out,
                loss_year=loss_year,
                persist=persist,
                min_area_ha=min_area,
                report_dir=report_dir,
                reference=reference,
                block_size=block_size,
                workers=workers,
                scheduler=scheduler,
                report_imagery=imagery,
                progress=bar,
            )
    finally:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
    report = result.report / "index.html" if result.report is not None else None
    files = [
        (result.loss_year, "first loss year raster"),
        (classified, "classified maps"),
        (report, "report"),
    ]
    echo_products(result.summary(), result.out, result.layers, files)
