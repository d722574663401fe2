"""The input against the model: its values and pixel size checked before any tile runs.

A checkpoint records the value domain it was trained on (``ModelSpec.domain``: data type,
the 1st-99th percentiles of each band, pixel size). Before predicting, a sample of the
input's pixels (a few windows spread over the scene) is compared with it:

- **Another scale** (uint16 reflectance 0-10000 into a model trained on 8-bit imagery,
  reflectance 0-1 into an integer model): the input's values are several times larger
  or smaller than any the model saw, and the data types differ. That map would be
  plausible-looking and wrong, so it is refused, saying the scale that fixes it
  (``input_scale``).
- **Values far outside the training range** for a band (same data type, another sensor
  or processing level): predicted, with a warning that is recorded in the output's
  provenance.
- **Another pixel size** (a 10 m model on 30 m pixels): predicted, with a warning that
  suggests the zoom that matches them.

A checkpoint without a domain (made before it was recorded) is not checked.
"""

from __future__ import annotations

import warnings

import numpy as np

from geoseg.errors import GeosegWarning, ModelError
from geoseg.inference._model import ModelSpec
from geoseg.raster import Mosaic, PixelWindow, RasterSource

#: the scale rule: values this many times larger (or smaller) than the training range's
#: top, in another data type, are another scale, not another scene
SCALE_FACTOR = 4.0
#: a band warns when more than this share of its sampled values lie outside the training
#: range widened by half its width on each side
OUTSIDE_SHARE = 0.5
#: a pixel size this many times larger or smaller than the model's warns
PIXEL_RATIO = 1.5
SAMPLE_WINDOWS = 3  # per side: 9 windows of SAMPLE_SIZE^2
SAMPLE_SIZE = 256


class DomainWarning(GeosegWarning):
    """An input that the model can map but not as well as its own kind of data."""


def sample_pixels(source: RasterSource | Mosaic) -> np.ndarray:
    """``(bands, n)`` valid pixels from a grid of windows spread over the scene."""
    h, w = source.grid.shape
    size = min(SAMPLE_SIZE, h, w)
    parts = []
    for fr in np.linspace(0, 1, SAMPLE_WINDOWS):
        for fc in np.linspace(0, 1, SAMPLE_WINDOWS):
            window = PixelWindow(round(fr * (h - size)), round(fc * (w - size)), size, size)
            pixels, valid = source.read(window)
            parts.append(pixels[:, valid].astype(np.float64))
    return np.concatenate(parts, axis=1)


def check_inputs(
    source: RasterSource | Mosaic,
    spec: ModelSpec,
    model: str,
    label: str,
    zoom: float,
    input_scale: float | None,
) -> list[str]:
    """Refuse an input on another scale (``ModelError``); return the warnings (also issued as
    :class:`DomainWarning`) for values far outside the training range and another pixel size."""
    dom = spec.domain
    if dom is None:
        return []
    found: list[str] = []
    px_in, px_model = source.grid.pixel_size_m, dom.pixel_size_m
    if px_in and px_model:
        seen = px_in / zoom  # the pixel size the model sees after zooming
        if not 1 / PIXEL_RATIO <= seen / px_model <= PIXEL_RATIO:
            found.append(
                f"{label} has {px_in:.3g} m pixels and {model} was trained on {px_model:.3g} m ones"
                f"{f' (at zoom {zoom:g} it sees {seen:.3g} m)' if zoom != 1 else ''}; zoom {px_in / px_model:.3g} "
                "would match them"
            )
    values = sample_pixels(source)
    if values.shape[1]:
        values *= input_scale if input_scale is not None else 1.0
        top_in = float(np.percentile(values, 99, axis=1).max())
        top_model = float(max(dom.high))
        ratio = top_in / top_model if top_model > 0 else 1.0
        other_scale = not 1 / SCALE_FACTOR <= ratio <= SCALE_FACTOR
        if other_scale and input_scale is None and source.dtype != dom.dtype:
            fix = (
                f"rescale it to the model's values with an input_scale of about {1 / ratio:.3g} "
                f"(--input-scale {1 / ratio:.3g}; 0.0255 takes reflectance x 10000 to 8-bit values)"
                if ratio > 0
                else "every sampled value is 0: check that this is imagery, not a mask or a class map"
            )
            raise ModelError(
                f"{label}: {source.dtype} values up to {top_in:.4g}, but {model} was trained on "
                f"{dom.dtype} values up to {top_model:.4g} ({dom.describe()}); {fix}"
            )
        for b, name in enumerate(spec.bands):
            lo, hi = dom.low[b], dom.high[b]
            margin = 0.5 * max(hi - lo, 1e-9)
            outside = float(np.mean((values[b] < lo - margin) | (values[b] > hi + margin)))
            if outside > OUTSIDE_SHARE:
                med = float(np.median(values[b]))
                found.append(
                    f"{label}: band {name}: {outside:.0%} of the sampled values lie far outside the "
                    f"{lo:.4g}..{hi:.4g} {model} was trained on (median {med:.4g}); the map may be wrong"
                )
    for text in found:
        warnings.warn(text, DomainWarning, stacklevel=3)
    return found
