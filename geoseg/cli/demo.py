"""``geoseg demo``: the whole pipeline on a synthetic region, offline."""

from __future__ import annotations

from pathlib import Path

import click

from geoseg.cli._progress import progress_bar


@click.command("demo")
@click.option("--out", "out_dir", default="geoseg-demo", show_default=True, type=click.Path(path_type=Path))
@click.option("--size", default=2048, show_default=True, help="Region width and height in pixels.")
@click.option("--seed", default=3, show_default=True, help="Which synthetic region (the model was trained on 7).")
@click.option("--workers", type=int, default=None, help="Local Dask workers [default: one per core].")
def command(out_dir: Path, size: int, seed: int, workers: int | None) -> None:
    """Map a synthetic region at two dates, vectorise it and detect change, offline."""
    from geoseg.demo import run_demo

    with progress_bar("predict") as bar:
        result = run_demo(out_dir, size=size, seed=seed, workers=workers, progress=bar)
    for line in result.lines:
        click.echo(line)
    click.echo("products:")
    for name, path in result.products.items():
        click.echo(f"  {name:<10} {path}")
