"""The ONNX cache: exports kept by checkpoint hash, touched when used, the least recently used evicted above a size cap.

``cache_dir()/onnx`` holds ``<key>.onnx``, a checkpoint's export (key: the first 20 hex
digits of the checkpoint's sha256), and ``<key>.<cpu>.ort.onnx``, ONNX Runtime's graph
optimised for one CPU (:mod:`geoseg.inference._onnx`). A checkpoint's files are one
*entry*: touched, kept and evicted together. Each is 30-115 MB for the shipped models, so
the folder is capped (``$GEOSEG_ONNX_CACHE_MB``, default 1024); above the cap the entries
used longest ago go first.

Several processes share the folder at once: the workers of a run, runs side by side, the
machines of one NFS home. A file's access time is its last use, set by geoseg itself
(``noatime`` and ``relatime`` mounts would not keep reads' times; its modification time
stays the time it was written), and one lock (``cache_dir()/onnx.lock``, a ``filelock`` OS
lock) orders two things:

- *use*: a process that is about to open an entry first sets the access time of all its
  files to now, under the lock (:func:`claim`), then opens them, without the lock;
- *eviction*: under the lock, an entry is deleted only when none of its files was touched
  in the last ``IN_USE_S`` seconds.

So an entry claimed is safe for ``IN_USE_S`` after the claim (a session is built within
seconds of it), and no eviction can read an old time, miss a claim and then delete. A
built session holds its graph in memory: a long run's entry may be evicted under it
without harm, and a worker that starts later finds it gone (``claim`` says so) and exports
it again. Files that are being written end in ``.partial`` and are never counted; one
older than ``LEFTOVER_S`` is a killed writer's and is removed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from geoseg.errors import ConfigError
from geoseg.files import cache_dir

log = logging.getLogger(__name__)

#: The cache's size cap in MiB (an environment variable: it holds for every process of a
#: machine, the workers of a cluster included, whatever command started them).
CACHE_LIMIT_ENV = "GEOSEG_ONNX_CACHE_MB"
DEFAULT_LIMIT_MB = 1024

#: An entry touched this recently is in use: never evicted, even above the cap.
IN_USE_S = 600.0

#: A ``.partial`` file untouched this long is left over from a killed writer.
LEFTOVER_S = 3600.0

_LOCK_TIMEOUT_S = 60.0  # the cache lock is held for a folder listing at a time

#: How long an export waits for another process's export before it gives up (and
#: ``auto`` runs torch).
EXPORT_WAIT_S = 1800.0


def cache_folder() -> Path:
    """The folder of the ONNX exports (``cache_dir()/onnx``)."""
    return cache_dir() / "onnx"


def limit_bytes() -> int:
    """The cache's size cap in bytes: ``$GEOSEG_ONNX_CACHE_MB`` MiB, default 1024."""
    text = os.environ.get(CACHE_LIMIT_ENV, "").strip()
    if not text:
        return DEFAULT_LIMIT_MB << 20
    try:
        mb = float(text)
    except ValueError:
        mb = -1.0
    if not mb >= 0:  # also NaN
        raise ConfigError(
            f"{CACHE_LIMIT_ENV}={text!r}: expected the ONNX cache's size cap in MiB, e.g. 1024 (0 keeps only what is in use)"
        )
    return int(mb * (1 << 20))


def entry_key(name: str) -> str:
    """The entry a cache file belongs to: its name up to the first dot (partials start with one)."""
    return name.lstrip(".").split(".", 1)[0]


@dataclass
class CacheEntry:
    """One checkpoint's files in the cache."""

    key: str
    files: list[Path] = field(default_factory=list)
    bytes: int = 0
    last_used: float = 0.0  # the newest access time of its files (seconds since the epoch)


@dataclass
class CacheInfo:
    """What the ONNX cache holds (``geoseg cache info``)."""

    folder: Path
    entries: list[CacheEntry]  # used longest ago first
    limit: int

    @property
    def bytes(self) -> int:
        return sum(e.bytes for e in self.entries)


@contextmanager
def _locked() -> Iterator[bool]:
    """Hold the cache lock; yields False (and holds nothing) where it cannot be taken.

    A cache folder this process may not write (a read-only shared one) is only read:
    claims then touch nothing and nothing is evicted.
    """
    import filelock

    lock_path = cache_dir() / "onnx.lock"
    try:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        lock = filelock.FileLock(lock_path, timeout=_LOCK_TIMEOUT_S)
        lock.acquire()
    except (OSError, filelock.Timeout) as exc:
        log.debug("ONNX cache lock %s not taken (%s)", lock_path, exc)
        yield False
        return
    try:
        yield True
    finally:
        lock.release()


