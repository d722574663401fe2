"""Benchmarks of ``geoseg.predict`` (geoseg.inference): overhead, memory, scaling and backends.

Subcommands (each prints a table; ``all`` runs them in turn):

    overhead  end-to-end predict() on a synthetic 4-band uint16 scene against the bare model
              forward over the same tiles (same backend, batch, tile size, total threads)
    memory    peak memory of the whole process tree (client, nannies, workers) of a predict
              run on a small and a large scene; the two should be within 15 % (bounded memory)
    scaling   seconds per megapixel at 4096^2, 8192^2 and 16384^2 (should be constant), in
              runs of their own that nothing polls (the poller's CPU would weigh on them)
    warm      the same sizes on a LocalCluster that is already up and has run one job
              (``predict(client=...)``, as a notebook or a service runs it): the per-MP
              cost of the pipeline without process start-up
    backends  bare forward throughput: ONNX Runtime vs torch eager (1 and 2 threads) and
              torch.compile

Run from the repository root, e.g.::

    .venv/bin/python benchmarks/bench_predict.py all            # ~20 min on 2 cores
    .venv/bin/python benchmarks/bench_predict.py all --quick    # ~4 min, smaller scenes
    .venv/bin/python benchmarks/bench_predict.py overhead --size 4096 --breakdown
    .venv/bin/python benchmarks/bench_predict.py memory scaling

Synthetic scenes (geoseg.data.write_scene, no nodata border so every tile is predicted) and
untrained checkpoints are cached in ``--workdir``. Memory and scaling use a light model
("tiny": Unet-resnet18, encoder_depth=3, decoder_channels=[32, 16, 8]) since they measure
the pipeline, not the model; overhead and backends use the full Unet-resnet18.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
BANDS = ["blue", "green", "red", "nir"]
# Typical Sentinel-2 L2A reflectance (x 10000) over mixed land cover.
MEAN = [500.0, 800.0, 700.0, 2800.0]
STD = [300.0, 300.0, 400.0, 900.0]
MODELS: dict[str, dict[str, Any]] = {
    "resnet18": {},
    "tiny": {"encoder_depth": 3, "decoder_channels": [32, 16, 8]},
}
GiB = 1024**3


# --------------------------------------------------------------------------------------
# Shared helpers


def machine() -> str:
    """One paragraph about the machine and library versions, for the output."""
    import onnxruntime
    import psutil
    import torch

    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"machine: {cpu}, {os.cpu_count()} cores, {psutil.virtual_memory().total / GiB:.1f} GiB RAM, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}\n"
        f"versions: torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, "
        f"load average at start {load}"
    )


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table with right-aligned columns."""
    cells = [[str(h) for h in headers]] + [[_fmt(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}"
    return str(v)


def say(*parts: Any) -> None:
    print(*parts, flush=True)


def model_path(workdir: Path, name: str) -> Path:
    """An untrained (seeded) checkpoint of the named benchmark model, cached in workdir."""
    from geoseg.inference import init_checkpoint, make_spec

    path = workdir / f"unet-{name}.safetensors"
    if not path.exists():
        spec = make_spec("Unet", "resnet18", BANDS, 6, mean=MEAN, std=STD, **MODELS[name])
        init_checkpoint(path, spec, seed=0)
    return path


def scene_path(workdir: Path, size: int) -> Path:
    """A synthetic 4-band uint16 size x size scene without nodata border, cached in workdir."""
    from geoseg.data import SceneSpec, write_scene

    path = workdir / f"scene-{size}.tif"
    if not path.exists():
        t = time.perf_counter()
        write_scene(SceneSpec(size, size, seed=7, nodata_border=False), path)
        say(f"  (wrote {path.name} in {time.perf_counter() - t:.0f} s)")
    return path


# --------------------------------------------------------------------------------------
# Bare model forward, split over processes like the pipeline's workers


def _bare_worker(
    model: str,
    backend: str,
    threads: int,
    shape: tuple[int, ...],
    sizes: list[int],
    barrier: Any,
    queue: Any,
) -> None:
    from geoseg.inference import Predictor, load_checkpoint

    predictor = Predictor(load_checkpoint(model), device="cpu", backend=backend, threads=threads)
    rng = np.random.default_rng(os.getpid())
    batch = rng.normal(size=shape).astype(np.float32)  # normalised pixels: mean 0, std 1
    predictor.logits(batch[:1])  # first call allocates; the pipeline pays it once per worker too
    barrier.wait(timeout=600)
    t0, c0 = time.perf_counter(), time.process_time()
    for n in sizes:
        predictor.classes(predictor.logits(batch[:n]))
    queue.put((t0, time.perf_counter(), time.process_time() - c0))


def bare_forward(
    model: Path, backend: str, processes: int, threads: int, tiles: int, batch: int, read: int
) -> tuple[float, float]:
    """(wall, CPU) seconds for ``processes`` x ``threads`` to run ``tiles`` tiles in batches.

    Batches are dealt out like the pipeline's tasks (``ceil(tiles / batch)`` of them, the
    last one smaller, round robin); the clock starts when every process has its model
    loaded and ends when the last one finishes. CPU is that of the timed loops only.
    """
    import multiprocessing as mp

    sizes = [min(batch, tiles - i) for i in range(0, tiles, batch)]
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(processes + 1)
    queue = ctx.Queue()
    shape = (batch, len(BANDS), read, read)
    procs = [
        ctx.Process(
            target=_bare_worker,
            args=(str(model), backend, threads, shape, sizes[i::processes], barrier, queue),
        )
        for i in range(processes)
    ]
    for p in procs:
        p.start()
    barrier.wait(timeout=600)  # a worker that died loading its model breaks the barrier
    spans = [queue.get(timeout=3600) for _ in procs]
    for p in procs:
        p.join()
    return max(e for _, e, _ in spans) - min(s for s, _, _ in spans), sum(c for _, _, c in spans)


# --------------------------------------------------------------------------------------
# overhead


def _child_cpu() -> float:
    """CPU seconds (user + sys) of this process's finished, reaped descendants so far."""
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _subprocess_json(cmd: Sequence[str]) -> tuple[dict[str, Any], float]:
    """Run ``cmd``; its last stdout line as JSON, and the CPU seconds of its process tree.

    Every process of the tree is reaped by its parent (the CLI joins its cluster, nannies
    wait for their workers), so RUSAGE_CHILDREN counts dask workers and nannies too.
    """
    cpu = _child_cpu()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1]), _child_cpu() - cpu


