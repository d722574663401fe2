"""The one YAML loader for every file geoseg reads: workflows, training configs, the catalog.

Safe YAML (no Python objects), with two rules plain PyYAML does not keep: a key given twice
in one mapping is refused (PyYAML silently keeps the last one, a typo's hiding place), and
merge keys (``<<: *defaults``) work the same in every file. Problems are one line naming
the file and the line.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from geoseg.errors import ConfigError, GeosegError, MissingFileError


class _StrictLoader(yaml.SafeLoader):
    """A SafeLoader that refuses duplicate mapping keys and resolves merge keys first."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    # Only keys written in this mapping can be duplicates: a key that a merge (``<<: *d``)
    # brings in and the mapping then sets again is an override, as YAML means it.
    seen: set[Any] = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        try:
            duplicate = key in seen
        except TypeError:  # an unhashable key: construct_mapping reports it
            continue
        if duplicate:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    loader.flatten_mapping(node)
    return loader.construct_mapping(node, deep=True)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def yaml_problem(exc: yaml.YAMLError) -> str:
    """One line out of a (multi-line) PyYAML error, with where it is."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None)
    if mark is not None and problem:
        return f"{problem} (line {mark.line + 1}, column {mark.column + 1})"
    return " ".join(str(exc).split())


def parse_yaml(text: str, path: str | os.PathLike[str], error: type[GeosegError] = ConfigError) -> Any:
    """``text`` (the content of ``path``) as Python values; ``error`` names the file on a problem."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass: no arbitrary objects
    except yaml.YAMLError as exc:
        raise error(f"not valid YAML: {yaml_problem(exc)}", path) from None


def read_yaml(
    path: str | os.PathLike[str], error: type[GeosegError] = ConfigError, what: str = "file"
) -> Any:
    """The YAML file at ``path`` as Python values (see the module doc for the rules);
    ``what`` names it when it is missing (``no such workflow file``)."""
    p = Path(path)
    if not p.is_file():
        raise MissingFileError(f"no such {what}" if not p.exists() else "is not a file", p)
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise error("not a UTF-8 text file", p) from None
    except OSError as exc:
        raise error(f"cannot be read ({exc.strerror or exc})", p) from None
    return parse_yaml(text, p, error)
