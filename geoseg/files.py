"""Output paths written all or nothing: checks before any work, temporary names, atomic renames."""

from __future__ import annotations

import functools
import hashlib
import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from geoseg.errors import (
    OutputError,
)


def partial_path(path: str | os.PathLike[str]) -> Path:
    """The temporary sibling an output is written to before the final rename."""
    p = Path(path)
    return p.with_name(f".{p.name}.partial")


def check_parent_writable(p: Path) -> None:
    """The folder ``p`` would be created in exists and may be written (files and folders alike)."""
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"folder {parent} does not exist; create it first", p)
    if not os.access(parent, os.W_OK):
        raise OutputError(f"folder {parent} is not writable", p)
    why = why_no_new_files(parent)
    if why is not None:
        raise OutputError(f"folder {parent} does not take new files ({why})", p)


def why_no_new_files(folder: Path) -> str | None:
    """None when a file can be created in ``folder`` (one is made and removed), else why not.

    access() says yes to root everywhere, and to folders like /proc that refuse new
    files: creating one is the only sure test.
    """
    try:
        fd, probe = tempfile.mkstemp(prefix=".geoseg-probe-", dir=folder)
    except OSError as exc:
        return exc.strerror or str(exc)
    os.close(fd)
    os.unlink(probe)
    return None


def check_writable(path: str | os.PathLike[str], inputs: Sequence[str | os.PathLike[str]] = ()) -> Path:
    """Fail early, before any work, when ``path`` cannot be written or is an input."""
    p = Path(path)
    for src in inputs:
        same = Path(src).resolve() == p.resolve()
        if not same and p.exists() and os.path.exists(src):
            same = os.path.samefile(src, p)
        if same:
            raise OutputError("is also an input; choose another output path", p)
    if p.is_dir():
        raise OutputError("is a directory; give a file name", p)
    check_parent_writable(p)
    if p.exists() and not os.access(p, os.W_OK):
        raise OutputError("exists and is not writable", p)
    return p


@contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path to write; rename it to ``path`` only if the block succeeds."""
    final = Path(path)
    tmp = partial_path(final)
    if tmp.exists():
        tmp.unlink()
    try:
        yield tmp
        if tmp.exists():  # some writers create 0600 files; outputs get the usual umask mode
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, final)
    except BaseException:
        if tmp.exists():
            tmp.unlink()
        raise


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The file's sha256, remembered per (path, inode, size, mtime): a predict asks several times.

    Checkpoints are written aside and renamed into place, so a rewritten one is a new inode.
    """
    st = os.stat(path)
    return _sha256(str(Path(path).resolve()), st.st_ino, st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _sha256(path: str, inode: int, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_file(path: str | os.PathLike[str]) -> str:
    """The sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def cache_dir() -> Path:
    """geoseg's cache folder: ``$GEOSEG_CACHE``, else the user cache folder (on Linux
    ``$XDG_CACHE_HOME/geoseg``, ``~/.cache/geoseg``), by platformdirs."""
    import platformdirs

    given = os.environ.get("GEOSEG_CACHE")
    return Path(given) if given else Path(platformdirs.user_cache_dir("geoseg", appauthor=False))
