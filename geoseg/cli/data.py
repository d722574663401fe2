"""``geoseg data``: list the catalog's datasets, download missing files, check sha256s.

Thin: the work is in ``geoseg.data`` (its face only). Errors are ``GeosegError``s, which the
top-level group prints as one ``geoseg: error: ...`` line with exit status 2.
"""

from __future__ import annotations

from pathlib import Path

import click

from geoseg import data as catalog
from geoseg.cli._progress import progress_bar

_DESCRIPTION_WIDTH = 72


def _catalog(ctx: click.Context) -> catalog.Catalog:
    return catalog.load_catalog(ctx.obj["catalog_path"])


def _root(ctx: click.Context) -> Path | None:
    """The --root option, or None to let the library choose (so shipped models are found)."""
    root: Path | None = ctx.obj["data_root"]
    return root


def _short(text: str, width: int = _DESCRIPTION_WIDTH) -> str:
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"


@click.group(name="data")
@click.option(
    "--catalog",
    "catalog_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help=f"Catalog file to use [default: ${catalog.CATALOG_ENV}, else data_catalog.yaml of the checkout].",
)
@click.option(
    "--root",
    "data_root",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help=f"Data root [default: ${catalog.DATA_ENV}, else ../shared/data beside the checkout, "
    "else the per-user data directory: ~/.local/share/geoseg on Linux].",
)
@click.pass_context
def command(ctx: click.Context, catalog_path: Path | None, data_root: Path | None) -> None:
    """List the datasets of the catalog, download them, check them."""
    ctx.ensure_object(dict)
    ctx.obj["catalog_path"] = catalog_path
    ctx.obj["data_root"] = data_root


@command.command(name="list", short_help="List the entries and how many of their files are present.")
@click.pass_context
def list_entries(ctx: click.Context) -> None:
    """Show every entry: name, kind, files present / catalogued, description."""
    cat = _catalog(ctx)
    root = _root(ctx)
    rows = [("NAME", "KIND", "FILES", "DESCRIPTION")]
    for entry in cat:
        present = len(entry.files) - len(entry.missing_files(root))
        rows.append((entry.name, entry.kind, f"{present}/{len(entry.files)}", _short(entry.description)))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths, strict=True)) + "  " + row[3])
    click.echo(f"\ncatalog: {cat.path}\ndata root: {root or catalog.data_root()}")


@command.command(name="fetch", short_help="Download the missing files of entries, checking sha256.")
@click.argument("names", metavar="NAME...", nargs=-1, required=True)
@click.pass_context
def fetch_entries(ctx: click.Context, names: tuple[str, ...]) -> None:
    """Download the missing files of entries NAME... into the data root, checking each sha256.

    Without network access, copy the files by hand into the directory the error names.
    """
    cat = _catalog(ctx)
    root = _root(ctx)
    entries = [cat.get(name) for name in names]  # every name checked before any download
    for entry in entries:
        with progress_bar(f"fetch {entry.name}", unit="file") as bar:
            written = catalog.fetch(entry, root, progress=bar)
        where = entry.directory(root)
        if written:
            click.echo(f"{entry.name}: downloaded {len(written)} file(s) into {where}")
        else:
            click.echo(f"{entry.name}: all {len(entry.files)} files already present in {where}")


@command.command(name="verify", short_help="Check the sha256 of every file of entries.")
@click.argument("names", metavar="NAME...", nargs=-1, required=True)
@click.pass_context
def verify_entries(ctx: click.Context, names: tuple[str, ...]) -> None:
    """Check that every file of entries NAME... is present with its catalogued sha256."""
    cat = _catalog(ctx)
    root = _root(ctx)
    entries = [cat.get(name) for name in names]
    for entry in entries:
        with progress_bar(f"verify {entry.name}", unit="file") as bar:
            entry.verify(root, progress=bar)
        click.echo(f"{entry.name}: {len(entry.files)} files OK (sha256) in {entry.directory(root)}")
