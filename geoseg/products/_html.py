"""HTML pages from Jinja2 templates: the one renderer every report geoseg writes goes through.

The templates are package data (``geoseg/products/templates/*.html.j2``) with
autoescaping on, so a class name, a file name or a workflow's description can never
turn into markup. Python decides *what* a page says (numbers, captions, links); the
templates decide how it is laid out.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import jinja2


def cell(value: Any) -> tuple[str, bool]:
    """A table cell's text and whether it is a number (numbers are right-aligned).

    Parameters
    ----------
    value
        Floats show 2 decimals with thousands separators (NaN as a dash); integers as
        they are; ``None`` as an empty cell; anything else as its ``str``.

    Returns
    -------
    tuple of (str, bool)
        The text and True for numbers.
    """
    if isinstance(value, float):  # numpy's float64 too
        return (f"{value:,.2f}" if value == value else "–"), True
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return str(value), True
    return ("" if value is None else str(value)), False


def number(value: Any, spec: str, missing: str = "–") -> str:
    """``format(value, spec)``, or ``missing`` for None (a score with nothing to score)."""
    if value is None:
        return missing
    return format(value, spec)


@functools.cache
def _environment() -> jinja2.Environment:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("geoseg.products", "templates"),
        autoescape=True,  # every page is HTML; values are escaped unless a template says otherwise
        undefined=jinja2.StrictUndefined,  # a misspelt field fails here, not as an empty cell
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["cell"] = cell
    env.filters["number"] = number
    return env


def render_html(template: str, **context: Any) -> str:
    """Render one of geoseg's page templates.

    Parameters
    ----------
    template
        A file name in ``geoseg/products/templates`` (e.g. ``"product_report.html.j2"``).
    **context
        The template's variables.

    Returns
    -------
    str
        The page.
    """
    return _environment().get_template(template).render(**context)