def _one_cmd(args: argparse.Namespace, scene: Path, model: Path, out: Path, keep: bool = False) -> list[str]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "_one", "--scene", str(scene)]
    cmd += ["--model-file", str(model), "--out", str(out), "--backend", args.backend]
    cmd += ["--tile", str(args.tile), "--overlap", str(args.overlap), "--batch", str(args.batch)]
    cmd += ["--workers", str(args.workers), "--threads", str(args.threads)]
    return [*cmd, "--keep"] if keep else cmd


def overhead(args: argparse.Namespace) -> dict[str, Any]:
    """predict() in a subprocess against the bare forward in as many processes, alternating.

    Alternating repeats and taking the best of each keeps other load on the machine from
    favouring one side. CPU seconds of the whole process tree are reported beside wall
    time: they are less sensitive to that load.
    """
    workdir: Path = args.workdir
    model = model_path(workdir, args.model)
    scene = scene_path(workdir, args.size)
    os.environ["GEOSEG_CACHE"] = str(workdir / "cache")  # the ONNX export is cached here
    out = workdir / "overhead.tif"
    read = args.tile + 2 * args.overlap
    tiles = math.ceil(args.size / args.tile) ** 2  # no nodata in the scene: all predicted
    mp_ = args.size * args.size / 1e6
    say(
        f"\n## overhead: predict() vs bare forward, {args.size} x {args.size} uint16 x 4, "
        f"Unet-{args.model}, tile {args.tile} + overlap {args.overlap} ({tiles} tiles of {read}^2), "
        f"batch {args.batch}, {args.workers} workers x {args.threads} thread, backend {args.backend}"
    )
    bare_cmd = [sys.executable, str(Path(__file__).resolve()), "_bare", "--model-file", str(model)]
    bare_cmd += ["--backend", args.backend, "--workers", str(args.workers), "--threads", str(args.threads)]
    bare_cmd += ["--tiles", str(tiles), "--batch", str(args.batch), "--read", str(read)]
    rows: list[list[Any]] = []
    pipe: list[tuple[float, float]] = []
    bare: list[tuple[float, float]] = []
    if args.backend == "onnx":
        _clear_onnx_cache(workdir)
        res, cpu = _subprocess_json(_one_cmd(args, scene, model, out))
        rows.append(["predict (cold: exports ONNX)", res["seconds"], cpu, mp_ / res["seconds"]])
        cold = res["seconds"]
    for i in range(args.repeat):
        res, cpu = _subprocess_json(_one_cmd(args, scene, model, out, keep=i == args.repeat - 1))
        pipe.append((res["seconds"], cpu))
        rows.append([f"predict #{i + 1}", res["seconds"], cpu, mp_ / res["seconds"]])
        res, _ = _subprocess_json(bare_cmd)
        bare.append((res["seconds"], res["cpu"]))
        rows.append([f"bare forward #{i + 1}", res["seconds"], res["cpu"], mp_ / res["seconds"]])
    say(table(["run", "wall s", "CPU s (tree)", "MP/s"], rows))
    wall = min(p[0] for p in pipe) / min(b[0] for b in bare)
    cpu_ratio = min(p[1] for p in pipe) / min(b[1] for b in bare)
    say(f"ratio predict / bare, best of each: wall {wall:.3f}, CPU {cpu_ratio:.3f} (goal <= 1.15)")
    if args.backend == "onnx":
        say(f"cold run (ONNX export included) / best bare: {cold / min(b[0] for b in bare):.3f}")
    say("(predict CPU: every process of its tree, start to end; bare CPU: the timed model loops only)")
    result: dict[str, Any] = {"ratio_wall": wall, "ratio_cpu": cpu_ratio, "rows": rows}
    if args.breakdown:
        result["breakdown"] = breakdown(args, model, scene, out, min(b[0] for b in bare))
    out.unlink(missing_ok=True)
    return result


