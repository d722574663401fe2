"""Where catalog files and data live: the catalog's own path, the data root, the shipped models."""

from __future__ import annotations

import os
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath

import platformdirs

CATALOG_ENV = "GEOSEG_CATALOG"

DATA_ENV = "GEOSEG_DATA"

CATALOG_FILENAME = "data_catalog.yaml"

CATALOG_VERSION = 1

KINDS = ("scene", "timeseries", "labelset", "model")

ARCHIVE_FORMATS = ("zip", "tar")

PAIR_RULES = ("stem",)

#: Network timeout of each connect and read, in seconds. Short, so that an offline machine
#: fails at once with a clear message instead of hanging.
TIMEOUT_S = 10.0

_PACKAGE_DIR = Path(__file__).resolve().parent.parent  # geoseg/

_REPO_ROOT = _PACKAGE_DIR.parent

#: Checkpoints shipped with the package; model entries look here before the data root.
MODELS_DIR = _PACKAGE_DIR / "models"

PathLike = str | os.PathLike[str]


def data_root() -> Path:
    """The directory that catalog paths are relative to.

    In order: ``$GEOSEG_DATA``; ``../shared/data`` beside the repository checkout this module
    runs from, or beside the current working directory; else the per-user data directory
    (which may not exist yet: ``fetch`` creates it): on Linux ``$XDG_DATA_HOME/geoseg`` or
    ``~/.local/share/geoseg``, on macOS ``~/Library/Application Support/geoseg``, on Windows
    ``%LOCALAPPDATA%\\geoseg``.
    """
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser().absolute()
    for base in (_REPO_ROOT, Path.cwd()):
        candidate = base.parent / "shared" / "data"
        if candidate.is_dir():
            return candidate.resolve()
    # platformdirs follows each platform's convention (and ignores a relative XDG_DATA_HOME,
    # as the XDG spec asks); appauthor=False: no vendor folder above geoseg's on Windows
    return Path(platformdirs.user_data_dir("geoseg", appauthor=False))


def default_catalog_path() -> Path:
    """``$GEOSEG_CATALOG``, else ``data_catalog.yaml`` at the root of the repository checkout,
    else the copy inside an installed package (``geoseg/data_catalog.yaml``, a symlink to the
    root's in the checkout, so a wheel carries the catalog its shipped models are named in).
    """
    env = os.environ.get(CATALOG_ENV)
    if env:
        return Path(env).expanduser()
    checkout = _REPO_ROOT / CATALOG_FILENAME
    return checkout if checkout.is_file() else _PACKAGE_DIR / CATALOG_FILENAME


def _root(root: PathLike | None) -> Path:
    return Path(root) if root is not None else data_root()


def _glob_match(path: str, pattern: str) -> bool:
    """Segment-wise glob match: ``*`` and ``?`` never cross ``/``."""
    parts, pats = path.split("/"), pattern.split("/")
    return len(parts) == len(pats) and all(fnmatchcase(a, p) for a, p in zip(parts, pats, strict=True))


def _pair_key(path: str, rule: str) -> str:
    # Only "stem" so far: the file name without its last extension.
    return PurePosixPath(path).stem