@contextmanager
def export_lock() -> Iterator[None]:
    """One export at a time among the processes sharing the cache: the second one waits and
    then finds the first one's file, instead of exporting the same checkpoint again.

    Raises ``OSError`` when the cache folder cannot be created or written, and
    ``TimeoutError`` (one) when another process has held the lock for ``EXPORT_WAIT_S``.
    """
    import filelock

    folder = cache_folder()
    folder.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(cache_dir() / "onnx.export.lock", timeout=EXPORT_WAIT_S)
    try:
        lock.acquire()  # exports take seconds to a few minutes
    except filelock.Timeout:
        raise TimeoutError(
            f"another process has been exporting for {EXPORT_WAIT_S / 60:.0f} minutes"
        ) from None
    try:
        yield
    finally:
        lock.release()


def _scan(folder: Path) -> tuple[dict[str, CacheEntry], list[Path]]:
    """The entries of ``folder`` and its partial files."""
    entries: dict[str, CacheEntry] = {}
    partials: list[Path] = []
    try:
        names = os.listdir(folder)
    except OSError:
        return entries, partials
    for name in names:
        path = folder / name
        if name.endswith(".partial"):
            partials.append(path)
            continue
        try:
            st = path.stat()
        except OSError:  # removed meanwhile by another process
            continue
        e = entries.setdefault(entry_key(name), CacheEntry(entry_key(name)))
        e.files.append(path)
        e.bytes += st.st_size
        e.last_used = max(e.last_used, st.st_atime)
    return entries, partials


def claim(path: Path) -> bool:
    """Mark the entry of cache file ``path`` used now (all its files touched, under the lock);
    True when ``path`` itself exists, so the caller may open it for the next ``IN_USE_S``."""
    with _locked() as held:
        if not held:
            return path.exists()
        entries, _ = _scan(path.parent)
        now = time.time_ns()
        for f in entries.get(entry_key(path.name), CacheEntry("")).files:
            # the access time only; OSError: removed by a process that did not take the lock
            with contextlib.suppress(OSError):
                os.utime(f, ns=(now, f.stat().st_mtime_ns))
        return path.exists()


def _remove(files: list[Path]) -> list[Path]:
    removed = []
    for f in files:
        try:
            f.unlink()
            removed.append(f)
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.debug("could not remove %s from the ONNX cache (%s)", f, exc)
    return removed


def trim_cache(limit: int | None = None) -> list[Path]:
    """Remove the entries used longest ago until the cache fits ``limit`` bytes
    (default :func:`limit_bytes`), never one in use; and killed writers' partial files.

    Returns the files removed.
    """
    cap = limit_bytes() if limit is None else limit
    with _locked() as held:
        if not held:
            return []
        entries, partials = _scan(cache_folder())
        now = time.time()
        removed = _remove([p for p in partials if _age(p, now) > LEFTOVER_S])
        total = sum(e.bytes for e in entries.values())
        for e in sorted(entries.values(), key=lambda e: e.last_used):
            if total <= cap:
                break
            if now - e.last_used < IN_USE_S:
                continue  # a process claimed it moments ago and may be opening it
            removed += _remove(e.files)
            total -= e.bytes
            log.info("evicted ONNX export %s (%.0f MB, unused for %.0f h)", e.key, e.bytes / 1e6,
                     (now - e.last_used) / 3600)  # fmt: skip
    return removed


def _age(path: Path, now: float) -> float:
    try:
        return now - path.stat().st_mtime  # a partial file's last write
    except OSError:
        return 0.0


def cache_info() -> CacheInfo:
    """The entries of the ONNX cache, used longest ago first, and its cap."""
    entries, _ = _scan(cache_folder())
    return CacheInfo(cache_folder(), sorted(entries.values(), key=lambda e: e.last_used), limit_bytes())


@dataclass
class CacheClear:
    """What :func:`clear_cache` did."""

    removed: list[Path]  # the files removed
    bytes: int  # their size
    kept: list[CacheEntry]  # the entries in use, left in place


def clear_cache(force: bool = False) -> CacheClear:
    """Remove every entry of the ONNX cache not in use (``force``: those too, which a
    running prediction may be about to open), and partial files left by killed writers."""
    with _locked() as held:
        entries, partials = _scan(cache_folder())
        now = time.time()
        if not held and not force:
            return CacheClear([], 0, list(entries.values()))  # cannot order against claims
        kept = [e for e in entries.values() if not force and now - e.last_used < IN_USE_S]
        gone = [e for e in entries.values() if e not in kept]
        leftovers = [p for p in partials if force or _age(p, now) > LEFTOVER_S]
        removed = _remove([f for e in gone for f in e.files] + leftovers)
        return CacheClear(removed, sum(e.bytes for e in gone), kept)
