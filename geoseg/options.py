"""Typed options: each parameter of an operation is declared once, with its default, range and help.

An operation's options are one frozen pydantic model (:class:`Options`): unknown keys are
refused, values are checked strictly (``"512"`` is not a tile size, ``true`` is not a
number), and every field carries its help text (``description``). The CLI builds its
flags from the fields (:mod:`geoseg.cli._options`), a workflow step's keys are the same
fields, and the Python API passes its keywords through the same model, so a default or
a range is written in one place.

A bad value is one line that names the key the way the caller wrote it: ``--tile-size``
on the command line, ``steps[2].tile_size`` in a workflow file (with the file named),
``tile_size`` from Python. :class:`Caller` says which.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic.fields import FieldInfo

from geoseg.errors import ConfigError, GeosegError

M = TypeVar("M", bound="Options")


def _names(value: Any) -> Any:
    """A name or a list of names as a tuple (YAML and Python give lists or one string)."""
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",")) if "," in value else (value,)
    if isinstance(value, list):
        return tuple(value)
    return value


#: Band names or indices, classes by name or id, dates: one value or a list (``a,b`` too).
Names = Annotated[tuple[str, ...], BeforeValidator(_names)]


def _path_text(value: Any) -> Any:
    return os.fspath(value) if isinstance(value, os.PathLike) else value


#: A path given as text or as a ``Path``, kept as text (files name it as written).
PathText = Annotated[str, BeforeValidator(_path_text)]


def _ids_or_names(value: Any) -> Any:
    value = _names(value)
    if isinstance(value, tuple):
        return tuple(str(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in value)
    return value


#: Classes or dates given as names or numbers (``forest``, ``1``, ``2020``).
Labels = Annotated[tuple[str, ...], BeforeValidator(_ids_or_names)]


def _class_pairs(value: Any) -> Any:
    """``"1=forest,2=cropland"``, its pieces, ``{1: "forest"}`` or (id, name) pairs ->
    ``((1, "forest"), (2, "cropland"))``; anything else is left for the type check."""
    if isinstance(value, Mapping):
        value = [(k, v) for k, v in value.items()]
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, (list, tuple)):
        return value
    out: list[tuple[int, str]] = []
    for item in value:
        if isinstance(item, str):
            if not item.strip():
                continue
            left, sep, right = item.partition("=")
            item = (left.strip(), right.strip()) if sep else item
        elif hasattr(item, "id") and hasattr(item, "name"):  # a ClassInfo
            item = (item.id, item.name)
        if not (isinstance(item, (list, tuple)) and len(item) == 2):
            raise ValueError(f": {item!r} is not ID=NAME (e.g. 1=forest,2=cropland)")
        key: Any = item[0]
        name = item[1]
        if isinstance(key, str) and key.lstrip("-").isdigit():
            key = int(key)
        if not isinstance(key, int) or isinstance(key, bool) or not str(name).strip():
            raise ValueError(f": {'='.join(map(str, item))!r} is not ID=NAME (e.g. 1=forest,2=cropland)")
        out.append((key, str(name).strip()))
    ids = [k for k, _ in out]
    if len(set(ids)) != len(ids):
        raise ValueError(f": names class {next(i for i in ids if ids.count(i) > 1)} twice")
    return tuple(out)


#: Class names by id: ``1=forest,2=cropland`` (pieces, a mapping or pairs from Python).
ClassPairs = Annotated[tuple[tuple[int, str], ...], BeforeValidator(_class_pairs)]


def option(
    default: Any = ...,
    help: str = "",
    *,
    flag: str | None = None,
    short: str | None = None,
    ge: float | None = None,
    le: float | None = None,
    gt: float | None = None,
    lt: float | None = None,
    cli: bool = True,
    metavar: str | None = None,
    alias: str | None = None,
    unit: str | None = None,
) -> Any:
    """A field of an options model: its default, its help and its range, declared once.

    ``flag`` overrides the command-line flag (default ``--field-name``), ``short`` adds a
    one-letter one; ``cli=False`` keeps the field off the command line (set by the
    command itself or Python only). ``alias`` is the key's name in files when the Python
    name must differ (``from``); ``unit`` follows a range in messages (``64..65536 pixels``).
    """
    extra: dict[str, Any] = {"cli": cli}
    if flag:
        extra["flag"] = flag
    if short:
        extra["short"] = short
    if metavar:
        extra["metavar"] = metavar
    if unit:
        extra["unit"] = unit
    return Field(default, description=help, ge=ge, le=le, gt=gt, lt=lt, alias=alias, json_schema_extra=extra)


class Options(BaseModel):
    """Base of every operation's options (see the module doc)."""

    # populate_by_name: a field with a file alias (``from``) is also set by its Python name
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, populate_by_name=True)

    #: what the options are for, in messages ("predict", "a vectorize step")
    what: ClassVar[str] = "options"

    @classmethod
    def build(cls: type[M], values: Mapping[str, Any], caller: Caller | None = None) -> M:
        """The options from ``values``, checked; a bad value is a one-line ``ConfigError``
        naming its key as ``caller`` writes it (Python keywords by default)."""
        try:
            return cls.model_validate(dict(values))
        except ValidationError as exc:
            raise (caller or KEYWORDS).error(cls, exc) from None

    def replace(self: M, **changes: Any) -> M:
        """A copy with ``changes``, checked like the original."""
        return type(self).build({**self.model_dump(), **changes})


