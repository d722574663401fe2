"""The tile store: finished tiles on disk beside the output, so an interrupted run resumes exactly."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from geoseg import __version__


def _manifest_token(manifest: Path) -> str | None:
    """The run token a tile store was made for; None when absent or cut off."""
    try:
        token = json.loads(manifest.read_text()).get("token")
    except (OSError, ValueError):
        return None
    return token if isinstance(token, str) else None


class TileStore:
    """Finished tiles on disk beside the output, so an interrupted run can resume."""

    def __init__(self, out: Path, token: str, resume: bool) -> None:
        self.dir = out.with_name(f".{out.name}.tiles")
        manifest = self.dir / "manifest.json"
        if resume and _manifest_token(manifest) == token:
            # a tile that was being written when the run was killed is cut off: drop it
            for part in self.dir.glob("*.npz.part"):
                part.unlink()
            return
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True)
        manifest.write_text(json.dumps({"token": token, "geoseg": __version__}))

    def done(self) -> set[str]:
        return {p.name[: -len(".npz")] for p in self.dir.glob("*.npz")}

    def put(self, key: str, classes: np.ndarray | None, probs: np.ndarray | None) -> None:
        # not "*.npz": done() must never see a file that a SIGKILL may have cut off
        tmp = self.dir / f"{key}.npz.part"
        arrays = {} if classes is None else {"classes": classes}
        if probs is not None:
            arrays["probs"] = probs
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)  # type: ignore[arg-type]
        os.replace(tmp, self.dir / f"{key}.npz")  # a tile is either complete or absent

    def get(self, key: str) -> tuple[np.ndarray | None, np.ndarray | None]:
        with np.load(self.dir / f"{key}.npz") as z:
            return (
                z["classes"] if "classes" in z.files else None,
                z["probs"] if "probs" in z.files else None,
            )

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
