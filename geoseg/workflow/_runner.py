"""Running a loaded workflow: which steps rerun, their staging, the state file, provenance.

:func:`geoseg.workflow.load_workflow` validates and plans; :func:`run_workflow` here runs
the plan, step by step (each step's work is its kind's ``run``, :mod:`geoseg.workflow._kinds`).

Reruns are incremental. Each step's *fingerprint* is the sha256 of its kind, parameters,
the content hashes of its input files (and of the earlier steps it reads), and
``geoseg.__version__``. A step whose fingerprint matches the one recorded in the output
directory's state file (``.geoseg-run.json``), and whose outputs are still there
unchanged, is skipped; ``force`` reruns everything.

Input hashes are full sha256 of the file content, cached in the state file under the
file's (size, mtime in ns): a file is re-read only when either changed. Full hashes
rather than size + mtime alone, because an identical rewrite (a deterministic upstream
step rerun, a re-download) must not cascade into reruns, and a same-size edit must not
be missed; the cache keeps reruns cheap for multi-GB scenes (hashing reads ~1 GB/s, so a
rerun that skips costs one ``stat`` per input). The one blind spot: content changed with
both size and mtime forced back to old values (``touch -d``); ``--force`` covers it.

Each step writes into a staging folder in the output directory and its files are renamed
into place only when it succeeds; vector layers are merged into the workflow's one
GeoPackage (:func:`geoseg.vector.merge_layers`), and STAC Items and a Collection describe
every product (:mod:`geoseg.products`)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from geoseg import __version__
from geoseg.errors import OutputError
from geoseg.progress import Progress
from geoseg.workflow._context import Context
from geoseg.workflow._kind import kind_of
from geoseg.workflow._spec import (
    STATE_FILE,
    WORK_DIR,
    Item,
    Step,
    Workflow,
    slug,
)
from geoseg.workflow._state import HashCache, State, StepRecord, _locked


def check_out_dir(out: Path) -> None:
    """Fail before any work when ``out`` cannot be the output directory.

    Root passes every permission check, so the test is real: a temporary file is created
    (and removed) in the directory, or in its nearest existing ancestor.
    """
    if out.exists() and not out.is_dir():
        raise OutputError("exists and is not a folder; give another --out-dir", out)
    probe = out
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise OutputError(f"cannot be created: {probe} is a file, not a folder", out)
    from geoseg.files import why_no_new_files

    why = why_no_new_files(probe)
    if why is not None:
        raise OutputError(f"cannot be written: no write access to {probe} ({why})", out)


@dataclass(frozen=True)
class StepEvent:
    """What the runner reports to its caller (the CLI prints these)."""

    step: str
    kind: str
    status: str  # "start", "ran", "skipped", "would run", "would skip"
    seconds: float = 0.0
    reason: str = ""
    products: tuple[str, ...] = ()


@dataclass
class RunResult:
    """What a run did and where its products are."""

    workflow: Workflow
    events: list[StepEvent] = field(default_factory=list)
    products: dict[str, Path] = field(default_factory=dict)  # label -> path
    seconds: float = 0.0
    collection: Path | None = None

    @property
    def ran(self) -> list[str]:
        return [e.step for e in self.events if e.status == "ran"]

    @property
    def skipped(self) -> list[str]:
        return [e.step for e in self.events if e.status == "skipped"]


def _input_items(step: Step) -> dict[str, list[Item]]:
    return {k: [i for r in refs for i in r.items] for k, refs in step.refs.items()}


def _upstream(step: Step) -> list[str]:
    names = {r.step for refs in step.refs.values() for r in refs if r.step}
    if kind_of(step.kind).whole_workflow:  # it reads the steps it includes
        names |= set(step.params["include"])
    return sorted(n for n in names if n)


def _fingerprint(
    step: Step, wf: Workflow, hashes: HashCache, records: Mapping[str, StepRecord]
) -> tuple[str, list[dict[str, str]]]:
    """The step's fingerprint, and its inputs as (path, sha256) for provenance."""
    inputs = []
    for key, items in sorted(_input_items(step).items()):
        for i in items:
            for f in i.files():
                inputs.append({"role": key, "path": str(f), "sha256": hashes.sha256(f)})
    upstream = {}
    for name in _upstream(step):
        rec = records.get(name)
        upstream[name] = [rec.fingerprint, rec.layers] if rec else None
    params = {k: v for k, v in step.params.items() if not k.startswith("_")}
    doc = {
        "kind": step.kind,
        "params": params,
        "inputs": [[d["role"], d["sha256"]] for d in inputs],
        "upstream": upstream,
        "layers": step.layers,
        "geoseg": __version__,
    }
    if kind_of(step.kind).whole_workflow:
        doc["workflow"] = [wf.name, str(wf.gpkg.name)]
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest(), inputs


