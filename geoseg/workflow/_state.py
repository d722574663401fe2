"""A workflow folder's state: what each step wrote, and the hashes of files (cached by size and mtime)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from geoseg import __version__
from geoseg.errors import OutputError
from geoseg.files import file_sha256, folder_sha256
from geoseg.workflow._spec import (
    STATE_VERSION,
    WORK_DIR,
)


@dataclass
class StepRecord:
    """What the state file remembers of a finished step."""

    kind: str
    fingerprint: str
    finished: str
    seconds: float
    outputs: dict[str, list[dict[str, Any]]]  # output -> [{path (relative), key, date, sha256}]
    files: dict[str, dict[str, Any]]  # relative path -> {size, mtime_ns, sha256}
    layers: dict[str, int]
    provenance: dict[str, Any]
    summary: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> StepRecord:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


@dataclass
class State:
    """``.geoseg-run.json``: step records and the content-hash cache."""

    path: Path
    steps: dict[str, StepRecord] = field(default_factory=dict)
    hashes: dict[str, dict[str, Any]] = field(default_factory=dict)
    workflow: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> State:
        if not path.exists():
            return cls(path)
        try:
            d = json.loads(path.read_text())
            if d.get("version") != STATE_VERSION:
                return cls(path)
            return cls(
                path,
                {k: StepRecord.from_json(v) for k, v in d.get("steps", {}).items()},
                dict(d.get("hashes", {})),
                dict(d.get("workflow", {})),
            )
        except (ValueError, TypeError, KeyError, AttributeError):
            return cls(path)  # unreadable state: everything reruns, nothing is lost

    def save(self) -> None:
        data = {
            "version": STATE_VERSION,
            "geoseg": __version__,
            "workflow": self.workflow,
            "steps": {k: v.to_json() for k, v in self.steps.items()},
            "hashes": self.hashes,
        }
        tmp = self.path.with_name(f".{self.path.name}.partial")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        os.replace(tmp, self.path)


class HashCache:
    """sha256 of files (:func:`geoseg.files.file_sha256`), remembered in the state file across
    runs and recomputed only when a file's size or mtime changed."""

    def __init__(self, entries: dict[str, dict[str, Any]]) -> None:
        self.entries = entries

    def sha256(self, path: Path) -> str:
        if path.is_dir():
            return folder_sha256(path, self.sha256)  # each file through this cache
        st = path.stat()
        key = str(path.absolute())
        e = self.entries.get(key)
        if e and e.get("size") == st.st_size and e.get("mtime_ns") == st.st_mtime_ns:
            return str(e["sha256"])
        digest = file_sha256(path)
        self.entries[key] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": digest}
        return digest

    def prune(self, keep: set[str]) -> None:
        for k in list(self.entries):
            if k not in keep:
                del self.entries[k]


@contextmanager
def _locked(out: Path) -> Iterator[None]:
    """One run per output directory at a time.

    ``filelock`` takes an OS lock on ``.geoseg-run/lock`` (flock here), so the kernel
    releases it even when a run is killed; a second run fails at once rather than
    waiting (``blocking=False``), since it would redo or clobber the first one's work.
    """
    import filelock

    lock = out / WORK_DIR / "lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    try:
        held = filelock.FileLock(lock, blocking=False).acquire()
    except filelock.Timeout:
        raise OutputError("another `geoseg run` is using this output folder; wait for it", out) from None
    with held:
        yield
