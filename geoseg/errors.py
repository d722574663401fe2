"""geoseg's exceptions and warnings.

Every error a user can cause is a ``GeosegError``. Each subclass also inherits the
built-in exception a Python caller would expect (``BadRasterError`` is a ``ValueError``,
``MissingFileError`` a ``FileNotFoundError``) so library users can catch either.
The CLI turns any ``GeosegError`` into one line on stderr and exit status 2; anything
else escaping is a bug in geoseg.

Messages name the item first and say what to do, e.g.
``scene.tif: has no CRS; assign one with `gdal_edit.py -a_srs EPSG:XXXX scene.tif```.
"""

from __future__ import annotations

from collections.abc import Iterable
from os import PathLike


def _where(path: str | PathLike[str] | None, message: str) -> str:
    return f"{path}: {message}" if path is not None else message


class GeosegError(Exception):
    """Base class of every error caused by input, configuration or environment."""

    exit_code = 2

    def __init__(self, message: str, path: str | PathLike[str] | None = None) -> None:
        self.path = path
        super().__init__(_where(path, message))


class MissingFileError(GeosegError, FileNotFoundError):
    """An input file or directory does not exist."""


class BadRasterError(GeosegError, ValueError):
    """A raster cannot be opened or is unsuitable (no CRS, wrong dtype, truncated...)."""


class BandError(BadRasterError):
    """Band names or indices the raster does not have."""


class WindowError(GeosegError, ValueError):
    """A window that does not intersect its raster, or is malformed."""


class GridMismatchError(GeosegError, ValueError):
    """Rasters that should share a grid (or overlap) do not."""


class CatalogError(GeosegError, ValueError):
    """An unreadable catalog, an invalid entry, or an unknown entry name."""


class ChecksumError(CatalogError):
    """A file whose sha256 differs from the catalog's."""


class DataUnavailableError(GeosegError, RuntimeError):
    """Data that must be downloaded cannot be (offline, missing URL...)."""


class ModelError(GeosegError, ValueError):
    """A bad model spec or checkpoint, or a model that does not fit the data."""


class ExportError(ModelError):
    """A model that cannot be exported to ONNX, or whose export does not compute what it does."""


class ConfigError(GeosegError, ValueError):
    """A workflow or training config with unknown keys or invalid values."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (GDAL and torch write paragraphs), or its type."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def refuse_unknown_keys(given: Iterable[str], known: Iterable[str], where: str) -> None:
    """A ConfigError naming every key of ``given`` not in ``known``, and the known ones."""
    known = sorted(known)
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; known keys: {', '.join(known)}")


class OutputError(GeosegError, OSError):
    """An output path that cannot be written, or would overwrite an input."""


class SchedulerError(GeosegError, ConnectionError):
    """A Dask scheduler that cannot be reached."""


class GeosegWarning(UserWarning):
    """Base class of geoseg's warnings, so callers can filter them together."""


class DataQuirkWarning(GeosegWarning):
    """Real data that needed fixing up on the way in (e.g. a mask cropped to its image)."""


class CogWarning(GeosegWarning):
    """A COG that is valid but not optimal."""


class BackendWarning(GeosegWarning):
    """The inference backend ``auto`` chose could not be used; another one runs instead."""


class MissingExtraError(GeosegError, ImportError):  # type: ignore[misc]  # both have a path
    """A library that an optional part of geoseg needs (``geoseg[predict]``) is not installed."""


#: The modules each optional extra brings, by top-level name.
EXTRA_OF_MODULE = {
    "torch": "predict",
    "torchvision": "predict",
    "segmentation_models_pytorch": "predict",
    "timm": "predict",
    "onnx": "predict",
    "onnxscript": "predict",
    "onnxruntime": "predict",
}


def missing_extra(exc: ModuleNotFoundError, what: str) -> MissingExtraError | None:
    """The one line for a module an extra would have brought (None for any other module)."""
    top = (exc.name or "").split(".")[0]
    extra = EXTRA_OF_MODULE.get(top)
    if extra is None:
        return None
    return MissingExtraError(
        f"{what} needs {top}, which is not installed; install it with `pip install 'geoseg[{extra}]'`"
    )
