"""geoseg: land-cover mapping over whole regions with tiled segmentation on Dask."""

from __future__ import annotations

import os

# No code path may hang on a hub download: the machines geoseg is built on have no hub
# access, and a mistaken download should fail at once rather than retry for 20 s.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

__version__ = "0.1.0"