def _intact(rec: StepRecord, wf: Workflow) -> str:
    """'' when every recorded output is still there as written, else what is not."""
    for rel, meta in rec.files.items():
        p = wf.out_dir / rel if not os.path.isabs(rel) else Path(rel)
        try:
            st = p.stat()
        except OSError:
            return f"{rel} is missing"
        if st.st_size != meta["size"] or st.st_mtime_ns != meta["mtime_ns"]:
            return f"{rel} was modified"
    if rec.layers:
        import pyogrio

        from geoseg.vector import list_layers

        present = list_layers(wf.gpkg)
        for layer, count in rec.layers.items():
            if layer not in present:
                return f"layer {layer} is missing from {wf.gpkg.name}"
            if pyogrio.read_info(str(wf.gpkg), layer=layer)["features"] != count:
                return f"layer {layer} of {wf.gpkg.name} was modified"
    return ""


def run_workflow(
    wf: Workflow,
    *,
    force: bool = False,
    dry_run: bool = False,
    workers: int | None = None,
    scheduler: str | None = None,
    on_event: Callable[[StepEvent], None] | None = None,
    progress: Callable[[Step], Progress | None] | None = None,
) -> RunResult:
    """Run the steps of ``wf`` in order, skipping those whose inputs, parameters and code
    version are unchanged since the run recorded in the output directory (``force``:
    run all). ``dry_run`` says what would run and writes nothing. The library never
    prints: ``on_event`` hears of each step, ``progress(step)`` gives a step its callback.
    """
    t0 = time.perf_counter()
    out = wf.out_dir
    check_out_dir(out)
    workers = workers if workers is not None else wf.workers
    scheduler = scheduler or wf.scheduler
    result = RunResult(wf)

    def emit(ev: StepEvent) -> None:
        result.events.append(ev)
        if on_event is not None:
            on_event(ev)

    if dry_run:
        _check_owner(wf, out, force)
        state = State.load(out / STATE_FILE) if out.is_dir() else State(out / STATE_FILE)
        hashes = HashCache(dict(state.hashes))
        changed: set[str] = set()
        for step in wf.steps:
            rec = state.steps.get(step.name)
            up = set(_upstream(step)) & changed
            reason = ""
            if force:
                reason = "--force"
            elif rec is None:
                reason = "never run here"
            elif up:
                reason = f"{sorted(up)[0]} will run first"
            else:
                fp, _ = _fingerprint(step, wf, hashes, state.steps)
                reason = (
                    "inputs, parameters or version changed" if fp != rec.fingerprint else _intact(rec, wf)
                )
            if reason:
                changed.add(step.name)
            # the files it would write (a train step's model: where, before hours of training)
            files = tuple(_rel(i.path, out) for items in step.outputs.values() for i in items)
            emit(
                StepEvent(
                    step.name,
                    step.kind,
                    "would run" if reason else "would skip",
                    reason=reason,
                    products=files,
                )
            )
        result.seconds = time.perf_counter() - t0
        return result

    _check_owner(wf, out, force)
    out.mkdir(parents=True, exist_ok=True)
    with _locked(out):
        state = State.load(out / STATE_FILE)
        state.workflow = {"name": wf.name, "file": str(wf.path), "sha256": wf.sha256}
        hashes = HashCache(state.hashes)
        ran_any = False
        for step in wf.steps:
            fp, inputs = _fingerprint(step, wf, hashes, state.steps)
            rec = state.steps.get(step.name)
            reason = "" if force else ("never run here" if rec is None else "")
            if not force and rec is not None:
                reason = (
                    "inputs, parameters or version changed" if rec.fingerprint != fp else _intact(rec, wf)
                )
            if not force and not reason:
                assert rec is not None
                emit(
                    StepEvent(
                        step.name, step.kind, "skipped", reason="unchanged", products=_product_list(rec)
                    )
                )
                continue
            emit(StepEvent(step.name, step.kind, "start", reason=reason or "--force"))
            s0 = time.perf_counter()
            old_layers = list(rec.layers) if rec is not None else []
            rec = _run_step(wf, step, fp, inputs, hashes, state, workers, scheduler,
                            progress(step) if progress is not None else None, old_layers)  # fmt: skip
            state.steps[step.name] = rec
            state.save()  # a later failure keeps this step done
            ran_any = True
            emit(
                StepEvent(step.name, step.kind, "ran", time.perf_counter() - s0, products=_product_list(rec))
            )
        ran_any |= _drop_stale(wf, state)
        collection = out / "stac" / "collection.json"
        if ran_any or not collection.exists():
            _write_stac(wf, state)
        result.collection = collection if collection.exists() else None
        hashes.prune(_live_paths(wf, state))
        state.save()
    result.products = products(wf, state)
    result.seconds = time.perf_counter() - t0
    return result


