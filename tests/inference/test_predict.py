"""Tiled prediction end to end: real Dask clusters, real GeoTIFFs, real (tiny) smp models."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from affine import Affine
from click.testing import CliRunner

from geoseg.cli import main
from geoseg.errors import GeosegError, ModelError, OutputError, SchedulerError
from geoseg.inference import init_checkpoint, load_checkpoint, make_spec, predict, read_spec, save_checkpoint
from geoseg.raster import Grid, PixelWindow, open_raster, validate_cog

VENV_BIN = Path(sys.executable).parent
TINY = {"encoder_depth": 3, "decoder_channels": [32, 16, 8]}


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small untrained Unet: 4 bands, 6 classes, normalisation for uint16 reflectance."""
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    spec = make_spec(
        "Unet",
        "resnet18",
        ["blue", "green", "red", "nir"],
        6,
        mean=[800, 900, 800, 2500],
        std=[400, 400, 500, 900],
        **TINY,
    )
    return init_checkpoint(path, spec, seed=0)


def make_scene(
    path: Path,
    height: int = 700,
    width: int = 900,
    seed: int = 0,
    origin: tuple[float, float] = (500_000, 9_000_000),
) -> Path:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = (np.sin((yy + origin[1] / 10) / 37.0) + np.cos((xx + origin[0] / 10) / 23.0)) * 600
    data = np.stack([base * k + 1500 + rng.normal(0, 80, base.shape) for k in (0.5, 0.8, 1.0, 2.0)])
    data = np.clip(data, 1, 10000).astype("uint16")
    data[:, :300, :300] = 0  # a nodata corner: the first 256-px tile is skipped
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        count=4,
        height=height,
        width=width,
        dtype="uint16",
        nodata=0,
        crs="EPSG:32720",
        transform=Affine(10, 0, origin[0], 0, -10, origin[1]),
        tiled=True,
    ) as ds:
        ds.write(data)
        for i, name in enumerate(["blue", "green", "red", "nir"], start=1):
            ds.set_band_description(i, name)
    return path


@pytest.fixture(scope="session")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_scene(tmp_path_factory.mktemp("scene") / "scene.tif")


@pytest.fixture(scope="session")
def reference(tmp_path_factory: pytest.TempPathFactory, scene: Path, tiny_model: Path) -> Path:
    out = tmp_path_factory.mktemp("ref") / "ref.tif"
    res = predict([scene], tiny_model, out, tile_size=256, overlap=32, workers=2, backend="torch")
    assert res.tiles == 12 and res.tiles_skipped == 1 and res.tiles_predicted == 11
    return out


@pytest.mark.slow
def test_output_contract(reference: Path, scene: Path) -> None:
    ok, errors, _ = validate_cog(reference)
    assert ok, errors
    src = open_raster(scene)
    with rasterio.open(reference) as ds:
        assert Grid.from_dataset(ds).same_as(src.grid)  # output grid = input grid
        assert ds.dtypes[0] == "uint8" and ds.nodata == 255 and ds.colormap(1)
        classes = ds.read(1)
        assert ds.tags()["GEOSEG_MODEL"] == "tiny.safetensors"
    _, valid = src.read()
    assert (classes[~valid] == 255).all()  # nodata in -> nodata out
    assert (classes[valid] < 6).all()
    assert len(np.unique(classes[valid])) >= 2


@pytest.mark.slow
def test_deterministic_whatever_workers_and_batches(
    tmp_path: Path, reference: Path, scene: Path, tiny_model: Path
) -> None:
    out = tmp_path / "one.tif"
    predict([scene], tiny_model, out, tile_size=256, overlap=32, workers=1, batch_size=3, backend="torch")
    assert out.read_bytes() == reference.read_bytes()


