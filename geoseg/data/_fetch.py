"""Downloads checked by sha256, with archive extraction."""

from __future__ import annotations

import hashlib
import http.client
import os
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import IO

from geoseg import __version__
from geoseg.data._entries import Archive, Entry, FileRecord
from geoseg.data._paths import _CHUNK, DATA_ENV, TIMEOUT_S, PathLike, _root
from geoseg.errors import (
    ChecksumError,
    DataUnavailableError,
    OutputError,
)
from geoseg.progress import Progress, report


def fetch(
    entry: Entry,
    root: PathLike | None = None,
    progress: Progress | None = None,
    *,
    timeout: float = TIMEOUT_S,
) -> list[Path]:
    """Download the entry's missing files into the data root; return the paths written.

    Each file is streamed into a temporary file beside its destination, its sha256 checked,
    and only then renamed into place, so a failed or interrupted download leaves no partial
    file. Files already present are left alone (check them with ``Entry.verify``).

    Raises ``DataUnavailableError`` when a download fails (offline, unreachable, HTTP error) or
    no download is catalogued, ``ChecksumError`` when downloaded content has another sha256,
    and ``OutputError`` when the data root cannot be written.
    """
    # Presence is checked the way the entry resolves paths (a model shipped in the package
    # counts); downloads always go under the data root.
    missing = [rec for rec in entry.files if not entry.resolve(rec.path, root).is_file()]
    base = _root(root)
    total = len(missing)
    if not total:
        return []
    direct = [rec for rec in missing if entry.source.file_url(rec)]
    from_archive = [rec for rec in missing if not entry.source.file_url(rec)]
    if from_archive and entry.source.archive is None:
        raise DataUnavailableError(
            f"catalog entry {entry.name!r}: no download is catalogued for {from_archive[0].path}; get the "
            f"data from {entry.source.url} and copy the files by hand into {entry.directory(base)}"
        )
    report(progress, 0, total)
    written: list[Path] = []

    def done(path: Path, rec: FileRecord) -> None:
        written.append(path)
        report(progress, len(written), total, rec.path)

    for rec in direct:
        url = entry.source.file_url(rec)
        assert url is not None
        target = entry.resolve(rec.path, base)
        with _urlopen(url, timeout, entry.name, target) as response:
            _write_verified(_read_chunks(response, url, entry.name, target), target, rec, entry.name, url)
        done(target, rec)
    if from_archive:
        assert entry.source.archive is not None
        report(progress, len(written), total, PurePosixPath(entry.source.archive.url).name)
        _fetch_from_archive(entry, entry.source.archive, from_archive, base, timeout, done)
    return written


def _unavailable(entry_name: str, url: str, reason: object, target: Path) -> DataUnavailableError:
    return DataUnavailableError(
        f"catalog entry {entry_name!r}: cannot download {url} ({reason}); if this machine is offline, "
        f"copy the data by hand to {target}"
    )


@contextmanager
def _urlopen(url: str, timeout: float, entry_name: str, target: Path) -> Iterator[IO[bytes]]:
    request = urllib.request.Request(url, headers={"User-Agent": f"geoseg/{__version__}"})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        raise _unavailable(entry_name, url, f"HTTP {exc.code} {exc.reason}", target) from None
    except urllib.error.URLError as exc:
        raise _unavailable(entry_name, url, exc.reason, target) from None
    except (OSError, http.client.HTTPException) as exc:
        raise _unavailable(entry_name, url, exc, target) from None
    with response:
        yield response


def _read_chunks(stream: IO[bytes], url: str, entry_name: str, target: Path) -> Iterator[bytes]:
    """The stream's bytes; network errors while reading become ``DataUnavailableError``."""
    while True:
        try:
            chunk = stream.read(_CHUNK)
        except (OSError, http.client.HTTPException) as exc:
            raise _unavailable(entry_name, url, exc, target) from None
        if not chunk:
            return
        yield chunk


def _unwritable(directory: Path, exc: OSError) -> OutputError:
    return OutputError(
        f"cannot write into the data directory ({exc.strerror or exc}); set {DATA_ENV} to a "
        "writable directory",
        path=directory,
    )


