"""A class of a class map (value, name, colour): shared by checkpoints and rasters alike.

Kept apart from :mod:`geoseg.io` so that the model and inference modules import without
the geospatial stack (GDAL): a GPU machine with torch alone can run them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ClassInfo:
    """One class of a class map: its value, name and display colour."""

    id: int
    name: str
    colour: tuple[int, int, int] = (128, 128, 128)


def default_colour(i: int) -> tuple[int, int, int]:
    """A stable, distinguishable colour for class ``i`` when none is given."""
    palette = [
        (34, 139, 34),
        (65, 105, 225),
        (238, 201, 0),
        (154, 205, 50),
        (210, 180, 140),
        (220, 20, 60),
        (0, 206, 209),
        (148, 0, 211),
        (255, 140, 0),
        (112, 128, 144),
    ]
    return palette[i % len(palette)]


#: the class-map contract's nodata value (uint8 maps; 0 is a real class)
CLASS_NODATA = 255