def _bare(args: argparse.Namespace) -> None:
    """Hidden subcommand: the bare forward, its wall seconds as JSON on the last line."""
    seconds, cpu = bare_forward(
        Path(args.model_file), args.backend, args.workers, args.threads, args.tiles, args.batch, args.read
    )
    print(json.dumps({"seconds": seconds, "cpu": cpu}))


def _clear_onnx_cache(workdir: Path) -> None:
    for p in (workdir / "cache" / "onnx").glob("*.onnx"):
        p.unlink()


def breakdown(
    args: argparse.Namespace, model: Path, scene: Path, output: Path, bare: float
) -> dict[str, float]:
    """Time each non-model stage of the pipeline on its own, serially in this process.

    Imports are timed in fresh subprocesses, so modules already loaded here hide nothing;
    the tile store and COG assembly are fed the classes of the real run (``output``).
    """
    import rasterio

    from geoseg.inference import TileStore, connect, normalise, read_spec, read_tiles
    from geoseg.inference._pipeline import _Outputs
    from geoseg.raster import batch_tiles, close_kept, open_region

    say("\n### breakdown (each stage alone, serially, one process)")
    stages: dict[str, float] = {}

    def timed(name: str, fn: Callable[[], Any]) -> Any:
        t = time.perf_counter()
        out = fn()
        stages[name] = time.perf_counter() - t
        return out

    code = (
        "import time; t = time.perf_counter(); {imp}; import json; print(json.dumps(time.perf_counter() - t))"
    )
    for name, imp in [
        ("worker imports: geoseg.inference + onnxruntime", "import geoseg.inference, onnxruntime"),
        (
            "worker imports if torch + smp are needed",
            "import torch; from geoseg.inference._compat import import_smp; import_smp()",
        ),
    ]:
        proc = subprocess.run([sys.executable, "-c", code.format(imp=imp)], capture_output=True, text=True)
        stages[name] = float(proc.stdout.strip().splitlines()[-1])
    predictor_code = (
        "import time; t = time.perf_counter(); from geoseg.inference._tasks import _predictor; "
        f"_predictor({str(model)!r}, 'cpu', {args.backend!r}, {args.threads}); import json; "
        "print(json.dumps(time.perf_counter() - t))"
    )
    proc = subprocess.run([sys.executable, "-c", predictor_code], capture_output=True, text=True)
    stages["first _predictor() in a fresh worker (imports + model)"] = float(
        proc.stdout.strip().splitlines()[-1]
    )
    client = timed("LocalCluster start", lambda: connect(None, args.workers, args.threads))
    t = time.perf_counter()
    cluster = client.cluster
    client.close()
    cluster.close()
    stages["LocalCluster close"] = time.perf_counter() - t
    source = open_region([scene], bands=BANDS)
    tiles = source.grid.tiles(args.tile, args.overlap)
    spec = read_spec(model)
    reads: list[tuple[np.ndarray, np.ndarray]] = []
    timed(f"read {len(tiles)} windows one by one", lambda: [source.read(t.read) for t in tiles])
    batches = batch_tiles(tiles, args.batch, args.workers)
    for lane in range(args.workers):  # each worker's batches in turn, as the pipeline deals them
        mine = batches[lane :: args.workers]
        timed(
            f"read worker {lane + 1}'s {len(mine)} batches (pipeline.read_tiles, files kept open)",
            lambda mine=mine: reads.extend(r for b in mine for r in read_tiles(source, b)),
        )
        close_kept()
    batch = np.empty((args.batch, *reads[0][0].shape), dtype=np.float32)
    timed("normalise into a batch, all tiles", lambda: [normalise(p, v, spec, out=batch[k % args.batch]) for k, (p, v) in enumerate(reads)])  # fmt: skip
    with rasterio.open(output) as ds:
        cores = {t.key: ds.read(1, window=t.core.to_rasterio()) for t in tiles}
    bd = args.workdir / "breakdown.tif"
    store = TileStore(bd, "breakdown", resume=False)
    timed("tile store put (client)", lambda: [store.put(t.key, cores[t.key], None) for t in tiles])
    outputs = _Outputs(bd, source.grid, spec, {}, None)
    timed("stage file writes, all tiles (client, overlapped with the workers)", lambda: [outputs.write(t, cores[t.key], None) for t in tiles])  # fmt: skip
    timed("COG copy after the last tile (client)", outputs.finish)
    store.remove()
    bd.unlink(missing_ok=True)
    rows = [[k, v, 100 * v / bare] for k, v in stages.items()]
    say(table(["stage", "seconds", "% of bare forward wall"], rows))
    return stages


