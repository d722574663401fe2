"""``geoseg train``: a YAML config -> a trained checkpoint with metrics and provenance."""

from __future__ import annotations

from pathlib import Path

import click

from geoseg.cli._options import from_flags
from geoseg.cli._progress import progress_bar


@click.command("train")
@click.argument("config", type=click.Path(path_type=Path))
@click.option(
    "--out",
    "-o",
    type=click.Path(path_type=Path),
    default=None,
    help="Override the config's output path (relative to the current folder).",
)
@click.option("--epochs", type=int, default=None, help="Override the config's epoch count.")
@click.option("--resume", is_flag=True, help="Continue from the last finished epoch of an interrupted run.")
def command(config: Path, out: Path | None, epochs: int | None, resume: bool) -> None:
    """Train a model as CONFIG (YAML) says; prints validation metrics.

    A relative `out` in CONFIG is in the output folder `geoseg run CONFIG` writes to (its
    `out_dir`, else out/<workflow name>), so both commands write the model to one place.
    Training never writes into the shipped models (geoseg/models/): `geoseg model ship`
    copies a checkpoint there.
    """
    from geoseg.training import TrainConfig, load_config, train
    from geoseg.workflow import output_folder

    base = output_folder(config)
    cfg = load_config(config, base=base)
    overrides = {k: v for k, v in {"out": out and str(out), "epochs": epochs}.items() if v is not None}
    if overrides:
        # the config's other keys as they are, the overrides checked by the same model and
        # said as the flags (--epochs must be at least 1, got 0)
        cfg = from_flags(TrainConfig, overrides, **{k: v for k, v in cfg if k not in overrides})
    if Path(cfg.out).absolute().is_relative_to(base):
        Path(cfg.out).parent.mkdir(parents=True, exist_ok=True)  # the output folder is ours to make
    click.echo(f"training {Path(cfg.out)}", err=True)
    with progress_bar("train", unit="epoch", log_every=0) as bar:
        result = train(cfg, progress=bar, resume=resume)
    click.echo(result.scores.table())
    if "paper" in result.provenance["metrics"]:
        click.echo(f"paper metric: {result.provenance['metrics']['paper']}")
    click.echo(f"{result.out}: {len(result.history)} epochs in {result.provenance['minutes']:.1f} min")