def _check_owner(wf: Workflow, out: Path, force: bool) -> None:
    """One workflow per output folder: another's state would be forgotten step by step."""
    if force or not (out / STATE_FILE).is_file():
        return
    owner = State.load(out / STATE_FILE).workflow.get("name")
    if owner and owner != wf.name:
        raise OutputError(
            f"holds the products of workflow {owner!r}, not {wf.name!r}; give each workflow its own "
            "--out-dir (or --force to take the folder over)",
            out,
        )


def _product_list(rec: StepRecord) -> tuple[str, ...]:
    out = [d["path"] for items in rec.outputs.values() for d in items]
    return tuple(out) + tuple(f"layer {layer}" for layer in rec.layers)


def _live_paths(wf: Workflow, state: State) -> set[str]:
    keep: set[str] = {str(wf.gpkg.absolute())}
    for step in wf.steps:
        for items in _input_items(step).values():
            for i in items:
                keep.update(str(f.absolute()) for f in i.files())
        for outs in step.outputs.values():
            keep.update(str(i.path.absolute()) for i in outs)
        rec = state.steps.get(step.name)
        if rec is not None:
            keep.update(str((wf.out_dir / rel).absolute()) for rel in rec.files)
    return keep


def _run_step(
    wf: Workflow,
    step: Step,
    fingerprint: str,
    inputs: list[dict[str, str]],
    hashes: HashCache,
    state: State,
    workers: int | None,
    scheduler: str | None,
    progress: Progress | None,
    old_layers: list[str],
) -> StepRecord:
    """Run one step in its staging folder; move its files into place; merge its layers."""
    t0 = time.perf_counter()
    staging = wf.out_dir / WORK_DIR / "staging" / step.name
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    prov: dict[str, Any] = {
        "workflow": wf.name,
        "workflow_file": str(wf.path),
        "step": step.name,
        "kind": step.kind,
        "geoseg_version": __version__,
        "params": {k: v for k, v in step.params.items() if not k.startswith("_")},
        "inputs": [{"role": d["role"], "path": d["path"], "sha256": d["sha256"]} for d in inputs],
    }
    model_refs = [r for k, refs in step.refs.items() if k == "model" or k.endswith(".model") for r in refs]
    if model_refs:
        m = model_refs[0]
        path = m.items[0].path
        prov["model"] = {"name": m.entry or path.stem, "path": str(path), "sha256": hashes.sha256(path)}
    ctx = Context(
        wf, step, staging, _input_items(step), hashes, state.steps, workers, scheduler, progress, prov
    )
    from geoseg.raster import move_raster

    try:
        outcome = kind_of(step.kind).run(ctx)
        # Every file first (a failed rename leaves the step unrecorded: it reruns next time).
        for items in step.outputs.values():
            for i in items:
                if kind_of(step.kind).in_place:
                    continue
                src = ctx.staged(i.path)
                if not src.exists():
                    continue
                i.path.parent.mkdir(parents=True, exist_ok=True)
                if src.is_dir():
                    shutil.rmtree(i.path, ignore_errors=True)
                    os.replace(src, i.path)
                else:
                    move_raster(src, i.path)  # a raster's legend sidecars go with it
        layers: dict[str, int] = {}
        if outcome.gpkg is not None or old_layers:
            from geoseg.vector import LayerCopy, merge_layers

            copies = [
                LayerCopy(outcome.gpkg, src, dst, {**prov, "layer": dst}, outcome.styles.get(src))
                for src, dst in step.layers.items()
                if outcome.gpkg is not None and src in outcome.layer_counts
            ]
            keep = {c.name for c in copies}
            layers = merge_layers(
                wf.gpkg, copies, _gpkg_provenance(wf, state, step, keep),
                remove=[name for name in old_layers if name not in keep],
            )  # fmt: skip
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        with contextlib.suppress(OSError):
            staging.parent.rmdir()  # only when no other step's staging is there
    outputs: dict[str, list[dict[str, Any]]] = {}
    files: dict[str, dict[str, Any]] = {}
    for name, items in step.outputs.items():
        recs = []
        for i in items:
            if not i.path.exists():
                continue
            digest = hashes.sha256(i.path)
            rel = _rel(i.path, wf.out_dir)
            recs.append({"path": rel, "key": i.key, "date": i.date, "sha256": digest})
            targets = [i.path] if i.path.is_file() else sorted(p for p in i.path.rglob("*") if p.is_file())
            for f in targets:
                st = f.stat()
                files[_rel(f, wf.out_dir)] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
        if recs:
            outputs[name] = recs
    return StepRecord(
        step.kind, fingerprint, datetime.now(timezone.utc).isoformat(timespec="seconds"),
        round(time.perf_counter() - t0, 2), outputs, files, layers, prov, outcome.summary,
    )  # fmt: skip