# --------------------------------------------------------------------------------------
# memory and scaling: predict in a subprocess, the process tree polled


def _tree_memory(root: Any) -> tuple[int, int, dict[str, int]]:
    """(summed RSS, summed PSS, PSS by role) of ``root`` and all its descendants.

    Roles: ``client`` (the root, which also hosts LocalCluster's nannies), ``worker``
    (dask workers: spawned ones run ``spawn_main``, forked ones keep the client's command
    line), ``other`` (e.g. multiprocessing's resource tracker).
    """
    import psutil

    rss = pss = 0
    roles: dict[str, int] = {}
    try:
        procs = [root, *root.children(recursive=True)]
        root_cmd = " ".join(root.cmdline())
    except psutil.Error:
        return 0, 0, roles
    for p in procs:
        try:
            r, q = p.memory_info().rss, _pss(p.pid)
            cmd = " ".join(p.cmdline())
        except (psutil.Error, OSError):
            continue
        rss += r
        pss += q
        if p.pid == root.pid:
            role = "client"
        else:
            role = "worker" if "spawn_main" in cmd or cmd == root_cmd else "other"
        key = f"{role} {p.pid}"
        roles[key] = q
    return rss, pss, roles


def _pss(pid: int) -> int:
    # smaps_rollup is one read per process, cheap enough to poll every 0.1 s
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


@dataclass
class TreeRun:
    seconds: float
    wall: float
    peak_rss: int
    peak_pss: int
    processes: int
    result: dict[str, Any]
    roles: dict[str, int]  # peak PSS of the largest process of each role


def run_polled(cmd: Sequence[str], interval: float = 0.1) -> TreeRun:
    """Run ``cmd`` and poll its whole process tree's memory every ``interval`` seconds."""
    import psutil

    t, cpu = time.perf_counter(), _child_cpu()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    root = psutil.Process(proc.pid)
    peak = [0, 0, 0]
    by_pid: dict[str, int] = {}
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            rss, pss, roles = _tree_memory(root)
            peak[0], peak[1], peak[2] = max(peak[0], rss), max(peak[1], pss), max(peak[2], len(roles))
            for k, v in roles.items():
                by_pid[k] = max(by_pid.get(k, 0), v)
            stop.wait(interval)

    th = threading.Thread(target=poll, daemon=True)
    th.start()
    out, err = proc.communicate()
    stop.set()
    th.join()
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err[-3000:]}")
    result = json.loads(out.strip().splitlines()[-1])
    result["cpu"] = _child_cpu() - cpu  # the whole tree, reaped: client and workers
    roles: dict[str, int] = {}
    for key, v in by_pid.items():
        role = key.split()[0]
        roles[role] = max(roles.get(role, 0), v)
    return TreeRun(result["seconds"], wall, peak[0], peak[1], peak[2], result, roles)


