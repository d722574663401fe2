"""Downloads checked by sha256 (pooch), and catalogued files taken out of archives by name and sha256.

pooch does the transfer: it streams each file into a temporary name beside its destination,
checks its hash, and only then moves it into place, so an interrupted or wrong download
leaves nothing behind. geoseg adds what a catalog needs around it: a short timeout (an
offline machine fails at once), one-line errors naming the entry and the URL, its own
sha256 check (so the message can say what arrived), progress through a ``Progress``
callback instead of pooch's log lines and tqdm bars, and archives whose files are found by
base name and content wherever they sit inside.
"""

from __future__ import annotations

import logging
import re
import shutil
import tarfile
import tempfile
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path, PurePosixPath
from typing import IO, Any

from geoseg import __version__
from geoseg.data._entries import Archive, Entry, FileRecord
from geoseg.data._paths import DATA_ENV, TIMEOUT_S, PathLike, _root
from geoseg.errors import ChecksumError, DataUnavailableError, OutputError, first_line
from geoseg.files import atomic_output, sha256_file
from geoseg.progress import Progress, report

_CHUNK = 1 << 20


def fetch(
    entry: Entry,
    root: PathLike | None = None,
    progress: Progress | None = None,
    *,
    timeout: float = TIMEOUT_S,
) -> list[Path]:
    """Download the entry's missing files into the data root.

    Files already present are left alone (check them with ``Entry.verify``). Each file is
    downloaded to a temporary name beside its destination, its sha256 checked, and only
    then renamed into place, so a failed or interrupted download leaves no partial file.

    Parameters
    ----------
    entry
        The catalog entry.
    root
        The data root (default: ``data_root()``).
    progress
        Called with ``(files done, files to do, path)`` as files land.
    timeout
        Seconds to wait for a connection and for each read.

    Returns
    -------
    list of Path
        The files written, in catalog order (files from an archive last).

    Raises
    ------
    DataUnavailableError
        A download fails (offline, unreachable, HTTP error) or none is catalogued.
    ChecksumError
        Downloaded content has another sha256 than the catalog's.
    OutputError
        The data root cannot be written.
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

    with _quiet_pooch():
        for rec in direct:
            url = entry.source.file_url(rec) or ""
            target = entry.resolve(rec.path, base)

            def wrong(
                actual: str, url: str = url, rec: FileRecord = rec, target: Path = target
            ) -> ChecksumError:
                return ChecksumError(
                    f"content from {url} has sha256 {actual} but catalog entry {entry.name!r} expects "
                    f"{rec.sha256}; nothing was written. The source may have changed: check "
                    "the catalog or copy a verified file by hand",
                    path=target,
                )

            _download(url, target, rec.sha256, wrong, entry.name, timeout)
            done(target, rec)
        if from_archive:
            assert entry.source.archive is not None  # checked above
            report(progress, len(written), total, PurePosixPath(entry.source.archive.url).name)
            _fetch_from_archive(entry, entry.source.archive, from_archive, base, timeout, done)
    return written


@contextmanager
def _quiet_pooch() -> Iterator[None]:
    """pooch logs every download to stderr at INFO; the library never prints."""
    import pooch

    logger = pooch.get_logger()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def _unavailable(entry_name: str, url: str, reason: object, target: Path) -> DataUnavailableError:
    return DataUnavailableError(
        f"catalog entry {entry_name!r}: cannot download {url} ({reason}); if this machine is offline, "
        f"copy the data by hand to {target}"
    )


def _unwritable(directory: Path, exc: OSError) -> OutputError:
    return OutputError(
        f"cannot write into the data directory ({exc.strerror or first_line(exc)}); set {DATA_ENV} to a "
        "writable directory",
        path=directory,
    )


def _reason(exc: Exception, timeout: float) -> str:
    """Why a request failed, short: ``HTTP 404 Not Found``, ``[Errno 111] Connection refused``."""
    import requests

    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return f"HTTP {exc.response.status_code} {exc.response.reason}"
    if isinstance(exc, requests.Timeout):
        return f"no answer within {timeout:g} s"
    # requests wraps urllib3's errors in a paragraph; the OS's reason is the useful part
    errno = re.search(r"\[Errno -?\d+\] [^'\")]+", str(exc))
    return errno.group(0).strip() if errno else first_line(exc)


class _CheckedDownloader:
    """A pooch downloader: HTTP(S) through pooch's own, ``file:`` URLs copied; then the sha256
    of what arrived checked, so a mismatch says which content came (pooch checks it again
    before it moves the file into place)."""

    def __init__(self, expected: str | None, wrong: Callable[[str], ChecksumError], timeout: float) -> None:
        import pooch

        self.expected = expected
        self.wrong = wrong
        self.http = pooch.HTTPDownloader(
            progressbar=False, timeout=timeout, headers={"User-Agent": f"geoseg/{__version__}"}
        )

    def __call__(self, url: str, output_file: str, pooch: Any) -> None:
        parsed = urllib.parse.urlparse(url)
        if parsed.scheme == "file":
            shutil.copyfile(urllib.request.url2pathname(parsed.path), output_file)
        else:
            self.http(url, output_file, pooch)
        if self.expected is not None:
            actual = sha256_file(output_file)
            if actual != self.expected:
                raise self.wrong(actual)


def _download(
    url: str,
    target: Path,
    sha256: str | None,
    wrong: Callable[[str], ChecksumError],
    entry_name: str,
    timeout: float,
    processor: Callable[[str, str, Any], Any] | None = None,
) -> None:
    """``url`` to ``target``, atomically, if its sha256 is ``sha256`` (None: not checked)."""
    import pooch
    import requests

    try:
        pooch.retrieve(
            url,
            known_hash=f"sha256:{sha256}" if sha256 else None,
            fname=target.name,
            path=target.parent,
            downloader=_CheckedDownloader(sha256, wrong, timeout),
            processor=processor,
        )
    except requests.RequestException as exc:  # before OSError: requests' errors are OSErrors
        raise _unavailable(entry_name, url, _reason(exc, timeout), target) from None
    except FileNotFoundError as exc:
        if urllib.parse.urlparse(url).scheme != "file":
            raise _unwritable(target.parent, exc) from None
        raise _unavailable(entry_name, url, "no such file", target) from None
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
    try:
        directory.mkdir(parents=True, exist_ok=True)
        # beside the files, so that they are renamed into place on one file system; removed
        # with the archive in it whatever happens
        work = Path(tempfile.mkdtemp(dir=directory, prefix=".fetch-"))
    except OSError as exc:
        raise _unwritable(directory, exc) from None

    def wrong(actual: str) -> ChecksumError:
        return ChecksumError(
            f"archive sha256 is {actual} but catalog entry {entry.name!r} expects "
            f"{archive.sha256}; nothing was extracted",
            path=archive.url,
        )

    try:
        take_out = _TakeOut(entry, archive, records, base, done)
        _download(archive.url, work / "archive", archive.sha256, wrong, entry.name, timeout, take_out)
    finally:
        shutil.rmtree(work, ignore_errors=True)


class _TakeOut:
    """A pooch processor that copies the catalogued files out of a downloaded archive.

    Members are matched by base name and sha256, so the archive's layout does not matter
    (a wheel's ``pkg/datasets/a.tif`` is the entry's ``a.tif``). pooch's ``Unzip``/``Untar``
    would extract every member under the member's own path (and, before Python 3.12,
    without tarfile's ``data`` filter); only the catalogued files are wanted, each streamed
    to a temporary name beside its destination and renamed once its sha256 is right.
    """

    def __init__(
        self,
        entry: Entry,
        archive: Archive,
        records: Sequence[FileRecord],
        base: Path,
        done: Callable[[Path, FileRecord], None],
    ) -> None:
        self.entry, self.archive, self.records, self.base, self.done = entry, archive, records, base, done

    def __call__(self, fname: str, action: str, pooch: Any) -> None:
        with _members(Path(fname), self.archive, self.entry.name) as (names, open_member):
            for rec in self.records:
                target = self.entry.resolve(rec.path, self.base)
                self._take(names, open_member, rec, target)
                self.done(target, rec)

    def _take(
        self,
        names: dict[str, list[str]],
        open_member: Callable[[str], AbstractContextManager[IO[bytes]]],
        rec: FileRecord,
        target: Path,
    ) -> None:
        url, entry_name = self.archive.url, self.entry.name
        candidates = names.get(PurePosixPath(rec.path).name, [])
        if not candidates:
            raise DataUnavailableError(
                f"catalog entry {entry_name!r}: {url} has no file named {PurePosixPath(rec.path).name}; "
                f"copy it by hand to {target}"
            )
        for i, member in enumerate(candidates):
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                with atomic_output(target) as tmp:
                    with open_member(member) as src, open(tmp, "wb") as dst:
                        shutil.copyfileobj(src, dst, _CHUNK)
                    actual = sha256_file(tmp)
                    if actual != rec.sha256:
                        raise ChecksumError(
                            f"content from {url}!{member} has sha256 {actual} but catalog entry "
                            f"{entry_name!r} expects {rec.sha256}; nothing was written. The source may "
                            "have changed: check the catalog or copy a verified file by hand",
                            path=target,
                        )
                return
            except ChecksumError:
                if i == len(candidates) - 1:
                    raise
            except OSError as exc:
                raise _unwritable(target.parent, exc) from None


@contextmanager
def _members(
    path: Path, archive: Archive, entry_name: str
) -> Iterator[tuple[dict[str, list[str]], Callable[[str], AbstractContextManager[IO[bytes]]]]]:
    """The regular files of a zip or tar archive by base name, and how to open one."""
    names: dict[str, list[str]] = {}
    try:
        if archive.format == "zip":
            with zipfile.ZipFile(path) as zf:
                for info in zf.infolist():
                    if not info.is_dir():
                        names.setdefault(PurePosixPath(info.filename).name, []).append(info.filename)
                yield names, zf.open
        else:
            with tarfile.open(path, "r:*") as tf:
                for member in tf.getmembers():
                    if member.isfile():
                        names.setdefault(PurePosixPath(member.name).name, []).append(member.name)

                def open_member(name: str) -> IO[bytes]:
                    stream = tf.extractfile(name)
                    assert stream is not None  # regular files always have a stream
                    return stream

                yield names, open_member
    except (zipfile.BadZipFile, tarfile.TarError) as exc:
        raise DataUnavailableError(
            f"catalog entry {entry_name!r}: {archive.url} is not a readable {archive.format} archive ({exc})"
        ) from None
