"""The options of a prediction, declared once, and what a prediction returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationInfo, field_validator

from geoseg.cluster import DaskOptions
from geoseg.inference._model import MAX_ZOOM
from geoseg.options import Names, Options, PathText, option
from geoseg.raster import MAX_TILE, Grid


class PredictSettings(Options):
    """How a model maps a scene: the tiling, the device, the test-time options.

    The keys of a workflow's predict step too; :class:`PredictOptions` adds what only a
    single run has (where it runs, probabilities, resume).
    """

    what = "predict"

    bands: Names | None = option(
        None, "Band names or 1-based indices to feed the model, in its order, comma-separated."
    )
    # a model's working memory grows with the tile; --overlap gives it context
    tile_size: int = option(512, "Tile core size in pixels.", ge=16, le=MAX_TILE)
    overlap: int = option(64, "Context pixels read around each tile core.", ge=0)
    batch_size: int | None = option(
        None,
        "Tiles per model batch (and per Dask task) [default: sized to tile and device: 4 at tile 512 on CPU].",
        ge=1,
    )
    device: str = option("auto", "auto, cpu or cuda[:N].")
    backend: Literal["auto", "torch", "onnx"] = option(
        "auto", "Inference engine (auto: ONNX Runtime on CPU)."
    )
    # one thread per worker process keeps results reproducible and the cores busy
    threads: int = option(1, "Model threads per worker.", ge=1)
    tta: bool = option(
        False,
        "Average the model over the 8 rotations/flips of each tile (8x slower, slightly more accurate).",
    )
    zoom: float | None = option(
        None,
        "Resample each tile by this factor for the model, e.g. 3 for a 10 m model on 30 m pixels "
        "(zoom^2 slower) [default: the model's own, 1 unless its card says otherwise].",
        gt=0,
        le=MAX_ZOOM,
    )

    input_scale: float | None = option(
        None,
        "Multiply the input's values by this before the model, when the image is on another scale than "
        "the model's training data (e.g. 0.0255: reflectance x 10000 into a model of 8-bit imagery).",
        gt=0,
    )

    @field_validator("overlap")
    @classmethod
    def _inside_the_tile(cls, v: int, info: ValidationInfo) -> int:
        tile = info.data.get("tile_size")
        if isinstance(tile, int) and v >= tile:
            raise ValueError(f"must be in 0..{tile - 1}, got {v}")
        return v

    def batch_for(self, device: str) -> int:
        """Tiles per batch on ``device`` (a resolved device name)."""
        from geoseg.inference._device import auto_batch_size

        if self.batch_size is not None:
            return self.batch_size
        # the pixels the model sees: a zoomed tile costs zoom^2 as much memory
        zoom = 1.0 if self.zoom is None else self.zoom
        return auto_batch_size(device, round((zoom * (self.tile_size + 2 * self.overlap)) ** 2))

    def resolve(self) -> tuple[str, str, int]:
        """``(device, backend, tiles per batch)`` for the machine this runs on."""
        from geoseg.inference._device import resolve_backend, resolve_device

        dev = resolve_device(self.device)
        return dev, resolve_backend(self.backend, dev), self.batch_for(dev)


class PredictOptions(DaskOptions, PredictSettings):
    """Every option of one prediction (``geoseg predict``, :func:`geoseg.predict`)."""

    probabilities: PathText | None = option(
        None, "Also write per-class probabilities (uint8, value/254) to this file.", metavar="PATH"
    )
    resume: bool = option(False, "Reuse the tiles an interrupted run already finished.")


@dataclass
class PredictResult:
    """What a prediction made: the class COG, its grid, its tiles and how long it took."""

    out: Path
    grid: Grid
    tiles: int
    tiles_predicted: int
    tiles_skipped: int
    tiles_resumed: int
    seconds: float
    probabilities: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def megapixels(self) -> float:
        return self.grid.height * self.grid.width / 1e6

    def summary(self) -> str:
        mp = self.megapixels
        return (
            f"{self.out}: {self.grid.width} x {self.grid.height} px ({mp:.1f} MP), "
            f"{self.tiles} tile{'' if self.tiles == 1 else 's'} "
            f"({self.tiles_predicted} predicted, {self.tiles_skipped} all-nodata skipped, "
            f"{self.tiles_resumed} resumed) in {self.seconds:.1f} s, {mp / max(self.seconds, 1e-9):.2f} MP/s"
        )