def test_workers_0_predicts_in_this_process_with_the_same_bytes(
    tmp_path: Path, reference: Path, scene: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import distributed

    from geoseg.inference import _tasks as pipeline

    monkeypatch.setattr(pipeline, "_PREDICTORS", {})  # this test's model, dropped after it
    seen: list[tuple[int, int]] = []
    out = tmp_path / "here.tif"
    res = predict([scene], tiny_model, out, tile_size=256, overlap=32, workers=0, backend="torch",
                  progress=lambda done, total, postfix="": seen.append((done, total)))  # fmt: skip
    assert out.read_bytes() == reference.read_bytes()
    assert res.tiles_predicted == 11 and res.tiles_skipped == 1 and seen[-1] == (12, 12)
    # the model ran here, and no Dask client was made
    assert [k[0] for k in pipeline._PREDICTORS] == [str(tiny_model.resolve())]
    with pytest.raises(ValueError):
        distributed.get_client()


@pytest.mark.slow
def test_forked_workers_give_the_spawned_ones_bytes(
    tmp_path: Path, reference: Path, scene: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI forks its workers (no torch in the client); this process, which imported
    torch, spawns them (the reference): the same class map either way."""
    from geoseg.cluster import fork_is_safe

    assert "torch" in sys.modules and not fork_is_safe(models=True) and fork_is_safe()
    monkeypatch.setenv("GEOSEG_START_METHOD", "spawn")  # a program with GDAL in other threads
    assert not fork_is_safe()
    monkeypatch.delenv("GEOSEG_START_METHOD")
    out = tmp_path / "forked.tif"
    cmd = [str(VENV_BIN / "geoseg"), "-vv", "predict", str(scene), "--model", str(tiny_model), "--out", str(out),
           "--tile-size", "256", "--overlap", "32", "--workers", "2", "--backend", "torch"]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "local cluster: 2 workers (fork)" in r.stderr
    assert r.stderr.count("tiny.safetensors loaded before the first task") == 2  # warmed while planning
    assert out.read_bytes() == reference.read_bytes()


@pytest.mark.slow
def test_forked_run_refuses_bad_input_after_its_workers_started(
    tmp_path: Path, scene: Path, tiny_model: Path
) -> None:
    """The CLI forks its workers before the output checks: a refused output still gives
    one line, exit 2, nothing written, and no worker left behind."""
    import psutil

    before = {p.pid for p in psutil.process_iter()}
    cmd = [
        str(VENV_BIN / "geoseg"),
        "-vv",
        "predict",
        str(scene),
        "--model",
        str(tiny_model),
        "--out",
        str(scene),
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "local cluster: 2 workers (fork)" in r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("geoseg: error:")]
    assert errors == [f"geoseg: error: {scene}: is also an input; choose another output path"], r.stderr
    assert sorted(p.name for p in scene.parent.iterdir()) == ["scene.tif"]

    def left() -> list[int]:
        return [p.pid for p in psutil.process_iter(["cmdline"])
                if p.pid not in before and "geoseg" in " ".join(p.info["cmdline"] or [])]  # fmt: skip

    deadline = time.time() + 10  # a worker's exit may be seen a moment after the CLI's
    while left() and time.time() < deadline:
        time.sleep(0.1)
    assert left() == []


@pytest.mark.slow
def test_onnx_backend_agrees_with_torch(
    tmp_path: Path, reference: Path, scene: Path, tiny_model: Path
) -> None:
    out = tmp_path / "onnx.tif"
    predict([scene], tiny_model, out, tile_size=256, overlap=32, workers=2, backend="onnx")
    with rasterio.open(out) as a, rasterio.open(reference) as b:
        agree = (a.read(1) == b.read(1)).mean()
    assert agree > 0.999  # float rounding may flip near-ties, nothing more


@pytest.mark.slow
def test_tta_predicts_the_mean_of_eight_views(tmp_path: Path, scene: Path, tiny_model: Path) -> None:
    plain, tta = tmp_path / "plain.tif", tmp_path / "tta.tif"
    kw = {"tile_size": 256, "overlap": 32, "workers": 1, "backend": "torch"}
    predict([scene], tiny_model, plain, **kw)
    predict([scene], tiny_model, tta, tta=True, **kw)
    with rasterio.open(plain) as a, rasterio.open(tta) as b:
        pa, pb = a.read(1), b.read(1)
        assert json.loads(b.tags()["GEOSEG_PARAMS"])["tta"] is True
        assert json.loads(a.tags()["GEOSEG_PARAMS"])["tta"] is False
    assert ((pa == 255) == (pb == 255)).all()  # the same nodata
    assert (pa != pb).any()  # an untrained model is not symmetric: the views disagree somewhere
    again = tmp_path / "again.tif"
    predict([scene], tiny_model, again, tta=True, **kw)
    assert again.read_bytes() == tta.read_bytes()


@pytest.mark.slow
def test_probabilities_output(tmp_path: Path, scene: Path, tiny_model: Path) -> None:
    out, probs = tmp_path / "c.tif", tmp_path / "p.tif"
    predict(
        [scene], tiny_model, out, tile_size=512, overlap=0, workers=1, backend="torch", probabilities=probs
    )
    with rasterio.open(probs) as p, rasterio.open(out) as c:
        assert p.count == 6 and p.descriptions[0] == "class0"
        pr = p.read()
        cl = c.read(1)
    valid = cl != 255
    total = pr[:, valid].astype(int).sum(axis=0)
    assert np.abs(total - 254).max() <= 6  # rounded probabilities still sum to ~1
    top2 = np.sort(pr[:, valid].astype(int), axis=0)[-2:]
    clear = top2[1] - top2[0] >= 2  # rounding to 1/254 cannot flip these
    assert (np.argmax(pr[:, valid], axis=0) == cl[valid])[clear].all()


@pytest.mark.slow
def test_mosaic_of_adjacent_scenes(tmp_path: Path, tiny_model: Path) -> None:
    left = make_scene(tmp_path / "left.tif", 300, 256, origin=(500_000, 9_000_000))
    right = make_scene(tmp_path / "right.tif", 300, 200, seed=1, origin=(502_560, 9_000_000))
    out = tmp_path / "mosaic.tif"
    res = predict([left, right], tiny_model, out, tile_size=128, overlap=16, workers=1, backend="torch")
    assert res.grid.shape == (300, 456)
    with rasterio.open(out) as ds:
        assert ds.width == 456 and ds.transform.c == 500_000


def test_batched_reads_equal_tile_by_tile_reads(tmp_path: Path, scene: Path) -> None:
    from geoseg.inference import read_tiles
    from geoseg.raster import batch_tiles, close_kept, open_region

    left = make_scene(tmp_path / "left.tif", 300, 256, origin=(500_000, 9_000_000))
    right = make_scene(tmp_path / "right.tif", 300, 200, seed=1, origin=(502_560, 9_000_000))
    try:
        for source in (open_region([scene]), open_region([left, right])):
            tiles = source.grid.tiles(96, 24)
            todo = [t for k, t in enumerate(tiles) if k % 7 != 3]  # gaps, as after --resume
            for batch in batch_tiles(todo, 3, 2):
                for tile, (pixels, valid) in zip(batch, read_tiles(source, batch), strict=True):
                    want, want_valid = source.read(tile.read)
                    np.testing.assert_array_equal(pixels, want)
                    np.testing.assert_array_equal(valid, want_valid)
    finally:
        close_kept()


@pytest.mark.slow
def test_cli_predict_and_model_commands(tmp_path: Path, scene: Path) -> None:
    runner = CliRunner()
    model = tmp_path / "m.safetensors"
    r = runner.invoke(
        main,
        [
            "model",
            "init",
            "--arch",
            "FPN",
            "--encoder",
            "resnet18",
            "--bands",
            "4",
            "--classes",
            "3",
            "--out",
            str(model),
        ],
    )
    assert r.exit_code == 0, r.output
    r = runner.invoke(main, ["model", "info", str(model)])
    assert r.exit_code == 0 and "FPN / resnet18" in r.output
    out = tmp_path / "out.tif"
    r = runner.invoke(
        main,
        [
            "predict",
            str(scene),
            "--model",
            str(model),
            "--out",
            str(out),
            "--tile-size",
            "512",
            "--workers",
            "1",
            "--backend",
            "torch",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "MP/s" in r.output and out.exists()


def test_checkpoint_round_trip_and_no_pickle(tmp_path: Path, tiny_model: Path) -> None:
    import torch

    loaded = load_checkpoint(tiny_model)
    spec = read_spec(tiny_model)
    assert spec.bands == ("blue", "green", "red", "nir") and spec.mean[3] == 2500
    copy = save_checkpoint(tmp_path / "copy.safetensors", spec, loaded.module)
    again = load_checkpoint(copy)
    for (k, a), (_, b) in zip(
        loaded.module.state_dict().items(), again.module.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), k
    pickled = tmp_path / "model.pt"
    torch.save(loaded.module.state_dict(), pickled)
    with pytest.raises(ModelError, match="pickle"):
        load_checkpoint(pickled)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--arch", "NotANet"], "unknown architecture"),
        (["--encoder", "resnet9000"], "unknown encoder"),
    ],
)
def test_model_init_bad_input(tmp_path: Path, args: list[str], message: str) -> None:
    r = CliRunner().invoke(main, ["model", "init", *args, "--out", str(tmp_path / "m.safetensors")])
    assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_predict_bad_inputs(tmp_path: Path, scene: Path, tiny_model: Path) -> None:
    three = tmp_path / "m3.safetensors"
    init_checkpoint(three, make_spec("Unet", "resnet18", 3, 2, **TINY))
    with pytest.raises(ModelError, match=r"expects 3 bands .* has 4"):
        predict([scene], three, tmp_path / "o.tif")
    with pytest.raises(OutputError, match="also an input"):
        predict([scene], tiny_model, scene)
    with pytest.raises(OutputError, match="does not exist"):
        predict([scene], tiny_model, tmp_path / "no" / "o.tif")
    with pytest.raises(GeosegError, match=r"^tile_size must be in 16\.\.4096, got 5000"):
        predict([scene], tiny_model, tmp_path / "o.tif", tile_size=5000)
    with pytest.raises(OutputError, match="both --out and --probabilities"):
        predict([scene], tiny_model, tmp_path / "o.tif", probabilities=tmp_path / "." / "o.tif")
    if Path("/proc").is_dir():  # writable to root by access(), yet it takes no new file
        with pytest.raises(OutputError, match="does not take new files"):
            predict([scene], tiny_model, "/proc/o.tif")
    notgeoseg = tmp_path / "x.safetensors"
    notgeoseg.write_bytes(b"\x00" * 64)
    with pytest.raises(ModelError, match="not a geoseg checkpoint"):
        predict([scene], notgeoseg, tmp_path / "o.tif")
    two_band = tmp_path / "two.tif"
    with rasterio.open(
        two_band,
        "w",
        driver="GTiff",
        count=2,
        height=50,
        width=50,
        dtype="uint16",
        crs="EPSG:32720",
        transform=Affine(10, 0, 509_000, 0, -10, 9_000_000),
    ) as ds:
        ds.write(np.ones((2, 50, 50), "uint16"))
    r = CliRunner().invoke(
        main,
        [
            "predict",
            str(scene),
            str(two_band),
            "--model",
            str(tiny_model),
            "--out",
            str(tmp_path / "o.tif"),
            "--bands",
            "1,2",
        ],
    )
    # a band selection does not make them alike
    assert r.exit_code == 2 and "must have the same bands" in r.output
    r = CliRunner().invoke(
        main,
        ["predict", str(scene), str(two_band), "--model", str(tiny_model), "--out", str(tmp_path / "o.tif")],
    )
    assert r.exit_code == 2 and "two.tif" in r.output and "band" in r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m3.safetensors", "two.tif", "x.safetensors"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_unreachable_scheduler_fails_fast(tmp_path: Path, scene: Path, tiny_model: Path) -> None:
    t = time.perf_counter()
    with pytest.raises(SchedulerError, match="cannot reach the Dask scheduler"):
        predict([scene], tiny_model, tmp_path / "o.tif", scheduler=f"tcp://127.0.0.1:{_free_port()}")
    assert time.perf_counter() - t < 15
    assert not (tmp_path / "o.tif").exists()


@contextlib.contextmanager
def _dask_cluster(worker_envs: Sequence[dict[str, str]]) -> Iterator[str]:
    """A real ``dask scheduler`` and one ``dask worker`` per env (extra variables) on 127.0.0.1."""
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "DASK_DISTRIBUTED__LOGGING__DISTRIBUTED": "error"}
    quiet: dict[str, Any] = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    scheduler = [VENV_BIN / "dask", "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"]
    procs = [subprocess.Popen(scheduler, env=env, **quiet)]
    try:
        time.sleep(2)
        for extra in worker_envs:
            worker = [
                VENV_BIN / "dask",
                "worker",
                address,
                "--nthreads",
                "1",
                "--no-dashboard",
                "--nworkers",
                "1",
            ]
            procs.append(subprocess.Popen(worker, env={**env, **extra}, **quiet))
        from distributed import Client

        with Client(address, timeout="20s") as client:
            if worker_envs:
                client.wait_for_workers(len(worker_envs), timeout=60)
        yield address
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            p.wait(timeout=30)


@pytest.mark.slow
def test_real_scheduler_and_workers_give_identical_bytes(
    tmp_path: Path, reference: Path, scene: Path, tiny_model: Path
) -> None:
    with _dask_cluster([{}, {}]) as address:
        out = tmp_path / "remote.tif"
        args = ["predict", str(scene), "--model", str(tiny_model), "--out", str(out), "--tile-size", "256",
                "--overlap", "32", "--scheduler", address]  # fmt: skip
        r = CliRunner().invoke(main, [*args, "--backend", "torch"])
        assert r.exit_code == 0, r.output
        assert out.read_bytes() == reference.read_bytes()


@pytest.mark.slow
def test_remote_workers_decide_what_auto_means(tmp_path: Path, scene: Path, tiny_model: Path) -> None:
    """``--device/--backend auto`` are resolved on the workers: here one lacks ONNX Runtime."""
    shadow = tmp_path / "no-onnxruntime" / "onnxruntime"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text('raise ImportError("onnxruntime is not installed on this worker")\n')
    out = tmp_path / "o.tif"
    args = ["predict", str(scene), "--model", str(tiny_model), "--out", str(out), "--tile-size", "256"]
    with _dask_cluster([{}, {"PYTHONPATH": str(shadow.parent)}]) as address:
        r = CliRunner().invoke(main, [*args, "--scheduler", address])
        assert r.exit_code == 2
        assert "differ in device/backend (cpu/onnx, cpu/torch)" in r.output and "--backend" in r.output
        assert not out.exists() and not list(tmp_path.glob(".o.tif*"))
        r = CliRunner().invoke(main, [*args, "--scheduler", address, "--backend", "torch"])
        assert r.exit_code == 0, r.output
        with rasterio.open(out) as ds:
            assert json.loads(ds.tags()["GEOSEG_PARAMS"])["backend"] == "torch"
    with _dask_cluster([]) as address:  # a scheduler nobody works for
        out.unlink()
        r = CliRunner().invoke(main, [*args, "--scheduler", address])
        assert r.exit_code == 2 and "has no workers" in r.output and not out.exists()


def test_tile_store_keeps_only_whole_tiles_of_the_same_run(tmp_path: Path) -> None:
    from geoseg.inference import TileStore

    out = tmp_path / "map.tif"
    store = TileStore(out, "run-1", resume=False)
    store.put("0-0", np.full((4, 4), 3, np.uint8), None)
    (store.dir / "0-1.npz.part").write_bytes(b"PK\x03\x04 cut off")  # killed mid-write
    again = TileStore(out, "run-1", resume=True)
    assert again.done() == {"0-0"} and not list(again.dir.glob("*.part"))
    classes, probs = again.get("0-0")
    assert probs is None and classes is not None and (classes == 3).all()
    assert TileStore(out, "run-2", resume=True).done() == set()  # other settings: start over
    store = TileStore(out, "run-2", resume=False)
    store.put("0-0", np.zeros((4, 4), np.uint8), None)
    (store.dir / "manifest.json").write_text('{"token": "run-')  # cut off too
    assert TileStore(out, "run-2", resume=True).done() == set()


@pytest.mark.slow
def test_resume_after_sigkill_is_identical(tmp_path: Path, scene: Path, tiny_model: Path) -> None:
    full = tmp_path / "full.tif"
    predict([scene], tiny_model, full, tile_size=64, overlap=16, workers=1, batch_size=1, backend="torch")
    out = tmp_path / "resumed.tif"
    cmd = [
        str(VENV_BIN / "geoseg"),
        "predict",
        str(scene),
        "--model",
        str(tiny_model),
        "--out",
        str(out),
        "--tile-size",
        "64",
        "--overlap",
        "16",
        "--workers",
        "1",
        "--batch-size",
        "1",
        "--backend",
        "torch",
    ]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    store = tmp_path / ".resumed.tif.tiles"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(store.glob("*.npz"))) < 40:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the CLI and its Dask workers, mid-run
    proc.wait()
    finished = len(list(store.glob("*.npz")))
    assert 40 <= finished < 165 and not out.exists()
    # A tile being written at the kill is cut off; resume must neither read nor count it
    # (planted, since the kill lands mid-write only now and then). The second name is the
    # one earlier versions gave such files: a "*.npz" that is not a tile of this run.
    cut = sorted(store.glob("*.npz"))[0].read_bytes()[:100]
    (store / "r9c9.npz.part").write_bytes(cut)
    (store / "r9c9.tmp.npz").write_bytes(cut)
    r = CliRunner().invoke(main, [*cmd[1:], "--resume"])
    assert r.exit_code == 0, r.output
    assert f"{finished} resumed" in r.output
    assert out.read_bytes() == full.read_bytes()
    assert not store.exists()


@pytest.mark.slow
def test_write_failure_mid_run_is_an_output_error_and_leaves_no_output(
    tmp_path: Path, scene: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from geoseg.raster import _write as io

    real_write = io.RasterWriter.write
    calls = []

    def failing_write(self: io.RasterWriter, window: PixelWindow, data: np.ndarray) -> None:
        calls.append(window)
        if len(calls) == 3:  # the third finished tile: the run is well under way
            raise rasterio.errors.RasterioIOError("No space left on device")
        real_write(self, window, data)

    monkeypatch.setattr(io.RasterWriter, "write", failing_write)
    out = tmp_path / "map.tif"
    with pytest.raises(OutputError, match=r"map\.tif.*cannot be written.*No space left"):
        predict([scene], tiny_model, out, tile_size=64, overlap=16, workers=1, batch_size=4, backend="torch")
    assert len(calls) == 3  # written while tiles finished, not after the last one
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == [".map.tif.tiles"]  # no COG, no stage file; the finished tiles stay for --resume


def test_optimised_onnx_graph_is_kept_per_cpu_and_predicts_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_model: Path
) -> None:
    from geoseg.inference import Predictor, cpu_fingerprint

    monkeypatch.setenv("GEOSEG_CACHE", str(tmp_path / "cache"))
    first = Predictor(load_checkpoint(tiny_model), backend="onnx", threads=1)
    kept = sorted((tmp_path / "cache" / "onnx").iterdir(), key=lambda p: len(p.name))
    assert [p.name.split(".", 1)[1] for p in kept] == ["onnx", f"{cpu_fingerprint()}.ort.onnx"]
    stamp = kept[1].stat().st_mtime_ns
    second = Predictor(load_checkpoint(tiny_model), backend="onnx", threads=1)
    assert second._session._model_path == str(kept[1]) and kept[1].stat().st_mtime_ns == stamp
    x = np.random.default_rng(0).normal(size=(2, 4, 96, 160)).astype(np.float32)
    np.testing.assert_array_equal(first.logits(x), second.logits(x))
    torch_scores = Predictor(load_checkpoint(tiny_model), backend="torch", threads=1).logits(x)
    np.testing.assert_allclose(second.logits(x), torch_scores, atol=1e-4)


@pytest.mark.slow
def test_zoom_predicts_on_resampled_tiles_onto_the_input_grid(
    tmp_path: Path, reference: Path, scene: Path, tiny_model: Path
) -> None:
    from dataclasses import replace

    kw: dict[str, Any] = {"tile_size": 256, "overlap": 32, "workers": 1, "backend": "torch"}
    zoom2 = tmp_path / "zoom2.tif"
    predict([scene], tiny_model, zoom2, zoom=2.0, **kw)
    with rasterio.open(zoom2) as a, rasterio.open(reference) as b:
        assert Grid.from_dataset(a).same_as(Grid.from_dataset(b))
        za, ref = a.read(1), b.read(1)
        assert json.loads(a.tags()["GEOSEG_PARAMS"])["zoom"] == 2.0
        assert json.loads(b.tags()["GEOSEG_PARAMS"])["zoom"] == 1.0
    assert ((za == 255) == (ref == 255)).all()  # nodata stays where it was
    assert (za != ref).any() and len(np.unique(za[za != 255])) >= 2
    # a checkpoint made with zoom 2 predicts at zoom 2 unless told otherwise
    loaded = load_checkpoint(tiny_model)
    made = save_checkpoint(tmp_path / "z2.safetensors", replace(loaded.spec, zoom=2.0), loaded.module)
    own = tmp_path / "own.tif"
    predict([scene], made, own, **kw)
    with rasterio.open(own) as a:
        assert (a.read(1) == za).all()
    info = CliRunner().invoke(main, ["model", "info", str(made)])
    assert info.exit_code == 0 and "zoom       2 " in info.output
    onnx = tmp_path / "onnx.tif"
    predict([scene], made, onnx, **{**kw, "backend": "onnx"})
    with rasterio.open(onnx) as a:
        assert (a.read(1) == za).mean() > 0.999  # NumPy resampling either way; float rounding only
    r = CliRunner().invoke(
        main,
        ["predict", str(scene), "--model", str(tiny_model), "--out", str(tmp_path / "o.tif"), "--zoom", "0"],
    )
    assert r.exit_code == 2 and "--zoom must be in" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "o.tif").exists()


@pytest.mark.slow
def test_catalog_scenes_are_images_by_name(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``geoseg predict nc-landsat7 ...``: a catalog scene of six single-band files is read
    through a VRT that stacks them (in the cache), on the files' own grid; a time series
    needs NAME@DATE."""
    from geoseg.data import SceneEntry, load_catalog
    from geoseg.raster import open_raster

    monkeypatch.setenv("GEOSEG_CACHE", str(tmp_path / "cache"))
    entry = load_catalog().get("nc-landsat7", SceneEntry)
    files = entry.raster_paths()
    res = predict(["nc-landsat7"], "landcover-nc-landsat7", tmp_path / "nc.tif", workers=1, backend="torch")
    (vrt,) = (tmp_path / "cache" / "inputs").glob("nc-landsat7-*.vrt")
    stacked, by_hand = open_raster(vrt), open_raster(files, band_names=list(entry.bands or ()))
    assert stacked.band_names == by_hand.band_names and stacked.count == len(files) == 6
    a, va = stacked.read()
    b, vb = by_hand.read()
    assert (va == vb).all() and np.array_equal(a[:, va], b[:, vb])  # the same pixels where valid
    with rasterio.open(res.out) as m, rasterio.open(files[0]) as first:
        assert m.transform == first.transform and m.shape == first.shape
        assert len(np.unique(m.read(1))) > 2  # a land-cover map, not one class
    assert json.loads(rasterio.open(res.out).tags()["GEOSEG_INPUTS"]) == [str(vrt)]
    with pytest.raises(GeosegError, match="'pucallpa-landsat' is a timeseries of the catalog, not one image"):
        predict(["pucallpa-landsat"], "forest-s2-rgb", tmp_path / "p.tif")
    with pytest.raises(GeosegError, match=r"expects 3 bands .* has 4 \(swir1, nir, red, green\)"):
        predict(["pucallpa-landsat@1985"], "forest-s2-rgb", tmp_path / "p.tif")
    with pytest.raises(GeosegError, match="'nc-landsat7' is a scene of the catalog, not a time series"):
        predict(["nc-landsat7@2020"], "forest-s2-rgb", tmp_path / "p.tif")
    with pytest.raises(GeosegError, match="nc-landsat8: no such file or catalog scene"):
        predict(["nc-landsat8"], "forest-s2-rgb", tmp_path / "p.tif")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "nc.qml", "nc.tif", "nc.tif.aux.xml"]
