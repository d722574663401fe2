"""The options of a prediction, and what a prediction returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from geoseg.errors import GeosegError
from geoseg.inference._model import check_zoom
from geoseg.raster import (
    MAX_TILE,
    Grid,
)


@dataclass(frozen=True)
class PredictOptions:
    tile_size: int = 512
    overlap: int = 64
    batch_size: int | None = None  # None: sized to the tile and device (inference.auto_batch_size)
    device: str = "auto"
    backend: str = "auto"
    threads: int = 1  # torch/ONNX threads per worker; one per core keeps results reproducible
    tta: bool = False  # mean over the 8 rotations/flips of each tile (inference.dihedral_mean)
    zoom: float = 1.0  # the model sees each tile resampled by this factor (inference.zoomed)

    def __post_init__(self) -> None:
        if not 16 <= self.tile_size <= MAX_TILE:
            raise GeosegError(
                f"--tile-size must be in 16..{MAX_TILE}, got {self.tile_size} (a model's working memory "
                "grows with the tile; --overlap gives it context)"
            )
        if self.overlap < 0 or self.overlap >= self.tile_size:
            raise GeosegError(f"--overlap must be in 0..{self.tile_size - 1}, got {self.overlap}")
        if self.batch_size is not None and self.batch_size < 1:
            raise GeosegError(f"--batch-size must be at least 1, got {self.batch_size}")
        check_zoom(self.zoom, "--zoom")

    def batch_for(self, device: str) -> int:
        """Tiles per batch on ``device`` (a resolved device name)."""
        from geoseg.inference._device import auto_batch_size

        if self.batch_size is not None:
            return self.batch_size
        # the pixels the model sees: a zoomed tile costs zoom^2 as much memory
        return auto_batch_size(device, round((self.zoom * (self.tile_size + 2 * self.overlap)) ** 2))

    def resolve(self) -> tuple[str, str, int]:
        """``(device, backend, tiles per batch)`` for the machine this runs on."""
        from geoseg.inference._device import resolve_backend, resolve_device

        dev = resolve_device(self.device)
        return dev, resolve_backend(self.backend, dev), self.batch_for(dev)


@dataclass
class PredictResult:
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
