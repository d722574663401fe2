"""The options of comparing two class maps and of tracking forest loss, declared once."""

from __future__ import annotations

from pydantic import field_validator

from geoseg.cluster import DaskOptions
from geoseg.errors import ConfigError
from geoseg.options import Labels, Names, Options, option
from geoseg.temporal._dates import parse_date
from geoseg.temporal._spectral import ClassifyOptions
from geoseg.vector import LegendOptions

# 1024 px: a block's partial sums and codes stay small while a task still has seconds of work
DEFAULT_BLOCK = 1024


class ChangeSettings(Options):
    """What a comparison of two maps keeps; the keys of a workflow's change step too."""

    what = "change"

    from_classes: Labels | None = option(
        None, "Only changes from this class (name or id); repeatable [default: any].",
        flag="--from", alias="from", metavar="CLASS",
    )  # fmt: skip
    to_classes: Labels | None = option(
        None, "Only changes to this class (name or id); repeatable [default: any].",
        flag="--to", alias="to", metavar="CLASS",
    )  # fmt: skip
    min_area_ha: float = option(
        0.0, "Leave change polygons smaller than this out of the layer (tables count every pixel).",
        flag="--min-area", metavar="HECTARES", ge=0,
    )  # fmt: skip
    landcover: bool = option(False, "Also write both dates' land-cover polygon layers.")
    block_size: int = option(DEFAULT_BLOCK, "Block side in pixels (one Dask task).", ge=16)


class ChangeOptions(DaskOptions, LegendOptions, ChangeSettings):
    """Every option of ``geoseg change`` / :func:`geoseg.change`."""


def _check_dates(dates: tuple[str, ...] | None) -> tuple[str, ...] | None:
    for d in dates or ():
        try:
            parse_date(d)
        except ConfigError as exc:
            raise ValueError(f": {exc}") from None
    return dates


class TrackSettings(Options):
    """How forest loss is tracked over a dated series; the keys of a workflow's track step too."""

    what = "track"

    dates: Labels | None = option(
        None, "Date of each map (YYYY, YYYY-MM or YYYY-MM-DD), oldest first: repeat the option or give a "
        "comma-separated list [default: from the maps: a time series, or file names like 1985.tif].",
        metavar="DATE",
    )  # fmt: skip
    forest: Labels = option(..., "The forest class (name or id); repeatable.", metavar="CLASS")
    persist: int | None = option(
        None, "Dates a pixel must stay non-forest to count as lost [default: 2, or 1 with two maps].",
        ge=1, metavar="K",
    )  # fmt: skip
    min_area_ha: float = option(
        0.0, "Leave loss/regrowth polygons smaller than this out of the layers.",
        flag="--min-area", metavar="HECTARES", ge=0,
    )  # fmt: skip
    classify: ClassifyOptions | None = option(
        None, "The maps are imagery: classify forest / non-forest / water first.", cli=False
    )
    bands: Names | None = option(
        None, "With classify (--spectral): the imagery's band names in file order, e.g. swir1,nir,red,green."
    )
    block_size: int = option(DEFAULT_BLOCK, "Block side in pixels (one Dask task).", ge=16)

    _dates_parse = field_validator("dates")(_check_dates)


class TrackOptions(DaskOptions, LegendOptions, TrackSettings):
    """Every option of ``geoseg track`` / :func:`geoseg.track`."""
