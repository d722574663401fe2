"""Options that several commands take alike: where the work runs (Dask), and in what blocks."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import click

F = TypeVar("F", bound=Callable[..., object])

WORKERS_HELP = "Local Dask worker processes [default: one per core]."
#: the commands that can also run without Dask, in this process
WORKERS_OR_NONE_HELP = "Local Dask worker processes [default: one per core; 0: no Dask]."


def dask_options(workers_help: str = WORKERS_HELP) -> Callable[[F], F]:
    """``--workers`` and ``--scheduler``: a LocalCluster of N workers, or a running cluster."""

    def decorate(f: F) -> F:
        f = click.option(
            "--scheduler", default=None, help="Address of an existing Dask scheduler (tcp://HOST:PORT)."
        )(f)
        return click.option("--workers", type=int, default=None, help=workers_help)(f)

    return decorate


def block_options(default: int, help: str = "Block size in pixels.") -> Callable[[F], F]:
    """``--block-size`` (one Dask task each) and the Dask options of a block-wise pass."""

    def decorate(f: F) -> F:
        f = dask_options(WORKERS_OR_NONE_HELP)(f)
        return click.option("--block-size", default=default, show_default=True, help=help)(f)

    return decorate