def _one(args: argparse.Namespace) -> None:
    """Hidden subcommand: one predict() run, its result as JSON on the last line."""
    from geoseg.inference import predict

    res = predict(
        [args.scene],
        args.model_file,
        args.out,
        tile_size=args.tile,
        overlap=args.overlap,
        batch_size=args.batch,
        backend=args.backend,
        device="auto",  # the default a user gets (deciding it must not cost a torch import)
        workers=args.workers,
        threads=args.threads,
    )
    if not args.keep:
        Path(args.out).unlink()
    print(json.dumps({"seconds": res.seconds, "tiles": res.tiles, "megapixels": res.megapixels}))


def run_unpolled(cmd: Sequence[str]) -> TreeRun:
    """Run ``cmd`` with nothing watching it: for timing (the poller costs the 2-core machine
    7 % of a 268 MP run and 13-19 % of a 16.8 MP one; benchmarks/README.md, session 7)."""
    t = time.perf_counter()
    result, cpu = _subprocess_json(cmd)
    result["cpu"] = cpu
    return TreeRun(result["seconds"], time.perf_counter() - t, 0, 0, 0, result, {})


def tree_runs(args: argparse.Namespace, sizes: Sequence[int], poll: bool = True) -> dict[int, TreeRun]:
    workdir: Path = args.workdir
    model = model_path(workdir, args.light_model)
    os.environ["GEOSEG_CACHE"] = str(workdir / "cache")
    if args.backend == "onnx":
        # export once beforehand: a run that exports loads torch in the client, which
        # would make the first size look bigger than the rest
        subprocess.run(
            [
                sys.executable,
                "-c",
                f"from geoseg.inference._pipeline import _ensure_onnx_export as e; from pathlib import Path; e(Path({str(model)!r}))",
            ],
            check=True,
            capture_output=True,
        )
    runs: dict[int, TreeRun] = {}
    # rounds over all sizes (not one size N times in a row), so a slow spell of the
    # machine hits every size alike; per size the fastest run's time, the worst peaks
    for _ in range(max(1, getattr(args, "tree_repeat", 1))):
        for size in sizes:
            scene = scene_path(workdir, size)
            cmd = _one_cmd(args, scene, model, workdir / f"tree-{size}.tif")
            if not poll:
                r = run_unpolled(cmd)
                say(f"  {size}^2: {r.seconds:.1f} s in predict(), {r.wall:.1f} s wall (not polled)")
                runs[size] = _merge(runs[size], r) if size in runs else r
                continue
            r = run_polled(cmd)
            say(
                f"  {size}^2: {r.seconds:.1f} s in predict(), {r.wall:.1f} s wall, peak RSS "
                f"{r.peak_rss / GiB:.2f} GiB, PSS {r.peak_pss / GiB:.2f} GiB, {r.processes} processes; "
                + ", ".join(f"largest {k} {v / GiB:.2f} GiB" for k, v in sorted(r.roles.items()))
            )
            runs[size] = _merge(runs[size], r) if size in runs else r
    return runs


def _merge(a: TreeRun, b: TreeRun) -> TreeRun:
    """Repeats of one size: the faster run's times, the larger of each memory peak."""
    fast = a if a.seconds <= b.seconds else b
    roles = {k: max(a.roles.get(k, 0), b.roles.get(k, 0)) for k in {*a.roles, *b.roles}}
    return TreeRun(fast.seconds, fast.wall, max(a.peak_rss, b.peak_rss), max(a.peak_pss, b.peak_pss),
                   max(a.processes, b.processes), fast.result, roles)  # fmt: skip


def memory(args: argparse.Namespace, runs: dict[int, TreeRun] | None = None) -> dict[str, Any]:
    small, large = args.memory_sizes
    say(
        f"\n## memory: peak of the whole process tree (client + nannies + workers), "
        f"Unet-{args.light_model}, tile {args.tile} + {args.overlap}, batch {args.batch}, "
        f"{args.workers} workers x {args.threads} thread, backend {args.backend}, polled every 0.1 s"
    )
    runs = dict(runs or {})
    missing = [s for s in (small, large) if s not in runs]
    runs.update(tree_runs(args, missing))
    rows = []
    for s in (small, large):
        r = runs[s]
        rows.append(
            [
                f"{s} x {s}",
                s * s / 1e6,
                r.peak_rss / GiB,
                r.peak_pss / GiB,
                r.roles.get("client", 0) / GiB,
                r.roles.get("worker", 0) / GiB,
                r.processes,
            ]
        )
    say(
        table(
            [
                "scene",
                "MP",
                "peak RSS sum GiB",
                "peak PSS sum GiB",
                "client GiB",
                "1 worker GiB",
                "processes",
            ],
            rows,
        )
    )
    grow_rss = runs[large].peak_rss / runs[small].peak_rss - 1
    grow_pss = runs[large].peak_pss / runs[small].peak_pss - 1
    say(
        f"large vs small: RSS {100 * grow_rss:+.1f} %, PSS {100 * grow_pss:+.1f} % (goal within 15 %); "
        f"peak PSS {runs[large].peak_pss / GiB:.2f} GiB (goal < 2 GiB)"
    )
    return {"growth_rss": grow_rss, "growth_pss": grow_pss, "runs": {k: v.__dict__ for k, v in runs.items()}}


