"""``geoseg demo``: the whole pipeline on a synthetic region (or the real Amazon tiles), offline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from geoseg.cli._options import from_flags, options
from geoseg.cli._progress import progress_bar
from geoseg.workflow import DemoOptions

# What each product is, for the list the demo ends with.
_WHAT = {
    "workflow": "the demo as a workflow: `geoseg run` it again",
    "scene_date1": "synthetic scene, date 1 (4 bands)",
    "scene_date1.truth": "its known land cover",
    "scene_date2": "synthetic scene, date 2 (after clearings and regrowth)",
    "scene_date2.truth": "its known land cover",
    "landcover_date1": "land-cover map, date 1 (class COG)",
    "landcover_date2": "land-cover map, date 2 (class COG)",
    "change": "change raster (COG: from-class x to-class)",
    "change.report": "change figures and tables",
    "deforestation": "year of first forest loss (COG)",
    "deforestation.report": "forest-loss figures and tables",
    "report": "the HTML report: maps, charts, area tables, accuracy",
    "geopackage": "every vector layer and table, styled for QGIS",
    "stac": "STAC Collection (one Item per product)",
    "accuracy": "accuracy against the known truth (JSON)",
}


@click.command("demo")
@click.option("--out", "out_dir", default=None, type=click.Path(path_type=Path),
              help="Output folder [default: geoseg-demo, with --real geoseg-demo-real].")  # fmt: skip
@options(DemoOptions)
def command(out_dir: Path | None, **flags: Any) -> None:
    """Map a synthetic region at two dates, vectorise it, detect change and forest loss,
    and report accuracy against its known truth, offline. Ends by listing every product."""
    from geoseg.workflow import run_demo

    opts = from_flags(DemoOptions, flags)
    out_dir = out_dir or Path("geoseg-demo-real" if opts.real else "geoseg-demo")
    bars: dict[str, Any] = {}

    def progress(step: Any) -> Any:
        cm = progress_bar(step.name, unit="%" if step.kind in ("change", "track") else "it")
        bars[step.name] = cm
        return cm.__enter__()

    def on_event(ev: Any) -> None:
        if ev.status != "start" and ev.step in bars:
            bars.pop(ev.step).__exit__(None, None, None)
        if ev.status == "ran":
            click.echo(f"{ev.step}: done in {ev.seconds:.1f} s")
        elif ev.status == "skipped":
            click.echo(f"{ev.step}: already done, skipped (--force redoes it)")

    try:
        result = run_demo(out_dir, opts, progress=progress, on_event=on_event)
    finally:
        for cm in bars.values():
            cm.__exit__(None, None, None)
    for line in result.lines:
        click.echo(line)
    click.echo("products:")
    width = max(len(k) for k in result.products)
    for name, path in result.products.items():
        what = _WHAT.get(name, "")
        click.echo(f"  {name:<{width}}  {path}" + (f"  ({what})" if what else ""))
