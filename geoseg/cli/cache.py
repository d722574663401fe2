"""``geoseg cache``: what the ONNX export cache holds, and clearing it.

Thin: the cache is :mod:`geoseg.inference`'s (``cache_info``, ``clear_cache``); this names
its entries after the catalog's models where their checkpoint hashes match.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone

import click


@click.group("cache")
def command() -> None:
    """The ONNX exports of models that predict keeps (~/.cache/geoseg/onnx, or $GEOSEG_CACHE/onnx).

    Each checkpoint predicted with ONNX Runtime is exported once (30-115 MB for the
    shipped models) and kept, with its graph optimised for this CPU. Above the cap
    ($GEOSEG_ONNX_CACHE_MB, default 1024) the exports used longest ago are removed after
    each new one; an export used in the last 10 minutes is never removed.
    """


def _model_names() -> dict[str, str]:
    """Cache key (a checkpoint's sha256, first 20 digits) -> the catalog model it is."""
    from geoseg.data import ModelEntry, load_catalog
    from geoseg.errors import GeosegError

    try:
        catalog = load_catalog()
    except GeosegError:  # a broken catalog must not stop a look at the cache
        return {}
    return {rec.sha256[:20]: e.name for e in catalog if isinstance(e, ModelEntry) for rec in e.files}


def _ago(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.0f} h ago"
    return f"{seconds / 86400:.0f} days ago"


@command.command("info")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def info(as_json: bool) -> None:
    """List the cached exports, least recently used (removed first) at the top."""
    from geoseg.inference import CACHE_LIMIT_ENV, cache_info

    ci = cache_info()
    names = _model_names()
    if as_json:
        doc = {
            "folder": str(ci.folder),
            "bytes": ci.bytes,
            "limit_bytes": ci.limit,
            "entries": [
                {
                    "key": e.key,
                    "model": names.get(e.key),
                    "bytes": e.bytes,
                    "files": sorted(f.name for f in e.files),
                    "last_used": datetime.fromtimestamp(e.last_used, timezone.utc).isoformat(),
                }
                for e in ci.entries
            ],
        }
        click.echo(json.dumps(doc, indent=2))
        return
    n = len(ci.entries)
    click.echo(
        f"{ci.folder}: {ci.bytes / 2**20:.1f} MiB in {n} export{'' if n == 1 else 's'}, "
        f"cap {ci.limit / 2**20:.0f} MiB (${CACHE_LIMIT_ENV})"
    )
    now = time.time()
    for e in ci.entries:
        model = names.get(e.key, "")
        click.echo(
            f"  {e.key}  {e.bytes / 2**20:7.1f} MiB  {len(e.files)} file{'' if len(e.files) == 1 else 's'}  "
            f"used {_ago(now - e.last_used):<13}  {model}".rstrip()
        )


@command.command("clear")
@click.option(
    "--force",
    is_flag=True,
    help="Also remove exports used in the last 10 minutes, which a running prediction may be about to open.",
)
def clear(force: bool) -> None:
    """Remove the cached exports (they are made again when next needed)."""
    from geoseg.inference import IN_USE_S, cache_info, clear_cache

    done = clear_cache(force=force)
    n = len(done.removed)
    click.echo(
        f"{cache_info().folder}: removed {n} file{'' if n == 1 else 's'}, {done.bytes / 2**20:.1f} MiB"
    )
    if done.kept:
        k = len(done.kept)
        click.echo(
            f"kept {k} export{'' if k == 1 else 's'} used in the last {IN_USE_S / 60:.0f} minutes "
            "(a prediction may be opening it); --force removes them too"
        )
