"""The data catalog: ``data_catalog.yaml`` -> validated, typed entries, resolved against a data root.

An entry names one dataset (or model) and says, for users, where its original lives: a
``source`` (landing page, licence, citation, optionally how to download it) and every file with
its sha256. The files themselves never live in the repository: they sit under a *data root*
(``$GEOSEG_DATA``, ``../shared/data`` beside a checkout, or a per-user data directory) and
``fetch`` downloads the missing ones, checking each sha256 before it is moved into place.

Four kinds of entries:

- ``scene``: one image, from one multi-band file or several single-band files stacked in order.
- ``timeseries``: dated rasters with the same band layout.
- ``labelset``: either image tiles paired with class masks per split (training/validation/test),
  or one scene with a dense label raster and/or label polygons/points.
- ``model``: a checkpoint file, found in the package's ``models`` directory or the data root.

The catalog is validated strictly when loaded: an unknown key, a missing key, a wrong type, an
unknown kind, a duplicate name or a path that leaves the data root raises ``CatalogError``
naming the catalog file, the entry and the key. The library never prints; downloads report
through a ``Progress`` callback."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import overload

import yaml

from geoseg.data._entries import E, Entry
from geoseg.data._parse import _parse_catalog, _StrictLoader, _yaml_problem
from geoseg.data._paths import CATALOG_ENV, PathLike, default_catalog_path
from geoseg.errors import (
    CatalogError,
)


@dataclass(frozen=True)
class Catalog:
    """The validated entries of one catalog file."""

    path: Path
    entries: tuple[Entry, ...]

    def names(self) -> list[str]:
        """The entry names, in catalog order."""
        return [e.name for e in self.entries]

    def __iter__(self) -> Iterator[Entry]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, name: object) -> bool:
        return any(e.name == name for e in self.entries)

    @overload
    def get(self, name: str) -> Entry: ...
    @overload
    def get(self, name: str, kind: type[E]) -> E: ...

    def get(self, name: str, kind: type[Entry] | None = None) -> Entry:
        """The entry called ``name``; with ``kind`` (e.g. ``SceneEntry``) it must be of that kind."""
        for e in self.entries:
            if e.name == name:
                if kind is not None and not isinstance(e, kind):
                    want = kind.kind or kind.__name__
                    raise CatalogError(f"entry {name!r} is a {e.kind}, not a {want}", path=self.path)
                return e
        raise CatalogError(
            f"no entry {name!r}; known entries: {', '.join(self.names()) or 'none'}", path=self.path
        )


def load_catalog(path: PathLike | None = None) -> Catalog:
    """Read and validate a catalog file (default: ``default_catalog_path()``)."""
    catalog_path = Path(path) if path is not None else default_catalog_path()
    try:
        text = catalog_path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise CatalogError("cannot read the catalog: not UTF-8 text", path=catalog_path) from None
    except OSError as exc:
        raise CatalogError(
            f"cannot read the catalog: {exc.strerror or exc}; pass --catalog PATH or set {CATALOG_ENV}",
            path=catalog_path,
        ) from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass: no arbitrary objects
    except yaml.YAMLError as exc:
        raise CatalogError(f"not a valid YAML catalog: {_yaml_problem(exc)}", path=catalog_path) from None
    return Catalog(path=catalog_path, entries=_parse_catalog(data, catalog_path))