def _per_mp_fit(sizes: Sequence[int], seconds: Sequence[float]) -> tuple[float, float, float]:
    """Print and return (spread of s/MP, fixed s, s/MP) of runs at ``sizes``^2."""
    mps = np.array([s * s / 1e6 for s in sizes])
    secs = np.array(seconds, dtype=float)
    per = secs / mps
    spread = float(per.max() / per.min() - 1)
    # seconds = fixed + per_mp * MP: the fixed part (cluster start, model load, COG
    # finish) is what makes small scenes look slower per megapixel
    slope, fixed = np.polyfit(mps, secs, 1)
    worst = float(np.max(np.abs(secs - (fixed + slope * mps)) / secs))
    say(
        f"spread of s/MP: {100 * spread:.1f} % (goal within 10 %); least-squares fit: {fixed:.2f} s "
        f"fixed + {1000 * slope:.0f} ms/MP; largest residual {100 * worst:.1f} % of a run; marginal "
        f"cost between the two largest: {1000 * (secs[-1] - secs[-2]) / (mps[-1] - mps[-2]):.0f} ms/MP"
    )
    return spread, float(fixed), float(slope)


def scaling(args: argparse.Namespace, runs: dict[int, TreeRun] | None = None) -> dict[str, Any]:
    say(
        f"\n## scaling: seconds per megapixel, Unet-{args.light_model}, tile {args.tile} + "
        f"{args.overlap}, batch {args.batch}, {args.workers} workers x {args.threads} thread, "
        f"backend {args.backend}"
    )
    runs = dict(runs or {})
    missing = [s for s in args.scaling_sizes if s not in runs]
    runs.update(tree_runs(args, missing, poll=False))
    rows = []
    per: dict[int, float] = {}
    cpu_per: dict[int, float] = {}
    for s in args.scaling_sizes:
        r = runs[s]
        mp_ = s * s / 1e6
        per[s] = r.seconds / mp_
        cpu_per[s] = r.result["cpu"] / mp_
        rows.append([f"{s} x {s}", mp_, r.seconds, 1000 * per[s], mp_ / r.seconds, 1000 * cpu_per[s]])
    say(table(["scene", "MP", "predict() s", "ms / MP", "MP/s", "CPU ms / MP (tree)"], rows))
    cpu_spread = max(cpu_per.values()) / min(cpu_per.values()) - 1
    spread, fixed, slope = _per_mp_fit(args.scaling_sizes, [runs[s].seconds for s in args.scaling_sizes])
    say(f"of CPU s/MP: {100 * cpu_spread:.1f} % (CPU includes each process's start-up)")
    return {
        "spread": spread,
        "cpu_spread": cpu_spread,
        "s_per_mp": per,
        "fixed_s": fixed,
        "ms_per_mp": 1000 * slope,
    }


def _warm(args: argparse.Namespace) -> None:
    """Hidden subcommand: each size predicted on one LocalCluster that ran a job first."""
    from geoseg.cluster import close_client
    from geoseg.inference import connect, predict

    model = model_path(args.workdir, args.light_model)
    opts = {
        "tile_size": args.tile,
        "overlap": args.overlap,
        "batch_size": args.batch,
        "backend": args.backend,
    }
    client = connect(None, args.workers, args.threads)  # forked, as predict() would
    best: dict[int, float] = {}
    try:
        # the first job: the workers import, load the model, start their thread pools
        predict([scene_path(args.workdir, 2048)], model, args.workdir / "warm-up.tif", client=client, **opts)
        for _ in range(max(1, args.tree_repeat)):
            for size in args.scaling_sizes:
                out = args.workdir / f"warm-{size}.tif"
                r = predict([scene_path(args.workdir, size)], model, out, client=client, **opts)
                out.unlink()
                best[size] = min(best.get(size, math.inf), r.seconds)
    finally:
        close_client(client)
    print(json.dumps(best))


