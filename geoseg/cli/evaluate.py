"""``geoseg evaluate``: score a model on a label set of the catalog."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from geoseg.cli._options import from_flags, options
from geoseg.training import EvaluateOptions


@click.command("evaluate")
@click.option("--model", "-m", required=True, help="Checkpoint file or catalog model name.")
@click.option("--dataset", "-d", required=True, help="A label set of the catalog (e.g. amazon-s2-rgb).")
@options(EvaluateOptions)  # --split, --tta, --zoom, --threads: declared once, in the model
@click.option(
    "--json",
    "json_path",
    type=click.Path(path_type=Path),
    default=None,
    help="Also write the metrics as JSON.",
)
def command(model: str, dataset: str, json_path: Path | None, **flags: Any) -> None:
    """Confusion matrix, per-class IoU/precision/recall/F1, mIoU, accuracy and kappa."""
    from geoseg.files import atomic_output, check_writable
    from geoseg.training import evaluate

    opts = from_flags(EvaluateOptions, flags)  # a bad value is said as its flag (--zoom)
    if json_path:
        check_writable(json_path)
    result = evaluate(model, dataset, options=opts)
    click.echo(
        f"{result['model']} on {dataset}/{opts.split}"
        + (" (8-view test-time augmentation)" if opts.tta else "")
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
