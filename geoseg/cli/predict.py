"""``geoseg predict``: scenes + model -> class COG."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from geoseg.cli._options import from_flags, options
from geoseg.cli._progress import progress_bar
from geoseg.inference import PredictOptions


@click.command("predict")
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--model", "-m", required=True, help="Checkpoint file or catalog model name (e.g. forest-s2-rgb)."
)
@click.option("--out", "-o", required=True, type=click.Path(path_type=Path), help="Output class COG.")
@options(PredictOptions)
def command(images: tuple[Path, ...], model: str, out: Path, **flags: Any) -> None:
    """Predict a land-cover map for IMAGES (one scene, or adjacent scenes as one mosaic)."""
    from geoseg.inference import predict

    opts = from_flags(PredictOptions, flags)
    with progress_bar("predict", unit="tile", log_every=30) as bar:
        result = predict(list(images), model, out, opts, progress=bar)
    click.echo(result.summary())
