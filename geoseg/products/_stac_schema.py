"""STAC documents validated against the official JSON Schemas, offline.

:func:`validate_stac` checks an Item, Collection or Catalog against the schema of its STAC
version and of every extension it lists, with ``jsonschema``; the schemas, and every
schema they ``$ref`` (GeoJSON, PROJJSON, the draft-07 meta-schema), are read from a folder
laid out by URL (``https://stac-extensions.github.io/raster/v1.1.0/schema.json`` is
``stac-extensions.github.io/raster/v1.1.0/schema.json`` under it), never downloaded: a
schema the folder does not hold is reported as an error, not fetched. Files are registered
under the URL they were asked for, not their ``$id`` (STAC 1.1.0's ``common.json`` declares
``.../commonjson``).

pystac's own ``validate()`` does the same with its schema cache, but downloads what is not
in it, and before 1.12 validated STAC 1.1.0 documents against the wrong rules; geoseg needs
pystac >= 1.12 for the documents it writes, and the tests run both validators.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from geoseg.errors import ConfigError

PathLike = str | os.PathLike[str]

CORE = {"Feature": "item", "Collection": "collection", "Catalog": "catalog"}


def core_schema_url(doc: Mapping[str, Any]) -> str:
    """The URL of the core schema for ``doc``'s type and STAC version."""
    kind = CORE.get(str(doc.get("type")))
    if kind is None:
        raise ConfigError(f"type {doc.get('type')!r} is not a STAC Item (Feature), Collection or Catalog")
    return f"https://schemas.stacspec.org/v{doc.get('stac_version')}/{kind}-spec/json-schema/{kind}.json"


def schema_path(root: PathLike, url: str) -> Path:
    """Where the schema at ``url`` lies in the folder ``root`` (scheme and fragment dropped)."""
    rest = url.split("://", 1)[-1].split("#", 1)[0]
    return Path(root) / rest


@lru_cache(maxsize=8)
def _registry(root: str) -> Any:
    import referencing
    import referencing.exceptions
    from referencing.jsonschema import DRAFT7

    def retrieve(uri: str) -> Any:
        path = schema_path(root, uri)
        try:
            contents = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise referencing.exceptions.NoSuchResource(ref=uri) from exc  # type: ignore[call-arg]
        # draft-07 when a schema does not say (GeoJSON's and PROJJSON's say)
        return referencing.Resource.from_contents(contents, default_specification=DRAFT7)

    return referencing.Registry(retrieve=retrieve)  # type: ignore[call-arg]


def _leaves(error: Any) -> Iterator[Any]:
    if not error.context:
        yield error
    for sub in error.context or ():
        yield from _leaves(sub)


def _cause(error: Any) -> Any:
    """The most telling failure under a ``oneOf``/``anyOf``/``allOf``/``if`` error: the deepest
    in the document. An extension schema's branches are "an Item" and "a Collection"; the
    Collection branch fails on ``type`` at the top, which says nothing about the Item."""

    def rank(e: Any) -> tuple[int, bool]:
        path = list(e.absolute_path)
        return len(path), not (path == ["type"] and e.validator == "const")

    return max(_leaves(error), key=rank)


def _message(error: Any, prefix: str) -> str:
    cause = _cause(error)
    where = "/".join(str(p) for p in cause.absolute_path) or "(document)"
    detail = cause.message if len(cause.message) <= 300 else cause.message[:297] + "..."
    return f"{prefix}: {where}: {detail}"


def validate_stac(doc: Mapping[str, Any], schemas: PathLike) -> list[str]:
    """Validate a STAC document against its core and extension schemas, read from ``schemas``.

    Parameters
    ----------
    doc
        An Item, Collection or Catalog as a dict (as written to its JSON file).
    schemas
        A folder holding the JSON Schemas by URL path (e.g. ``schemas.stacspec.org/v1.1.0/...``).

    Returns
    -------
    list of str
        One line per violation, ``"<schema name>: <path in the document>: <what is wrong>"``;
        empty when the document is valid. A schema the folder lacks is one such line.
    """
    try:
        import jsonschema
        import referencing.exceptions
    except ModuleNotFoundError as exc:  # a test dependency, not a core one
        raise ConfigError("validating STAC needs jsonschema: pip install 'jsonschema>=4.18'") from exc
    root = str(Path(schemas).resolve())
    if not Path(root).is_dir():
        raise ConfigError(f"no folder of STAC JSON Schemas at {schemas}")
    registry = _registry(root)
    urls = [core_schema_url(doc)] + [str(u) for u in doc.get("stac_extensions", []) or []]
    problems: list[str] = []
    for url in urls:
        name = url.split("://", 1)[-1].removesuffix("/schema.json")
        try:
            schema = registry.get_or_retrieve(url).value.contents
        except (referencing.exceptions.NoSuchResource, referencing.exceptions.Unretrievable):
            problems.append(f"{name}: the schema is not in {schemas} (no download is tried)")
            continue
        cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
        validator = cls(schema, registry=registry, format_checker=cls.FORMAT_CHECKER)
        try:
            errors = sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
        except referencing.exceptions.Unresolvable as exc:
            problems.append(f"{name}: refers to {exc.ref}, which is not in {schemas}")
            continue
        problems.extend(_message(error, name) for error in errors)
    return list(dict.fromkeys(problems))  # an error reached by two paths of a schema, once
