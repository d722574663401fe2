"""``geoseg run``: a workflow file -> its steps, skipping those already done."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from geoseg.cli._options import dask_options
from geoseg.cli._progress import progress_bar


@click.command("run")
@click.argument("workflow", type=click.Path(path_type=Path))
@click.option("--out-dir", type=click.Path(path_type=Path), default=None,
              help="Output folder [default: the workflow's out_dir, else out/<workflow name>].")  # fmt: skip
@click.option("--force", is_flag=True, help="Rerun every step, even those whose inputs are unchanged.")
@click.option("--dry-run", is_flag=True, help="Validate and say which steps would run; write nothing.")
@dask_options("Local Dask worker processes [default: the workflow's, else one per core; 0: no Dask].")
def command(
    workflow: Path,
    out_dir: Path | None,
    force: bool,
    dry_run: bool,
    workers: int | None,
    scheduler: str | None,
) -> None:
    """Run the steps of WORKFLOW (YAML) in order.

    The whole file is checked first (unknown keys, missing catalog entries or files,
    unwritable output folder): a problem stops the run before any work. A rerun skips
    every step whose inputs (file contents), parameters and geoseg version are unchanged
    since the last run into the same output folder; --force reruns them.

    \b
    Examples:
      geoseg run workflows/map_landcover.yaml
      geoseg run workflows/track_deforestation.yaml --out-dir out/pucallpa
      geoseg run workflows/train_forest_amazon.yaml --dry-run
    """
    from geoseg.workflow import StepEvent, load_workflow, run_workflow

    wf = load_workflow(workflow, out_dir)
    bars: dict[str, Any] = {}

    def progress(step: Any) -> Any:
        cm = progress_bar(step.name, unit="%" if step.kind in ("change", "track") else "it")
        bars[step.name] = cm
        return cm.__enter__()

    def on_event(ev: StepEvent) -> None:
        if ev.status != "start" and ev.step in bars:
            bars.pop(ev.step).__exit__(None, None, None)
        if ev.status == "start":
            click.echo(f"{ev.step} ({ev.kind}): running ({ev.reason})", err=True)
        elif ev.status == "ran":
            click.echo(f"{ev.step} ({ev.kind}): done in {ev.seconds:.1f} s")
        elif ev.status == "skipped":
            click.echo(f"{ev.step} ({ev.kind}): skipped, {ev.reason}")
        else:  # a dry run's: would run / would skip, and the files the step writes
            writes = (
                f"; writes {_files(wf.out_dir, ev.products)}"
                if ev.products and ev.status == "would run"
                else ""
            )
            click.echo(
                f"{ev.step} ({ev.kind}): {ev.status}" + (f" ({ev.reason})" if ev.reason else "") + writes
            )

    try:
        result = run_workflow(
            wf, force=force, dry_run=dry_run, workers=workers, scheduler=scheduler,
            on_event=on_event, progress=progress,
        )  # fmt: skip
    finally:
        for cm in bars.values():
            cm.__exit__(*sys.exc_info())
    if dry_run:
        click.echo(f"output folder: {wf.out_dir} (nothing written)")
        return
    click.echo(f"{len(result.ran)} ran, {len(result.skipped)} skipped, in {result.seconds:.1f} s; products:")
    width = max((len(k) for k in result.products), default=10)
    for label, path in result.products.items():
        click.echo(f"  {label:<{width}}  {path}")


def _files(out_dir: Path, products: tuple[str, ...], most: int = 3) -> str:
    """A step's files as a user finds them: from the current folder (absolute elsewhere)."""
    here = Path.cwd()
    shown = []
    for rel in products[:most]:
        p = out_dir / rel  # absolute products (a model outside the folder) stay as they are
        shown.append(str(p.relative_to(here)) if p.is_relative_to(here) else str(p))
    more = len(products) - most
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")
