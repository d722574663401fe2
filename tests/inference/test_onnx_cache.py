"""The ONNX export cache: a size cap, least recently used first out, never what is in use, and
``geoseg cache info`` / ``clear``. Every test has its own cache folder ($GEOSEG_CACHE)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from geoseg.cli import main
from geoseg.inference import (
    CACHE_LIMIT_ENV,
    Predictor,
    cache_info,
    clear_cache,
    cpu_fingerprint,
    init_checkpoint,
    load_checkpoint,
    make_spec,
    onnx_cache_path,
    trim_cache,
)
from geoseg.inference._onnxcache import claim

MB = 1 << 20
HOUR = 3600.0


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty cache of this test's own; its ONNX folder is returned."""
    monkeypatch.setenv("GEOSEG_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(CACHE_LIMIT_ENV, raising=False)
    folder = tmp_path / "cache" / "onnx"
    folder.mkdir(parents=True)
    return folder


def put(folder: Path, name: str, size: int, used_ago: float) -> Path:
    """A cache file of ``size`` bytes last used ``used_ago`` seconds ago (its access time)."""
    path = folder / name
    path.write_bytes(b"\0" * size)
    t = time.time() - used_ago
    os.utime(path, (t, t))
    return path


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_least_recently_used_go_first_and_never_one_in_use(cache: Path) -> None:
    put(cache, "aaaa.onnx", MB, 3 * HOUR)
    put(cache, "aaaa.cpu1.ort.onnx", MB, 3 * HOUR)  # one entry: the export and its CPU graph
    put(cache, "bbbb.onnx", MB, 5 * HOUR)
    put(cache, "bbbb.cpu1.ort.onnx", MB, 1 * HOUR)  # used an hour ago: the entry's last use
    put(cache, "cccc.onnx", MB, 30)  # in use
    put(cache, ".dddd.onnx.partial", MB, 2 * HOUR)  # a killed export's leftover
    put(cache, "eeee.cpu1.ort.onnx.123.partial", MB, 5)  # being written
    info = cache_info()
    assert [e.key for e in info.entries] == ["aaaa", "bbbb", "cccc"] and info.bytes == 5 * MB
    removed = trim_cache(int(3.5 * MB))  # aaaa (2 MB) goes: 3 MB left
    assert sorted(p.name for p in removed) == [".dddd.onnx.partial", "aaaa.cpu1.ort.onnx", "aaaa.onnx"]
    assert names(cache) == ["bbbb.cpu1.ort.onnx", "bbbb.onnx", "cccc.onnx", "eeee.cpu1.ort.onnx.123.partial"]
    trim_cache(0)  # nothing fits: all but the entry in use and the file being written
    assert names(cache) == ["cccc.onnx", "eeee.cpu1.ort.onnx.123.partial"]


def test_a_claim_marks_an_entry_used_without_changing_its_content_time(cache: Path) -> None:
    export = put(cache, "aaaa.onnx", MB, 5 * HOUR)
    graph = put(cache, "aaaa.cpu1.ort.onnx", MB, 5 * HOUR)
    written = {f: f.stat().st_mtime_ns for f in (export, graph)}
    assert claim(export) and not claim(cache / "ffff.onnx")
    for f in (export, graph):  # both files of the entry, their access time only
        assert time.time() - f.stat().st_atime < 5 and f.stat().st_mtime_ns == written[f]
    assert trim_cache(0) == [] and names(cache) == ["aaaa.cpu1.ort.onnx", "aaaa.onnx"]


def test_the_cap_comes_from_the_environment(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    put(cache, "aaaa.onnx", 3 * MB, 2 * HOUR)
    put(cache, "bbbb.onnx", 3 * MB, 1 * HOUR)
    monkeypatch.setenv(CACHE_LIMIT_ENV, "4")
    assert cache_info().limit == 4 * MB
    trim_cache()
    assert names(cache) == ["bbbb.onnx"]
    for bad in ("lots", "-1", "nan"):
        monkeypatch.setenv(CACHE_LIMIT_ENV, bad)
        r = CliRunner().invoke(main, ["cache", "info"])
        assert r.exit_code == 2 and r.output.count("\n") == 1
        assert f"{CACHE_LIMIT_ENV}={bad!r}: expected the ONNX cache's size cap in MiB" in r.output


@pytest.mark.slow
def test_predicting_trims_the_cache_and_an_evicted_export_is_made_again(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real exports: a second model's export pushes the first, unused for a day, out of a
    cache that holds one; predicting with the first again exports it again, same scores."""
    tiny = {"encoder_depth": 3, "decoder_channels": [16, 8, 4]}
    a, b = (
        init_checkpoint(tmp_path / f"{k}.safetensors", make_spec("Unet", "resnet18", 3, 2, **tiny), seed=s)
        for k, s in (("a", 0), ("b", 1))
    )
    x = np.random.default_rng(0).normal(size=(1, 3, 64, 96)).astype(np.float32)
    first = Predictor(load_checkpoint(a), backend="onnx", threads=1).logits(x)
    entry_a = cache_info().entries[0]
    assert sorted(f.name for f in entry_a.files) == sorted(
        [onnx_cache_path(load_checkpoint(a)).name, f"{entry_a.key}.{cpu_fingerprint()}.ort.onnx"]
    )
    day_ago = time.time() - 24 * HOUR
    for f in entry_a.files:
        os.utime(f, (day_ago, day_ago))
    monkeypatch.setenv(CACHE_LIMIT_ENV, str(1.5 * entry_a.bytes / MB))  # room for one entry
    Predictor(load_checkpoint(b), backend="onnx", threads=1)
    (left,) = cache_info().entries
    assert left.key != entry_a.key and not any(f.exists() for f in entry_a.files)
    again = Predictor(load_checkpoint(a), backend="onnx", threads=1).logits(x)
    np.testing.assert_array_equal(again, first)
    assert entry_a.key in {e.key for e in cache_info().entries}


CLAIMER = """
import os, sys, time
from pathlib import Path
from geoseg.inference._onnxcache import claim
path, rounds = Path(sys.argv[1]), int(sys.argv[2])
old = time.time() - 86400
lost = 0
for _ in range(rounds):
    if claim(path):
        time.sleep(0.002)  # a session's options are set up before it opens the file
        try:
            path.read_bytes()  # what opening a session does
        except FileNotFoundError:
            lost += 1  # claimed, then removed before it was opened: what must never happen
        try:
            os.utime(path, (old, old))  # a day passes: unused again (no lock, as time passing)
        except FileNotFoundError:
            pass
    else:
        path.write_bytes(b"x" * 1000)  # gone: made again, as an export would be
        os.utime(path, (old, old))
print(lost)
"""

TRIMMER = """
import sys
from geoseg.inference import trim_cache
print(sum(len(trim_cache(0)) for _ in range(int(sys.argv[1]))))
"""


@pytest.mark.slow
def test_eviction_in_another_process_never_removes_a_claimed_file(cache: Path) -> None:
    """Processes that claim and open an old entry over and over while another evicts everything
    it may: the lock orders them, so a claimed file is always there to open. (With the lock
    taken out, 3-19 of each claimer's 100 claims here found their file gone.)"""
    paths = [put(cache, f"{key}.onnx", 1000, 24 * HOUR) for key in ("aaaa", "bbbb")]
    for k in range(300):  # entries in use that each scan reads: eviction takes a while
        put(cache, f"busy{k}.onnx", 10, 0)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    run = [sys.executable, "-c"]
    claimers = [  # one file each: a claimer's "day passes" must not age the other's claim
        subprocess.Popen([*run, CLAIMER, str(p), "100"], env=env, stdout=subprocess.PIPE, text=True)
        for p in paths
    ]
    trimmer = subprocess.Popen([*run, TRIMMER, "100"], env=env, stdout=subprocess.PIPE, text=True)
    outs = [p.communicate(timeout=120)[0] for p in claimers]
    evicted = int(trimmer.communicate(timeout=120)[0])
    assert all(p.returncode == 0 for p in [*claimers, trimmer])
    assert [int(o) for o in outs] == [0, 0]
    assert evicted > 0  # the race was real: the trimmer removed the entry between uses


def test_cache_info_and_clear(cache: Path) -> None:
    from geoseg.data import ModelEntry, load_catalog

    shipped = next(e for e in load_catalog() if isinstance(e, ModelEntry))
    key = shipped.files[0].sha256[:20]
    put(cache, f"{key}.onnx", 2 * MB, 2 * HOUR)
    put(cache, f"{key}.cpu1.ort.onnx", 2 * MB, 2 * HOUR)
    put(cache, "bbbb.onnx", MB, 10)  # in use
    r = CliRunner().invoke(main, ["cache", "info"])
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[0] == f"{cache}: 5.0 MiB in 2 exports, cap 1024 MiB (${CACHE_LIMIT_ENV})"
    assert lines[1].split() == [key, "4.0", "MiB", "2", "files", "used", "2", "h", "ago", shipped.name]
    assert lines[2].split()[:3] == ["bbbb", "1.0", "MiB"] and "s ago" in lines[2]
    doc = json.loads(CliRunner().invoke(main, ["cache", "info", "--json"]).output)
    assert doc["bytes"] == 5 * MB and doc["limit_bytes"] == 1024 * MB
    assert [(e["key"], e["model"], e["bytes"]) for e in doc["entries"]] == [
        (key, shipped.name, 4 * MB),
        ("bbbb", None, MB),
    ]
    r = CliRunner().invoke(main, ["cache", "clear"])
    assert r.exit_code == 0 and f"{cache}: removed 2 files, 4.0 MiB" in r.output
    assert "kept 1 export used in the last 10 minutes" in r.output and "--force" in r.output
    assert names(cache) == ["bbbb.onnx"]
    r = CliRunner().invoke(main, ["cache", "clear", "--force"])
    assert r.exit_code == 0 and "removed 1 file, 1.0 MiB" in r.output and names(cache) == []
    done = clear_cache()  # an empty cache clears to nothing, without error
    assert done.removed == [] and done.kept == []
    r = CliRunner().invoke(main, ["cache", "--help"])
    assert "GEOSEG_ONNX_CACHE_MB" in r.output and "info" in r.output and "clear" in r.output