@contextmanager
def _temporary_beside(target: Path) -> Iterator[tuple[IO[bytes], Path]]:
    """A temporary file in ``target``'s directory (so the final rename is atomic on POSIX),
    always removed unless the caller renamed it to ``target``."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fh = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed below, name kept on purpose
            dir=target.parent, prefix=f".{target.name}.", suffix=".partial", delete=False
        )
    except OSError as exc:
        raise _unwritable(target.parent, exc) from None
    tmp = Path(fh.name)
    try:
        with fh:
            yield fh, tmp
    finally:
        tmp.unlink(missing_ok=True)


def _copy_hashing(chunks: Iterable[bytes], fh: IO[bytes], directory: Path) -> str:
    """Write ``chunks`` to ``fh`` and to disk; return their sha256."""
    digest = hashlib.sha256()
    try:
        for chunk in chunks:
            digest.update(chunk)
            fh.write(chunk)
        fh.flush()
        os.fsync(fh.fileno())
    except OSError as exc:  # disk full, quota...: network errors arrive as DataUnavailableError
        raise _unwritable(directory, exc) from None
    return digest.hexdigest()


def _write_verified(
    chunks: Iterable[bytes], target: Path, rec: FileRecord, entry_name: str, origin: str
) -> None:
    """Write ``chunks`` to ``target`` atomically if their sha256 is the catalogued one."""
    with _temporary_beside(target) as (fh, tmp):
        actual = _copy_hashing(chunks, fh, target.parent)
        fh.close()
        if actual != rec.sha256:
            raise ChecksumError(
                f"content from {origin} has sha256 {actual} but catalog entry {entry_name!r} expects "
                f"{rec.sha256}; nothing was written. The source may have changed: check "
                "the catalog or copy a verified file by hand",
                path=target,
            )
        try:
            os.replace(tmp, target)
        except OSError as exc:
            raise _unwritable(target.parent, exc) from None


def _fetch_from_archive(
    entry: Entry,
    archive: Archive,
    records: Sequence[FileRecord],
    base: Path,
    timeout: float,
    done: Callable[[Path, FileRecord], None],
) -> None:
    """Download the archive once, next to the entry's files, and take ``records`` out of it."""
    directory = entry.directory(base)
    with _temporary_beside(directory / ".archive") as (fh, tmp):
        with _urlopen(archive.url, timeout, entry.name, directory) as response:
            actual = _copy_hashing(_read_chunks(response, archive.url, entry.name, directory), fh, directory)
        fh.close()
        if archive.sha256 and actual != archive.sha256:
            raise ChecksumError(
                f"archive sha256 is {actual} but catalog entry {entry.name!r} expects "
                f"{archive.sha256}; nothing was extracted",
                path=archive.url,
            )
        with _open_archive(tmp, archive, entry.name) as members:
            for rec in records:
                target = entry.resolve(rec.path, base)
                _extract_member(members, rec, target, entry.name, archive.url)
                done(target, rec)


class _Members:
    """Regular-file members of an opened zip or tar archive, looked up by base name."""

    def __init__(self, names: dict[str, list[str]], opener: Callable[[str], IO[bytes]]) -> None:
        self.names = names
        self.open = opener


@contextmanager
def _open_archive(path: Path, archive: Archive, entry_name: str) -> Iterator[_Members]:
    names: dict[str, list[str]] = {}
    try:
        if archive.format == "zip":
            with zipfile.ZipFile(path) as zf:
                for info in zf.infolist():
                    if not info.is_dir():
                        names.setdefault(PurePosixPath(info.filename).name, []).append(info.filename)
                yield _Members(names, zf.open)
        else:
            with tarfile.open(path, "r:*") as tf:
                for member in tf.getmembers():
                    if member.isfile():
                        names.setdefault(PurePosixPath(member.name).name, []).append(member.name)

                def open_member(name: str) -> IO[bytes]:
                    stream = tf.extractfile(name)
                    assert stream is not None  # regular files always have a stream
                    return stream

                yield _Members(names, open_member)
    except (zipfile.BadZipFile, tarfile.TarError) as exc:
        raise DataUnavailableError(
            f"catalog entry {entry_name!r}: {archive.url} is not a readable {archive.format} archive ({exc})"
        ) from None


def _stream_chunks(stream: IO[bytes]) -> Iterator[bytes]:
    while chunk := stream.read(_CHUNK):
        yield chunk


def _extract_member(members: _Members, rec: FileRecord, target: Path, entry_name: str, url: str) -> None:
    """Copy the member with ``rec``'s base name and sha256 to ``target``, atomically."""
    candidates = members.names.get(PurePosixPath(rec.path).name, [])
    if not candidates:
        raise DataUnavailableError(
            f"catalog entry {entry_name!r}: {url} has no file named {PurePosixPath(rec.path).name}; "
            f"copy it by hand to {target}"
        )
    for i, member in enumerate(candidates):
        try:
            with members.open(member) as stream:
                _write_verified(_stream_chunks(stream), target, rec, entry_name, f"{url}!{member}")
            return
        except ChecksumError:
            if i == len(candidates) - 1:
                raise
