"""Maps over time: aligned maps, transition matrices and change rasters, first year of forest loss, the spectral baseline."""

from __future__ import annotations

from geoseg.temporal._align import AlignedMaps, align_maps, resolve_classes
from geoseg.temporal._change import ChangeEncoding, ChangeResult, detect_change
from geoseg.temporal._dates import check_dates, parse_date
from geoseg.temporal._spectral import (
    NEEDED,
    SPECTRAL_CLASSES,
    ForestThresholds,
    classify_series,
    open_imagery,
)
from geoseg.temporal._track import (
    LOSS_NODATA,
    TrackResult,
    check_persist,
    first_loss,
    loss_year_palette,
    track_loss,
)

__all__ = [
    "LOSS_NODATA",
    "NEEDED",
    "SPECTRAL_CLASSES",
    "AlignedMaps",
    "ChangeEncoding",
    "ChangeResult",
    "ForestThresholds",
    "TrackResult",
    "align_maps",
    "check_dates",
    "check_persist",
    "classify_series",
    "detect_change",
    "first_loss",
    "loss_year_palette",
    "open_imagery",
    "parse_date",
    "resolve_classes",
    "track_loss",
]