def warm(args: argparse.Namespace) -> dict[str, Any]:
    say(
        f"\n## scaling on a warm cluster: predict(client=...) on one LocalCluster that has run a "
        f"2048^2 job, Unet-{args.light_model}, tile {args.tile} + {args.overlap}, batch {args.batch}, "
        f"{args.workers} workers x {args.threads} thread, backend {args.backend}, best of {args.tree_repeat}"
    )
    for size in (2048, *args.scaling_sizes):
        scene_path(args.workdir, size)
    cmd = [sys.executable, str(Path(__file__).resolve()), "_warm", "--workdir", str(args.workdir)]
    cmd += ["--light-model", args.light_model, "--backend", args.backend, "--tile", str(args.tile)]
    cmd += ["--overlap", str(args.overlap), "--batch", str(args.batch), "--workers", str(args.workers)]
    cmd += ["--threads", str(args.threads), "--tree-repeat", str(args.tree_repeat)]
    cmd += ["--quick"] if args.quick else []
    best, _ = _subprocess_json(cmd)
    sizes = list(args.scaling_sizes)
    secs = [best[str(s)] for s in sizes]
    rows = [
        [f"{s} x {s}", s * s / 1e6, t, 1000 * t / (s * s / 1e6)] for s, t in zip(sizes, secs, strict=True)
    ]
    say(table(["scene", "MP", "predict() s", "ms / MP"], rows))
    spread, fixed, slope = _per_mp_fit(sizes, secs)
    return {
        "spread": spread,
        "fixed_s": fixed,
        "ms_per_mp": 1000 * slope,
        "seconds": dict(zip(sizes, secs, strict=True)),
    }


# --------------------------------------------------------------------------------------
# backends


def _backend_worker(
    model: str, name: str, threads: int, shape: tuple[int, ...], seconds: float, queue: Any
) -> None:
    """Time one backend in a fresh process (thread settings and compile caches stay apart)."""
    import torch

    from geoseg.inference import Predictor, load_checkpoint, pad_to_stride

    batch = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    t = time.perf_counter()
    if name in ("onnx", "torch"):
        predictor = Predictor(load_checkpoint(model), device="cpu", backend=name, threads=threads)
        run = predictor.probabilities
    else:
        torch.set_num_threads(threads)
        module = load_checkpoint(model).module.eval()
        if name == "torch channels_last":
            module = module.to(memory_format=torch.channels_last)
        if name.startswith("torch.compile"):
            module = torch.compile(module, dynamic=False, mode=name.split(":")[1] if ":" in name else None)

        def run(b: np.ndarray) -> np.ndarray:
            padded, h, w = pad_to_stride(b)
            x = torch.from_numpy(padded)
            if name == "torch channels_last":
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.inference_mode():
                return torch.softmax(module(x), dim=1).numpy()[:, :, :h, :w]

    try:
        run(batch)  # first call: allocation, or compilation for torch.compile
    except Exception as exc:  # report the failure in the table instead of dying
        queue.put((name, threads, time.perf_counter() - t, math.nan, f"{type(exc).__name__}: {exc}"[:120]))
        return
    first = time.perf_counter() - t
    n = 0
    t0 = time.perf_counter()
    while n < 2 or time.perf_counter() - t0 < seconds:
        run(batch)
        n += 1
    queue.put((name, threads, first, (time.perf_counter() - t0) / n, ""))


