"""Dates of class maps: parsing YYYY[-MM[-DD]] and checking a dated series."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date as Date

from geoseg.errors import ConfigError

_DATE_RE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$")


def parse_date(text: str) -> Date:
    """``YYYY``, ``YYYY-MM`` or ``YYYY-MM-DD`` -> a date (the first day of the year/month)."""
    m = _DATE_RE.match(str(text).strip())
    if not m:
        raise ConfigError(f"date {text!r} is not YYYY, YYYY-MM or YYYY-MM-DD")
    try:
        return Date(int(m.group(1)), int(m.group(2) or 1), int(m.group(3) or 1))
    except ValueError as exc:
        raise ConfigError(f"date {text!r} is not a real date ({exc})") from exc


def check_dates(dates: Sequence[str], n_maps: int) -> list[Date]:
    """Parse dates and require one per map, strictly increasing."""
    if len(dates) != n_maps:
        raise ConfigError(f"{len(dates)} dates given for {n_maps} maps; give one date per map, in order")
    parsed = [parse_date(d) for d in dates]
    for a, b, ta, tb in zip(parsed, parsed[1:], dates, dates[1:], strict=False):
        if b <= a:
            raise ConfigError(
                f"dates must be in increasing order, but {tb} follows {ta}; list maps oldest first"
            )
    return parsed
