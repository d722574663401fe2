"""Products: STAC items, quick-looks, HTML reports and accuracy against known truth."""

from __future__ import annotations

from geoseg.products._html import render_html
from geoseg.products._plots import plot_class_map, plot_image
from geoseg.products._reports import change_report, track_report
from geoseg.products._scores import class_areas, score_loss, score_map
from geoseg.products._stac import Product, check_stac, write_stac
from geoseg.products._stac_model import model_item, write_model_item
from geoseg.products._stac_schema import validate_stac
from geoseg.products._tiles import TilePanels, tile_panels

__all__ = [
    "Product",
    "TilePanels",
    "change_report",
    "check_stac",
    "class_areas",
    "model_item",
    "plot_class_map",
    "plot_image",
    "render_html",
    "score_loss",
    "score_map",
    "tile_panels",
    "track_report",
    "validate_stac",
    "write_model_item",
    "write_stac",
]
