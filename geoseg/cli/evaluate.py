"""``geoseg evaluate``: score a model on a label set of the catalog."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command("evaluate")
@click.option("--model", "-m", required=True, help="Checkpoint file or catalog model name.")
@click.option("--dataset", "-d", required=True, help="A label set of the catalog (e.g. amazon-s2-rgb).")
@click.option("--split", default="validation", show_default=True)
@click.option(
    "--json",
    "json_path",
    type=click.Path(path_type=Path),
    default=None,
    help="Also write the metrics as JSON.",
)
@click.option("--tta", is_flag=True, help="Score the mean over the 8 rotations/flips of each image.")
@click.option(
    "--zoom",
    type=float,
    default=None,
    help="Resample each image by this factor for the model [default: the model's own].",
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help="CPU threads for the model (default: torch's).",
)
def command(
    model: str,
    dataset: str,
    split: str,
    json_path: Path | None,
    tta: bool,
    zoom: float | None,
    threads: int | None,
) -> None:
    """Confusion matrix, per-class IoU/precision/recall/F1, mIoU, accuracy and kappa."""
    from geoseg.files import atomic_output, check_writable
    from geoseg.training import evaluate

    if json_path:
        check_writable(json_path)
    result = evaluate(model, dataset, split, threads=threads, tta=tta, zoom=zoom)
    click.echo(
        f"{result['model']} on {dataset}/{split}"
        + (" (8-view test-time augmentation)" if tta else "")
        + (f" at zoom {result['zoom']:g}" if result["zoom"] != 1 else "")
    )
    click.echo(result.pop("table"))
    if "paper" in result:
        p = result["paper"]
        click.echo(
            f"paper metric (per-tile, weighted): accuracy {p['accuracy']:.4f}  precision {p['precision']:.4f}  "
            f"recall {p['recall']:.4f}  F1 {p['f1']:.4f}"
        )
    if json_path:
        with atomic_output(json_path) as tmp:
            tmp.write_text(json.dumps(result, indent=2))
        click.echo(f"wrote {json_path}")
