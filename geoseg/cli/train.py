"""``geoseg train``: a YAML config -> a trained checkpoint with metrics and provenance."""

from __future__ import annotations

from pathlib import Path

import click

from geoseg.cli._progress import progress_bar


@click.command("train")
@click.argument("config", type=click.Path(path_type=Path))
@click.option(
    "--out", "-o", type=click.Path(path_type=Path), default=None, help="Override the config's output path."
)
@click.option("--epochs", type=int, default=None, help="Override the config's epoch count.")
@click.option("--resume", is_flag=True, help="Continue from the last finished epoch of an interrupted run.")
def command(config: Path, out: Path | None, epochs: int | None, resume: bool) -> None:
    """Train a model as CONFIG (YAML) says; prints validation metrics."""
    import dataclasses

    from geoseg.training import load_config, train

    cfg = load_config(config)
    if out is not None:
        cfg = dataclasses.replace(cfg, out=str(out))
    if epochs is not None:
        cfg = dataclasses.replace(cfg, epochs=epochs)
    with progress_bar("train", unit="epoch", log_every=0) as bar:
        result = train(cfg, progress=bar, resume=resume)
    click.echo(result.scores.table())
    if "paper" in result.provenance["metrics"]:
        click.echo(f"paper metric: {result.provenance['metrics']['paper']}")
    click.echo(f"{result.out}: {len(result.history)} epochs in {result.provenance['minutes']:.1f} min")
