"""Output paths written all or nothing: checks before any work, temporary names, atomic renames."""

from __future__ import annotations

import functools
import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
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


def sha256_file(path: str | os.PathLike[str]) -> str:
    """The sha256 of a file's content, read now (no cache).

    For checks that must see the bytes on disk this moment (a download against its
    catalogued hash); everything else asks :func:`file_sha256`.

    Parameters
    ----------
    path
        The file.

    Returns
    -------
    str
        The hex digest.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):  # 1 MiB at a time: bounded memory
            digest.update(chunk)
    return digest.hexdigest()


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The sha256 of a file's content, remembered per (path, inode, size, mtime).

    A predict asks for its checkpoint's hash several times, a workflow for every input
    of every step. Outputs are written aside and renamed into place, so a rewritten file
    is a new inode even when its size and mtime look the same.

    Parameters
    ----------
    path
        The file.

    Returns
    -------
    str
        The hex digest.
    """
    st = os.stat(path)
    return _remembered_sha256(str(Path(path).resolve()), st.st_ino, st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _remembered_sha256(path: str, inode: int, size: int, mtime_ns: int) -> str:
    return sha256_file(path)


def folder_sha256(folder: Path, file_hash: Callable[[Path], str] = file_sha256) -> str:
    """One sha256 over a folder's files: each file's path relative to ``folder`` and its hash.

    Parameters
    ----------
    folder
        The folder (files in sub-folders count, in sorted order of their paths).
    file_hash
        How each file is hashed (a caller with its own cache passes its method).

    Returns
    -------
    str
        The hex digest; it changes when a file is added, removed, renamed or changed.
    """
    digest = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(f.relative_to(folder).as_posix().encode() + b"\0" + file_hash(f).encode())
    return digest.hexdigest()


def cache_dir() -> Path:
    """geoseg's cache folder: ``$GEOSEG_CACHE``, else the user cache folder (on Linux
    ``$XDG_CACHE_HOME/geoseg``, ``~/.cache/geoseg``), by platformdirs."""
    import platformdirs

    given = os.environ.get("GEOSEG_CACHE")
    return Path(given) if given else Path(platformdirs.user_cache_dir("geoseg", appauthor=False))
