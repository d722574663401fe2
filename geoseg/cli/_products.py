"""The closing lines of a command that writes several products: its summary, then each file."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import click


def echo_products(
    summary: str,
    layer_files: Mapping[str, Path],
    layers: Mapping[str, int],
    files: Sequence[tuple[Path | None, str]],
) -> None:
    """Print ``summary``, then each vector file with its layers' feature counts (one
    GeoPackage, or a file a layer; ``layer_files``: layer -> file) and each of ``files``
    (``(path or None when not written, what it is)``)."""
    click.echo(summary)
    click.echo("")
    click.echo("products:")
    by_file: dict[Path, list[str]] = {}
    for name, held_in in layer_files.items():
        by_file.setdefault(held_in, []).append(name)
    for vector, names in by_file.items():
        click.echo(f"  {vector}: " + ", ".join(f"{k} ({layers.get(k, 0):,})" for k in names))
    for path, what in files:
        if path is not None:
            click.echo(f"  {path}: {what}")
