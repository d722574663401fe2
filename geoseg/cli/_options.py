"""Command-line options built from the options models: one declaration, every flag.

``@options(PredictOptions)`` adds a click option for each field of the model, in the order
the model declares them: the flag (``--tile-size``, or the field's own), the type (a
``Literal`` becomes a choice, a bool a flag, a list of names a comma-separated value), the
default and the help text, all read off the field. The command then gets the values as
keywords and hands them to ``Model.build(..., Flags())``, so a bad value is said with the
flag the user typed.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable, Sequence
from typing import Any, Literal, TypeVar, get_args, get_origin

import click
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from geoseg.cluster import DaskOptions
from geoseg.options import Flags, Options, flag_of

F = TypeVar("F", bound=Callable[..., object])
M = TypeVar("M", bound=Options)


class CommaList(click.ParamType):
    """``a,b,c`` -> ``("a", "b", "c")`` (band names, classes, dates); the option may also be
    repeated, and the pieces are joined in order (``--from forest --from water``)."""

    name = "list"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, tuple):
            return value
        return tuple(v.strip() for v in str(value).split(",") if v.strip())


class IntChoice(click.Choice):
    """A choice among whole numbers (``--connectivity 4``), given back as an int."""

    def __init__(self, choices: Sequence[int]) -> None:
        super().__init__([str(c) for c in choices])

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        return int(super().convert(str(value), param, ctx))


def _plain(annotation: Any) -> tuple[Any, bool]:
    """The annotation without ``None`` and whether ``None`` was allowed."""
    origin = get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        optional = len(args) < len(get_args(annotation))
        return (args[0] if len(args) == 1 else annotation), optional
    if origin is typing.Annotated:
        return _plain(get_args(annotation)[0])
    return annotation, False


def _click_type(annotation: Any) -> Any:
    ann, _ = _plain(annotation)
    if get_origin(ann) is typing.Annotated:
        ann = get_args(ann)[0]
    if get_origin(ann) is Literal:
        choices = get_args(ann)
        if all(isinstance(c, int) and not isinstance(c, bool) for c in choices):
            return IntChoice(choices)
        return click.Choice([str(a) for a in choices])
    if get_origin(ann) in (tuple, list):
        return CommaList()
    if ann in (int, float, str, bool):
        return ann
    return str


def _extra(info: FieldInfo) -> dict[str, Any]:
    return info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}


def click_option(name: str, info: FieldInfo) -> Callable[[F], F]:
    """The click option of one field."""
    extra = _extra(info)
    flag = flag_of(name, info)
    decls = [flag, *([extra["short"]] if extra.get("short") else []), name]
    default = None if info.default is PydanticUndefined else info.default
    required = info.default is PydanticUndefined
    ann, _ = _plain(info.annotation)
    kwargs: dict[str, Any] = {"help": info.description or None, "required": required}
    if ann is bool:
        if default:
            decls[0] = f"{flag}/--no-{flag[2:]}"
        kwargs.update(is_flag=True, default=bool(default))
    else:
        kind = _click_type(info.annotation)
        kwargs.update(type=kind, default=default)
        if isinstance(kind, CommaList):
            kwargs.update(multiple=True, default=default or ())
        kwargs["show_default"] = default is not None and not required and default != ()
        if extra.get("metavar"):
            kwargs["metavar"] = extra["metavar"]
    return click.option(*decls, **kwargs)


def options(
    model: type[BaseModel], only: Sequence[str] | None = None, exclude: Sequence[str] = ()
) -> Callable[[F], F]:
    """Add the click options of ``model``'s fields (those on the command line: ``cli=True``)."""
    names = [
        n
        for n, info in model.model_fields.items()
        if _extra(info).get("cli", True) and n not in exclude and (only is None or n in only)
    ]
    # where the work runs (--workers, --scheduler) last, after what the command does
    names.sort(key=lambda n: n in DaskOptions.model_fields)

    def decorate(f: F) -> F:
        for name in reversed(names):  # click lists options in the order they are applied, reversed
            f = click_option(name, model.model_fields[name])(f)
        return f

    return decorate


def from_flags(model: type[M], values: dict[str, Any], **fixed: Any) -> M:
    """``model`` built from a command's keywords (its own fields only) plus ``fixed`` values;
    errors name the flags."""
    own: dict[str, Any] = {}
    for k, v in values.items():
        if k not in model.model_fields:
            continue
        if isinstance(v, tuple) and all(isinstance(x, tuple) for x in v):  # a repeated list option
            v = tuple(x for part in v for x in part) or None
        own[k] = v
    return model.build({**own, **fixed}, Flags())


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
