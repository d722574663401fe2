"""The value types of the catalog's keys: each one's check and its one-line message, written once.

A catalog file is YAML, so values arrive as YAML gives them (lists, ints, ``datetime.date``
for an unquoted ``2017-02-16``); each type here turns that into the typed value the entries
hold (tuples, floats, ``"2017-02-16"``) or raises ``ValueError`` with the words a user reads
after the key's name (``expected a sha256 (64 hex digits), got 'abc'``). The models in
``_entries`` put them together; pydantic does the structure (unknown and missing keys,
nesting, the kind of an entry).
"""

from __future__ import annotations

import datetime as _dt
import re
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, GetCoreSchemaHandler
from pydantic_core import CoreSchema, core_schema

from geoseg.options import Options

#: The config of every catalog model: ``Options``'s (frozen, strict, unknown keys refused).
#: Entries are not operation options (no flags, no ``build``/``replace`` in the caller's
#: terms), so they share the config rather than the class.
CONFIG: ConfigDict = Options.model_config

_SHA256 = re.compile(r"^[0-9a-f]{64}$")

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")

_DATE = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?$")

_COLOUR = re.compile(r"#[0-9a-fA-F]{6}")


class At(ValueError):
    """A problem found by a check that sees more than one key (a model validator).

    ``at`` is where it is, relative to the model that raised it (``("paths",)``,
    ``("rasters", 3, "date")``); ``parent`` names the mapping that holds the key in
    error rather than the key itself (a bad class value is reported at ``classes``).
    """

    def __init__(self, message: str, *at: str | int, parent: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.at = at
        self.parent = parent


def typename(value: object) -> str:
    """``a string``, ``a list``, ``nothing``: what a YAML value is, in words."""
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list"}
    if value is None:
        return "nothing"
    if isinstance(value, dict):
        return "a mapping" if value else "an empty mapping"
    if isinstance(value, str | list | tuple) and not value:
        return "an empty string" if isinstance(value, str) else "an empty list"
    return names.get(type(value), type(value).__name__)


def _optional(check: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``check``, letting an absent value (None) through."""
    return lambda value: None if value is None else check(value)


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected a non-empty string, got {typename(value)}")
    return value


def _name(value: Any) -> str:
    value = _text(value)
    if not _NAME.match(value):
        raise ValueError(f"{value!r} must be lowercase letters, digits, '.', '_' or '-'")
    return value


def _rel(value: Any) -> str:
    """A POSIX path (or glob) that stays inside the directory it is relative to."""
    value = _text(value)
    p = PurePosixPath(value)
    if "\\" in value or p.is_absolute() or ".." in p.parts or not p.parts or p.parts[0] == ".":
        raise ValueError(f"{value!r} is not a relative POSIX path inside the data root")
    return p.as_posix()


def _url(value: Any) -> str:
    value = _text(value)
    parsed = urllib.parse.urlparse(value)
    if not ((parsed.scheme in ("http", "https") and parsed.netloc) or parsed.scheme == "file"):
        raise ValueError(f"{value!r} is not an http(s) or file URL")
    return value


def _url_template(value: Any) -> str:
    value = _url(value)
    if "{path}" not in value and "{name}" not in value:
        raise ValueError(f"{value!r} has neither {{path}} nor {{name}} in it")
    return value


def _sha256(value: Any) -> str:
    if not isinstance(value, str) or not _SHA256.match(value.lower()):
        raise ValueError(f"expected a sha256 (64 hex digits), got {value!r}")
    return value.lower()


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a number, got {typename(value)}")
    return float(value)


def _names(value: Any) -> tuple[str, ...]:
    if isinstance(value, tuple):  # built in Python (a time series' scene), already checked
        value = list(value)
    if not isinstance(value, list) or not value:
        raise ValueError(f"expected a non-empty list of strings, got {typename(value)}")
    for item in value:
        if not isinstance(item, str) or not item.strip():
            raise ValueError(f"expected strings, got {typename(item)} ({item!r})")
    if len(set(value)) != len(value):
        raise ValueError(f"has duplicates: {value}")
    return tuple(value)


def _rel_paths(value: Any) -> tuple[str, ...]:
    return tuple(_rel(p) for p in _names(value))


def _sizes(value: Any) -> tuple[float, ...]:
    if not isinstance(value, list | tuple) or not value:
        raise ValueError(f"expected a non-empty list of numbers, got {typename(value)}")
    sizes = tuple(_number(v) for v in value)
    if any(s <= 0 for s in sizes):
        raise ValueError(f"pixel sizes must be positive, got {list(value)}")
    return sizes


def _date(value: Any) -> str:
    if isinstance(value, _dt.date) and not isinstance(value, _dt.datetime):
        return value.isoformat()  # YAML reads an unquoted 2017-02-16 as a date
    if isinstance(value, int) and not isinstance(value, bool) and 1000 <= value <= 9999:
        return str(value)
    if isinstance(value, str) and _DATE.match(value) and _real_date(value):
        return value
    raise ValueError(f"expected a date YYYY, YYYY-MM or YYYY-MM-DD, got {value!r}")


def _real_date(text: str) -> bool:
    """``2001-13`` and ``2001-02-30`` match the pattern but are no dates."""
    if len(text) == 4:
        return True
    try:
        _dt.date.fromisoformat(f"{text}-01" if len(text) == 7 else text)
    except ValueError:
        return False
    return True


def _colour(value: Any) -> tuple[int, int, int]:
    """``"#rrggbb"`` or ``[r, g, b]`` (0..255 each)."""
    if isinstance(value, str) and _COLOUR.fullmatch(value):
        return (int(value[1:3], 16), int(value[3:5], 16), int(value[5:7], 16))
    if (
        isinstance(value, list | tuple)
        and len(value) == 3
        and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in value)
    ):
        return (value[0], value[1], value[2])
    raise ValueError(f'expected "#rrggbb" or [r, g, b] with values 0..255, got {value!r}')


def _class_value(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 254:
        raise At(
            f"class value {value!r} must be an integer 0..254 (255 is the class maps' nodata)", parent=True
        )
    return value


def _as_tuple(what: str, *, empty: bool = True) -> Callable[[Any], Any]:
    """A YAML list as a tuple (strict models take tuples only: they stay hashable)."""

    def convert(value: Any) -> Any:
        if not isinstance(value, list | tuple) or (not empty and not value):
            raise ValueError(f"expected {what}, got {typename(value)}")
        return tuple(value)

    return convert


def one_of(choices: Sequence[str], what: str, plural: str) -> Callable[[Any], str]:
    """A check that the value is one of ``choices``: ``unknown rule 'prefix' (rules: stem)``."""

    def check(value: Any) -> str:
        if value not in choices:
            raise ValueError(f"unknown {what} {value!r} ({plural}: {', '.join(choices)})")
        return str(value)

    return check


Text = Annotated[str, BeforeValidator(_text)]
OptionalText = Annotated[str | None, BeforeValidator(_optional(_text))]
EntryName = Annotated[str, BeforeValidator(_name)]
RelPath = Annotated[str, BeforeValidator(_rel)]
#: an entry's directory: absent or null is the data root itself
RelDir = Annotated[str, BeforeValidator(lambda v: "" if v is None else _rel(v))]
OptionalRelPath = Annotated[str | None, BeforeValidator(_optional(_rel))]
Url = Annotated[str, BeforeValidator(_url)]
OptionalUrl = Annotated[str | None, BeforeValidator(_optional(_url))]
OptionalUrlTemplate = Annotated[str | None, BeforeValidator(_optional(_url_template))]
Sha256 = Annotated[str, BeforeValidator(_sha256)]
OptionalSha256 = Annotated[str | None, BeforeValidator(_optional(_sha256))]
OptionalNumber = Annotated[float | None, BeforeValidator(_optional(_number))]
OptionalNames = Annotated[tuple[str, ...] | None, BeforeValidator(_optional(_names))]
RelPaths = Annotated[tuple[str, ...], BeforeValidator(_rel_paths)]
OptionalSizes = Annotated[tuple[float, ...] | None, BeforeValidator(_optional(_sizes))]
Date = Annotated[str, BeforeValidator(_date)]
OptionalColour = Annotated[tuple[int, int, int] | None, BeforeValidator(_optional(_colour))]
ClassValue = Annotated[int, BeforeValidator(_class_value)]


def as_tuple(what: str, *, empty: bool = True) -> BeforeValidator:
    """Annotation: a YAML list (of ``what``) held as a tuple; ``empty=False`` refuses ``[]``."""
    return BeforeValidator(_as_tuple(what, empty=empty))


@dataclass(frozen=True)
class FromMapping:
    """Annotation: a YAML mapping ``{key: item}`` checked as ``dict[key, item]``, held as a tuple.

    The catalog writes files, classes and splits as mappings (``b1.tif: <sha256>``,
    ``1: forest``, ``training: {images, masks}``), which is short to write and makes a
    repeated key a YAML error; the entries hold them as tuples of records that carry
    their key (``FileRecord.path``, ``LabelClass.value``, ``Split.name``). Errors keep
    the mapping's keys in their location (``files.b1.tif``, ``classes.1.colour``).
    """

    key: Any
    item: type[BaseModel]
    #: builds the tuple from the checked ``{key: item}``
    build: Callable[[dict[Any, Any]], tuple[Any, ...]]
    #: what the mapping holds, for the message when it is something else
    what: str

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        mapping = handler.generate_schema(dict[self.key, self.item])  # type: ignore[name-defined]

        def not_empty(value: Any) -> Any:
            if not isinstance(value, dict) or not value:
                raise ValueError(f"expected {self.what}, got {typename(value)}")
            return value

        return core_schema.no_info_before_validator_function(
            not_empty, core_schema.no_info_after_validator_function(self.build, mapping)
        )
