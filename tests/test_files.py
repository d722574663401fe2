"""One file hash (cached by inode, size and mtime) and the folder hash of the workflow cache."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from geoseg.files import file_sha256, folder_sha256, sha256_file
from geoseg.workflow._state import HashCache


def test_one_file_hash_cached_by_inode_size_and_mtime(tmp_path: Path) -> None:
    f = tmp_path / "a.bin"
    data = os.urandom(3 << 20)  # several read chunks
    f.write_bytes(data)
    assert file_sha256(f) == sha256_file(f) == hashlib.sha256(data).hexdigest()
    tmp = tmp_path / ".a.bin.partial"
    tmp.write_bytes(b"other")
    os.replace(tmp, f)  # written aside and renamed: a new inode
    assert file_sha256(f) == hashlib.sha256(b"other").hexdigest()
    with open(f, "ab") as fh:  # grown in place: a new size
        fh.write(b"!")
    assert file_sha256(f) == hashlib.sha256(b"other!").hexdigest() == sha256_file(f)


def test_folder_hash_and_the_workflow_cache(tmp_path: Path) -> None:
    d = tmp_path / "report"
    (d / "sub").mkdir(parents=True)
    (d / "index.html").write_text("page")
    (d / "sub" / "a.png").write_bytes(b"png")
    expect = hashlib.sha256()
    for rel, content in (("index.html", b"page"), ("sub/a.png", b"png")):  # the digest state files hold
        expect.update(rel.encode() + b"\0" + hashlib.sha256(content).hexdigest().encode())
    assert folder_sha256(d) == expect.hexdigest()

    entries: dict[str, dict[str, object]] = {}
    cache = HashCache(entries)
    assert cache.sha256(d) == expect.hexdigest() and len(entries) == 2  # each file remembered
    key = str((d / "index.html").absolute())
    entries[key]["sha256"] = "remembered"  # same size and mtime: the state file's hash is trusted
    assert cache.sha256(d / "index.html") == "remembered"
    (d / "index.html").write_text("page 2")
    assert cache.sha256(d / "index.html") == hashlib.sha256(b"page 2").hexdigest()
    (d / "sub" / "a.png").rename(d / "sub" / "b.png")
    assert folder_sha256(d) != expect.hexdigest()