def _rel(path: Path, base: Path) -> str:
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return str(path)


def _gpkg_provenance(wf: Workflow, state: State, current: Step, current_layers: set[str]) -> dict[str, Any]:
    layers = {name: rec.layers for name, rec in state.steps.items() if name != current.name and rec.layers}
    layers[current.name] = {name: 0 for name in sorted(current_layers)}
    return {
        "workflow": wf.name,
        "workflow_file": str(wf.path),
        "workflow_sha256": wf.sha256,
        "geoseg_version": __version__,
        "steps": {name: sorted(v) for name, v in layers.items()},
    }


def _drop_stale(wf: Workflow, state: State) -> bool:
    """Forget steps no longer in the workflow and drop their layers from the GeoPackage."""
    names = {s.name for s in wf.steps}
    stale = [n for n in state.steps if n not in names]
    layers = [layer for n in stale for layer in state.steps[n].layers]
    if layers and wf.gpkg.exists():
        from geoseg.vector import merge_layers

        merge_layers(wf.gpkg, [], None, remove=layers)
    for n in stale:
        del state.steps[n]
    return bool(stale)


def products(wf: Workflow, state: State) -> dict[str, Path]:
    """Label -> path of every product of the run, in step order (for printing)."""
    out: dict[str, Path] = {}
    for step in wf.steps:
        rec = state.steps.get(step.name)
        if rec is None:
            continue
        for name, items in rec.outputs.items():
            for d in items:
                label = step.name if name == step.main else f"{step.name}.{name}"
                if d.get("key") and len(items) > 1:
                    label += f"@{d['key']}"
                p = Path(d["path"])
                out[label] = p if p.is_absolute() else wf.out_dir / p
    if wf.gpkg.exists():
        out["geopackage"] = wf.gpkg
    stac = wf.out_dir / "stac" / "collection.json"
    if stac.exists():
        out["stac"] = stac
    return out