def backends(args: argparse.Namespace) -> dict[str, Any]:
    import multiprocessing as mp

    from geoseg.inference import export_onnx, load_checkpoint, onnx_cache_path

    workdir: Path = args.workdir
    model = model_path(workdir, args.model)
    os.environ["GEOSEG_CACHE"] = str(workdir / "cache")
    loaded = load_checkpoint(model)
    if not onnx_cache_path(loaded).exists():
        export_onnx(loaded, onnx_cache_path(loaded))
    read = args.tile + 2 * args.overlap
    shape = (args.batch, len(BANDS), read, read)
    say(
        f"\n## backends: bare forward of a ({', '.join(map(str, shape))}) batch, Unet-{args.model}, CPU; "
        f"each in a fresh process, >= {args.seconds:.0f} s of steady state after a first call"
    )
    names = ["onnx", "torch", "torch channels_last"]
    if not args.no_compile:
        names.append("torch.compile")
    ctx = mp.get_context("spawn")
    rows = []
    results: dict[str, float] = {}
    for name in names:
        for threads in (1, 2):
            queue = ctx.Queue()
            p = ctx.Process(
                target=_backend_worker, args=(str(model), name, threads, shape, args.seconds, queue)
            )
            p.start()
            got = queue.get()
            p.join()
            _, _, first, per_batch, note = got
            core_mp = args.batch * args.tile**2 / 1e6
            rows.append([name, threads, first, per_batch, core_mp / per_batch, note])
            results[f"{name}/{threads}"] = per_batch
            say(f"  {name} x{threads}: {per_batch:.2f} s/batch {note}")
    base = {t: results.get(f"torch/{t}", math.nan) for t in (1, 2)}
    for r in rows:
        r.insert(5, base[r[1]] / r[3] if r[3] == r[3] else math.nan)
    say(
        table(["backend", "threads", "first call s", "s / batch", "core MP/s", "x torch eager", "note"], rows)
    )
    return results


# --------------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "commands",
        nargs="+",
        metavar="command",
        choices=["overhead", "memory", "scaling", "warm", "backends", "all", "_one", "_bare", "_warm"],
        help="one or more of overhead, memory, scaling, warm, backends, all",
    )
    p.add_argument("--quick", action="store_true", help="smaller scenes and fewer repeats (~4 min)")
    p.add_argument("--size", type=int, default=4096, help="overhead: scene size (default 4096)")
    p.add_argument("--tile", type=int, default=512)
    p.add_argument("--overlap", type=int, default=64)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--threads", type=int, default=1, help="threads per worker")
    p.add_argument("--backend", default="onnx", choices=["onnx", "torch"])
    p.add_argument("--model", default="resnet18", choices=sorted(MODELS), help="overhead/backends model")
    p.add_argument("--light-model", default="tiny", choices=sorted(MODELS), help="memory/scaling model")
    p.add_argument("--repeat", type=int, default=2, help="overhead: warm runs and bare runs")
    p.add_argument("--breakdown", action="store_true", help="overhead: time each pipeline stage alone")
    p.add_argument(
        "--tree-repeat", type=int, default=1,
        help="memory/scaling: rounds over the sizes; best time and worst peak per size",
    )  # fmt: skip
    p.add_argument("--seconds", type=float, default=10.0, help="backends: steady-state seconds each")
    p.add_argument("--no-compile", action="store_true", help="backends: skip torch.compile")
    p.add_argument("--workdir", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "geoseg-bench")
    # _one
    p.add_argument("--scene", help=argparse.SUPPRESS)
    p.add_argument("--model-file", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("--keep", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--tiles", type=int, help=argparse.SUPPRESS)
    p.add_argument("--read", type=int, help=argparse.SUPPRESS)
    return p


def main(argv: Sequence[str] | None = None) -> None:
    args = parser().parse_args(argv)
    if "_one" in args.commands:
        _one(args)
        return
    if "_bare" in args.commands:
        _bare(args)
        return
    args.memory_sizes = (2048, 8192) if args.quick else (4096, 16384)
    args.scaling_sizes = (2048, 4096, 8192) if args.quick else (4096, 8192, 16384)
    if "_warm" in args.commands:
        os.environ["GEOSEG_CACHE"] = str(args.workdir / "cache")
        _warm(args)
        return
    wanted = (
        {"overhead", "memory", "scaling", "warm", "backends"}
        if "all" in args.commands
        else set(args.commands)
    )
    args.workdir.mkdir(parents=True, exist_ok=True)
    if args.quick:
        args.size = min(args.size, 2048)
        args.repeat = 1
        args.seconds = min(args.seconds, 4.0)
    say(machine())
    say(f"workdir: {args.workdir}")
    t = time.perf_counter()
    if "overhead" in wanted:
        overhead(args)
    if "memory" in wanted:
        say("\n## predict runs in a subprocess, process tree polled (for memory)")
        memory(args, tree_runs(args, sorted(args.memory_sizes)))
    if "scaling" in wanted:
        # timed apart, unwatched: the memory poller's own CPU would weigh on the short runs
        say("\n## predict runs in a subprocess, not polled (for scaling)")
        scaling(args)
    if "warm" in wanted:
        warm(args)
    if "backends" in wanted:
        backends(args)
    say(
        f"\ntotal {time.perf_counter() - t:.0f} s; load average now {', '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )


if __name__ == "__main__":
    main()
