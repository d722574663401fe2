"""``geoseg train``: a YAML config -> a trained checkpoint with metrics and provenance."""

from __future__ import annotations

from pathlib import Path

import click

from geoseg.cli._options import from_flags
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
    from geoseg.training import TrainConfig, load_config, train

    cfg = load_config(config)
    overrides = {k: v for k, v in {"out": out and str(out), "epochs": epochs}.items() if v is not None}
    if overrides:
        # the config's other keys as they are, the overrides checked by the same model and
        # said as the flags (--epochs must be at least 1, got 0)
        cfg = from_flags(TrainConfig, overrides, **{k: v for k, v in cfg if k not in overrides})
    with progress_bar("train", unit="epoch", log_every=0) as bar:
        result = train(cfg, progress=bar, resume=resume)
    click.echo(result.scores.table())
    if "paper" in result.provenance["metrics"]:
        click.echo(f"paper metric: {result.provenance['metrics']['paper']}")
    click.echo(f"{result.out}: {len(result.history)} epochs in {result.provenance['minutes']:.1f} min")
