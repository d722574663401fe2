"""``geoseg predict``: scenes + model -> class COG."""

from __future__ import annotations

from pathlib import Path

import click

from geoseg.cli._options import WORKERS_OR_NONE_HELP, dask_options
from geoseg.cli._progress import progress_bar


@click.command("predict")
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--model", "-m", required=True, help="Checkpoint file or catalog model name (e.g. forest-s2-rgb)."
)
@click.option("--out", "-o", required=True, type=click.Path(path_type=Path), help="Output class COG.")
@click.option("--tile-size", default=512, show_default=True, help="Tile core size in pixels.")
@click.option("--overlap", default=64, show_default=True, help="Context pixels read around each tile core.")
@click.option(
    "--batch-size",
    type=int,
    default=None,
    help="Tiles per model batch (and per Dask task) [default: sized to tile and device: 4 at tile 512 on CPU].",
)
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda[:N].")
@click.option("--backend", default="auto", show_default=True, type=click.Choice(["auto", "torch", "onnx"]))
@dask_options(WORKERS_OR_NONE_HELP)
@click.option("--threads", default=1, show_default=True, help="Model threads per worker.")
@click.option(
    "--probabilities",
    type=click.Path(path_type=Path),
    default=None,
    help="Also write per-class probabilities (uint8, value/254).",
)
@click.option(
    "--bands", default=None, help="Comma-separated band names or 1-based indices to feed the model."
)
@click.option("--resume", is_flag=True, help="Reuse the tiles an interrupted run already finished.")
@click.option(
    "--tta",
    is_flag=True,
    help="Average the model over the 8 rotations/flips of each tile (8x slower, slightly more accurate).",
)
@click.option(
    "--zoom",
    type=float,
    default=None,
    help="Resample each tile by this factor for the model, e.g. 3 for a 10 m model on 30 m pixels "
    "(zoom^2 slower) [default: the model's own, 1 unless its card says otherwise].",
)
def command(
    images: tuple[Path, ...],
    model: str,
    out: Path,
    tile_size: int,
    overlap: int,
    batch_size: int | None,
    device: str,
    backend: str,
    workers: int | None,
    threads: int,
    scheduler: str | None,
    probabilities: Path | None,
    bands: str | None,
    resume: bool,
    tta: bool,
    zoom: float | None,
) -> None:
    """Predict a land-cover map for IMAGES (one scene, or adjacent scenes as one mosaic)."""
    from geoseg.inference import predict

    band_list = [b.strip() for b in bands.split(",")] if bands else None
    with progress_bar("predict", unit="tile", log_every=30) as bar:
        result = predict(
            list(images),
            model,
            out,
            tile_size=tile_size,
            overlap=overlap,
            batch_size=batch_size,
            device=device,
            backend=backend,
            workers=workers,
            threads=threads,
            scheduler=scheduler,
            probabilities=probabilities,
            resume=resume,
            bands=band_list,
            progress=bar,
            tta=tta,
            zoom=zoom,
        )
    click.echo(result.summary())
