"""Maps over time: aligned maps, transition matrices and change rasters, first year of forest loss, the spectral baseline."""

from __future__ import annotations

from geoseg.temporal._align import AlignedMaps, align_maps, resolve_classes
from geoseg.temporal._change import ChangeEncoding, ChangeReport, ChangeResult, change_styles, detect_change
from geoseg.temporal._dates import check_dates, parse_date
from geoseg.temporal._options import ChangeOptions, ChangeSettings, TrackOptions, TrackSettings
from geoseg.temporal._spectral import (
    NEEDED,
    SPECTRAL_CLASSES,
    ClassifyOptions,
    ForestThresholds,
    classify_series,
    open_imagery,
)
from geoseg.temporal._track import (
    LOSS_NODATA,
    TrackReport,
    TrackResult,
    check_persist,
    first_loss,
    track_loss,
    track_styles,
)

__all__ = [
    "LOSS_NODATA",
    "NEEDED",
    "SPECTRAL_CLASSES",
    "AlignedMaps",
    "ChangeEncoding",
    "ChangeOptions",
    "ChangeReport",
    "ChangeResult",
    "ChangeSettings",
    "ClassifyOptions",
    "ForestThresholds",
    "TrackOptions",
    "TrackReport",
    "TrackResult",
    "TrackSettings",
    "align_maps",
    "change_styles",
    "check_dates",
    "check_persist",
    "classify_series",
    "detect_change",
    "first_loss",
    "open_imagery",
    "parse_date",
    "resolve_classes",
    "track_loss",
    "track_styles",
]