def _write_stac(wf: Workflow, state: State) -> None:
    from geoseg.products import Product, write_stac

    prods: list[Product] = []
    ids: dict[str, str] = {}  # absolute path -> item id
    models = _model_products(wf, state)  # sha256 -> the model's Product
    for step in wf.steps:
        rec = state.steps.get(step.name)
        if rec is None:
            continue
        for name, items in rec.outputs.items():
            kind = kind_of(step.kind).output_kinds.get(name)
            if kind in (None, "folder", "model"):
                continue
            for d in items:
                path = wf.out_dir / d["path"]
                if not path.is_file():
                    continue
                item_id = slug("-".join(x for x in (step.name, None if name == step.main else name,
                                                      d.get("key") if len(items) > 1 else None) if x))  # fmt: skip
                ids[str(path.absolute())] = item_id
                prov = dict(rec.provenance)
                date_range = None
                if step.kind in ("change", "track"):
                    dates = [x["date"] for x in rec.summary.get("input_dates", []) if x.get("date")]
                    if len(dates) >= 2:
                        date_range = (dates[0], dates[-1])
                title = f"{step.name}: {name}" + (f" {d['key']}" if d.get("key") and len(items) > 1 else "")
                prods.append(Product(path, item_id, title, kind, prov, date=d.get("date"), date_range=date_range,
                                     sha256=d.get("sha256")))  # fmt: skip
    # A product links to the model that made it, and to those that made what it was made
    # from (polygons of a predicted map, change between two): products come in step order,
    # so its sources' models are known when it is reached.
    made_by: dict[str, set[str]] = {}  # item id -> model item ids
    for p in prods:
        sources = sorted({ids[i["path"]] for i in p.provenance.get("inputs", []) if i["path"] in ids})
        model = models.get(str((p.provenance.get("model") or {}).get("sha256")))
        made_by[p.item_id] = {model.item_id} if model is not None else set()
        for src in sources:
            made_by[p.item_id] |= made_by.get(src, set())
        p.derived_from = sources + sorted(made_by[p.item_id] - set(sources))
    prods.extend(models.values())
    if wf.gpkg.exists():
        import pyogrio

        from geoseg.vector import list_layers

        layers = {
            name: int(pyogrio.read_info(str(wf.gpkg), layer=name)["features"])
            for name in list_layers(wf.gpkg)
        }
        hashes = HashCache(state.hashes)
        from geoseg.temporal import parse_date

        dates = sorted(
            {d for p in prods for d in (p.date, *(p.date_range or ())) if d}, key=lambda d: parse_date(d)
        )
        prods.append(
            Product(
                wf.gpkg, slug(f"{wf.name}-gpkg"), f"{wf.name}: every vector layer and table", "vector",
                {"workflow": wf.name, "workflow_sha256": wf.sha256, "geoseg_version": __version__},
                date=dates[0] if len(dates) == 1 else None,
                date_range=(dates[0], dates[-1]) if len(dates) > 1 else None,
                sha256=hashes.sha256(wf.gpkg), layers=layers,
                derived_from=sorted({ids[i["path"]] for rec in state.steps.values() if rec.layers
                                     for i in rec.provenance.get("inputs", []) if i["path"] in ids}),
            )
        )  # fmt: skip
        gpkg = prods[-1]
        gpkg.derived_from += sorted(set[str]().union(*(made_by.get(s, set()) for s in gpkg.derived_from)))
    write_stac(
        prods, wf.out_dir / "stac", slug(wf.name), wf.description or f"products of the geoseg workflow {wf.name}",
        title=wf.name, provenance={"workflow_file": str(wf.path), "workflow_sha256": wf.sha256,
                                   "geoseg_version": __version__},
    )  # fmt: skip


def _model_products(wf: Workflow, state: State) -> dict[str, Any]:
    """One MLM Item per checkpoint the workflow's steps used (``provenance.model``) or
    trained (outputs of kind ``model``), by sha256; ids ``model-<name>``."""
    from geoseg.products import Product

    found: dict[str, tuple[Path, str]] = {}  # sha256 -> (path, name)
    for step in wf.steps:
        rec = state.steps.get(step.name)
        if rec is None:
            continue
        for name, items in rec.outputs.items():
            if kind_of(step.kind).output_kinds.get(name) == "model":
                for d in items:
                    path = wf.out_dir / d["path"]
                    if path.is_file() and d.get("sha256"):
                        found.setdefault(d["sha256"], (path, path.stem))
        model = rec.provenance.get("model")
        if model and model.get("sha256") and Path(model["path"]).is_file():
            found.setdefault(
                model["sha256"], (Path(model["path"]), str(model.get("name") or Path(model["path"]).stem))
            )
    out: dict[str, Any] = {}
    taken: set[str] = set()
    for sha, (path, name) in found.items():
        item_id = slug(f"model-{name}")
        if item_id in taken:  # two checkpoints of one name (retrained): tell them apart
            item_id = slug(f"model-{name}-{sha[:8]}")
        taken.add(item_id)
        out[sha] = Product(path, item_id, f"model {name}", "model", {"name": name}, sha256=sha)
    return out