# --------------------------------------------------------------------------------------
# Messages in the caller's terms


def suggest(word: str, options: Sequence[str]) -> str:
    """`` (did you mean 'x'?)`` when ``word`` is close to one of ``options``."""
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _bound(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _field(model: type[BaseModel], loc: Sequence[Any]) -> FieldInfo | None:
    """The field a (nested) error location points at, when it is a plain field."""
    info: FieldInfo | None = None
    current: Any = model
    for part in loc:
        if isinstance(part, int) or not (isinstance(current, type) and issubclass(current, BaseModel)):
            continue
        fields = current.model_fields
        info = fields.get(str(part)) or next((f for f in fields.values() if f.alias == str(part)), None)
        if info is None:
            return None
        ann = info.annotation
        current = next((a for a in getattr(ann, "__args__", (ann,)) if isinstance(a, type)), ann)
    return info


def _model_at(model: type[BaseModel], loc: Sequence[Any]) -> type[BaseModel] | None:
    """The (nested) model a location's keys belong to: ``model`` itself for ``()``."""
    if not loc:
        return model
    info = _field(model, loc)
    if info is None:
        return None
    for a in (info.annotation, *getattr(info.annotation, "__args__", ())):
        for b in (a, *getattr(a, "__args__", ())):
            if isinstance(b, type) and issubclass(b, BaseModel):
                return b
    return None


_EXPECTED = {
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
    "tuple_type": "a name or a list of names",
    "list_type": "a list",
    "dict_type": "a mapping of keys",
    "model_type": "a mapping of keys",
    "model_attributes_type": "a mapping of keys",
}


def problem(model: type[BaseModel], error: Mapping[str, Any]) -> str:
    """What is wrong, after the key's name: ``must be in 16..4096, got 100000``."""
    kind = error["type"]
    ctx = error.get("ctx") or {}
    got = f", got {error['input']!r}" if "input" in error else ""
    if kind in _EXPECTED:
        return f"must be {_EXPECTED[kind]}{got}"
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        info = _field(model, error["loc"])
        b: dict[str, Any] = {}
        for m in info.metadata if info is not None else ():
            for name in ("ge", "gt", "le", "lt"):
                if getattr(m, name, None) is not None:
                    b[name] = getattr(m, name)
        low, high = b.get("ge", b.get("gt")), b.get("le", b.get("lt"))
        extra = (
            info.json_schema_extra if info is not None and isinstance(info.json_schema_extra, dict) else {}
        )
        unit = f" {extra['unit']}" if extra.get("unit") else ""
        if low is not None and high is not None:
            if "ge" in b and "le" in b:  # whole ranges read as 16..4096
                return f"must be in {_bound(low)}..{_bound(high)}{unit}{got}"
            left, right = ("[" if "ge" in b else "("), ("]" if "le" in b else ")")
            return f"must be in {left}{_bound(low)}, {_bound(high)}{right}{unit}{got}"
        text = {
            "greater_than_equal": f"at least {_bound(ctx.get('ge'))}",
            "less_than_equal": f"at most {_bound(ctx.get('le'))}",
            "greater_than": f"more than {_bound(ctx.get('gt'))}",
            "less_than": f"less than {_bound(ctx.get('lt'))}",
        }[kind]
        return f"must be {text}{got}"
    if kind == "literal_error":
        choices = str(ctx.get("expected", "")).replace("'", "").replace(" or ", ", ")
        return f"must be one of {choices}{got}"
    if kind in ("value_error", "assertion_error"):
        text = str(ctx.get("error", error.get("msg", "")))
        return text if not text.startswith("Value error, ") else text[len("Value error, ") :]
    if kind == "union_tag_invalid":
        return f"must be one of {ctx.get('expected_tags', '')}, got {ctx.get('tag')!r}"
    return " ".join(str(error.get("msg", kind)).split()).rstrip(".").lower() + got


@dataclass(frozen=True)
class Caller:
    """How the caller names a key: Python keywords (this base), flags or a file's keys."""

    def key(self, model: type[BaseModel], loc: Sequence[Any]) -> str:
        """``tile_size``, ``classify.ndvi_min``, ``accuracy[0].map``."""
        out = ""
        for part in loc:
            out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
        return out

    def known(self, model: type[BaseModel]) -> list[str]:
        return [info.alias or name for name, info in model.model_fields.items()]

    def path(self) -> str | os.PathLike[str] | None:
        return None

    def error(self, model: type[BaseModel], exc: ValidationError) -> GeosegError:
        """The first of ``exc``'s errors as one line (a union's ``None`` branch is skipped)."""
        errors = [e for e in exc.errors() if e["type"] != "none_required"] or exc.errors()
        e = errors[0]
        loc = [p for p in e["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
        key = self.key(model, loc)
        if e["type"] == "extra_forbidden":
            parent = _model_at(model, loc[:-1])
            known = self.known(parent) if parent is not None else []
            name = str(loc[-1]) if loc else ""
            where = self.key(model, loc[:-1])
            text = f"{where}: unknown key {name!r}" if where else f"unknown key {name!r}"
            if known:
                text += f"{suggest(name, known)}; known keys: {', '.join(known)}"
            return ConfigError(text, self.path())
        if e["type"] == "missing":
            info = _field(model, loc)
            hint = f" ({info.description})" if info is not None and info.description else ""
            where = self.key(model, loc[:-1])
            name = str(loc[-1]) if loc else ""
            return ConfigError(f"{where + ': ' if where else ''}missing key {name!r}{hint}", self.path())
        text = problem(model, e)
        # a validator's own sentence after a colon ("date: date 'x' is not ...")
        return ConfigError(f"{key}{'' if text.startswith(':') else ' '}{text}", self.path())


KEYWORDS = Caller()


@dataclass(frozen=True)
class Flags(Caller):
    """Command-line flags: ``--tile-size``."""

    def key(self, model: type[BaseModel], loc: Sequence[Any]) -> str:
        info = _field(model, loc[:1])
        return flag_of(str(loc[0]), info) if loc and info is not None else super().key(model, loc)


@dataclass(frozen=True)
class InFile(Caller):
    """Keys of a YAML file: ``steps[2].tile_size``, with the file named first."""

    file: str | os.PathLike[str]
    prefix: str = ""
    #: keys that are not the model's own fields but the file's (a step's name and kind)
    extra_known: tuple[str, ...] = ()

    def key(self, model: type[BaseModel], loc: Sequence[Any]) -> str:
        inner = super().key(model, loc)
        if not self.prefix:
            return inner
        return f"{self.prefix}.{inner}" if inner and not inner.startswith("[") else self.prefix + inner

    def known(self, model: type[BaseModel]) -> list[str]:
        return [*dict.fromkeys([*self.extra_known, *super().known(model)])]

    def path(self) -> str | os.PathLike[str] | None:
        return self.file


def flag_of(name: str, info: FieldInfo | None) -> str:
    """The command-line flag of a field: its own ``flag`` or ``--field-name``."""
    extra = info.json_schema_extra if info is not None and isinstance(info.json_schema_extra, dict) else {}
    given = extra.get("flag")
    return str(given) if given else "--" + name.replace("_", "-")
