"""The closing lines of a command that writes several products: its summary, then each file."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import click


def echo_products(
    summary: str, gpkg: Path | None, layers: Mapping[str, int], files: Sequence[tuple[Path | None, str]]
) -> None:
    """Print ``summary``, then the GeoPackage with its layers' feature counts and each of
    ``files`` (``(path or None when not written, what it is)``)."""
    click.echo(summary)
    click.echo("")
    click.echo("products:")
    if gpkg is not None:
        click.echo(f"  {gpkg}: " + ", ".join(f"{k} ({v:,})" for k, v in layers.items()))
    for path, what in files:
        if path is not None:
            click.echo(f"  {path}: {what}")
