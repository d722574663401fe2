"""The ``geoseg`` command line: thin wrappers that parse, call the library and print.

One module per command. Each command module defines a click command (or group) named
``command``; ``COMMANDS`` below lists them and they are imported only when invoked, so
``geoseg --help`` and ``geoseg data list`` stay fast (torch is never imported for them).
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import warnings
from typing import Any

import click

from geoseg import __version__
from geoseg.errors import GeosegError, GeosegWarning, missing_extra

# name -> (module, short help). Modules are imported lazily.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("geoseg.cli.demo", "Run the whole pipeline on a synthetic scene."),
    "data": ("geoseg.cli.data", "List and fetch the datasets of the catalog."),
    "predict": ("geoseg.cli.predict", "Predict a land-cover class map (COG) from scenes."),
    "model": ("geoseg.cli.model", "Create, inspect, export and ship model checkpoints."),
    "cache": ("geoseg.cli.cache", "Show or clear the cached ONNX exports of models."),
    "train": ("geoseg.cli.train", "Train a model from a YAML config."),
    "evaluate": ("geoseg.cli.evaluate", "Score a model on a label set of the catalog."),
    "vectorize": ("geoseg.cli.vectorize", "Turn a class map into polygons (GPKG, FlatGeobuf, GeoJSON)."),
    "change": ("geoseg.cli.change", "Compare two class maps: transition matrix, change raster and polygons."),
    "track": ("geoseg.cli.track", "First year of forest loss over a time series of class maps."),
    "run": ("geoseg.cli.run", "Run a workflow file (steps skip when their inputs are unchanged)."),
}


class _QuietTiffQuirk(logging.Filter):
    """Drop libtiff's complaint about the Pucallpa composites' ExtraSamples tag.

    The files declare 4 samples with a 1-sample photometric type; GDAL reads them
    correctly after saying so, three times per open, which would bury the output in warnings.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "Sum of Photometric type-related color channels" not in record.getMessage()


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    """geoseg's own warnings as one line, ``geoseg: warning: ...``, like its errors.

    Python would print two (the file and line of the ``warnings.warn`` call, then that
    line of code), which say nothing to a user. Other libraries' warnings print as usual.
    Python's default filter already shows each distinct warning once.
    """
    if issubclass(category, GeosegWarning):
        click.echo(f"geoseg: warning: {message}", err=True)
    else:
        _PYTHON_SHOWWARNING(message, category, filename, lineno, file, line)


_PYTHON_SHOWWARNING = warnings.showwarning


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module = importlib.import_module(COMMANDS[cmd_name][0])
        command: click.Command = module.command
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except GeosegError as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(f"geoseg: error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except ModuleNotFoundError as exc:
            # an optional part (models: geoseg[predict]) that is not installed: one line
            missing = missing_extra(exc, f"`{ctx.invoked_subcommand or 'geoseg'}`")
            if missing is None or (ctx.obj and ctx.obj.get("debug")):
                raise
            click.echo(f"geoseg: error: {missing}", err=True)
            sys.exit(missing.exit_code)
        except click.UsageError as exc:
            # a mistyped option or value: the same one line as any bad input (click would
            # print the usage, a hint and the error on four lines)
            if ctx.obj and ctx.obj.get("debug"):
                raise
            where = exc.ctx.command_path if exc.ctx is not None else "geoseg"
            click.echo(f"geoseg: error: {exc.format_message().rstrip('.')} (see `{where} --help`)", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("geoseg: interrupted", err=True)
            sys.exit(130)


def _one_line_warnings() -> None:
    """geoseg's warnings (an input off the model's domain, a data quirk) as one line each
    on stderr, like its errors, instead of Python's file:line report."""
    shown = warnings.showwarning

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
             file: Any = None, line: str | None = None) -> None:  # fmt: skip
        if issubclass(category, GeosegWarning):
            click.echo(f"geoseg: warning: {message}", err=True)
        else:
            shown(message, category, filename, lineno, file, line)

    warnings.showwarning = show


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="geoseg")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug logs).")
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors.")
@click.pass_context
def main(ctx: click.Context, verbose: int, debug: bool) -> None:
    """geoseg: map land cover over whole regions and track deforestation over time."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    warnings.showwarning = _show_warning
    ctx.obj["verbose"] = verbose
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    for name in ("rasterio._env", "rasterio._err"):
        logging.getLogger(name).addFilter(_QuietTiffQuirk())
    _one_line_warnings()
    # dask.distributed logs every worker start and stop at INFO; keep that for -vv. Its
    # logging is configured from dask's config when it is imported (later, lazily), in
    # this process and in the worker processes that inherit the environment.
    if verbose < 2:
        os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "error")
