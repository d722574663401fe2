"""The ONNX export of a checkpoint, cached by its sha256 and this CPU, and ONNX Runtime sessions."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from geoseg.files import cache_dir
from geoseg.inference._model import LoadedModel

log = logging.getLogger(__name__)


def onnx_cache_path(model: LoadedModel) -> Path:
    """Where the ONNX export of a checkpoint is cached (keyed by the checkpoint's hash)."""
    return cache_dir() / "onnx" / f"{model.sha256[:20]}.onnx"


def export_onnx(model: LoadedModel, out: str | os.PathLike[str], opset: int = 17) -> Path:
    """Export a checkpoint's model to ONNX with dynamic batch, height and width."""
    import torch

    from geoseg.files import atomic_output

    module = model.module.cpu().eval()
    dummy = torch.zeros(1, len(model.spec.bands), 256, 256)
    out_path = Path(out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(out_path) as tmp:
        torch.onnx.export(
            module,
            (dummy,),
            str(tmp),
            input_names=["input"],
            output_names=["logits"],
            opset_version=opset,
            dynamic_axes={"input": {0: "n", 2: "h", 3: "w"}, "logits": {0: "n", 2: "h", 3: "w"}},
            dynamo=False,
        )
    return out_path


def cpu_fingerprint() -> str:
    """A short hash of what makes ONNX Runtime's optimised CPU graph specific to a machine.

    ORT's full optimisation lays convolutions out for this CPU's vector width (NCHWc
    blocks of 8 with AVX2, 16 with AVX-512); its saved graph is only valid where the CPU
    flags and the ORT version are the same, so a cache shared between machines (an NFS
    home) keeps one graph per fingerprint.
    """
    import hashlib
    import platform

    import onnxruntime as ort

    parts = [ort.__version__, platform.machine(), platform.processor()]
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "model name", "Features", "CPU part")):
                    parts.append(line.strip())
                if not line.strip():
                    break  # the first processor is enough
    except OSError:
        pass
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]


def _onnx_session(model: LoadedModel, device: str, threads: int | None) -> Any:
    import onnxruntime as ort

    path = onnx_cache_path(model)
    if not path.exists():
        log.info("exporting %s to ONNX at %s", model.path, path)
        export_onnx(model, path)
    opts = ort.SessionOptions()
    # No memory pattern: ORT would plan and hold one arena block per input shape it has
    # seen (a full batch and the smaller last one at least). Without it a worker peaks
    # 250-530 MB lower (tiny model / Unet-resnet18, batch 4 x 640^2) and its first batches
    # run faster; steady batches cost the same within noise (benchmarks/README.md).
    opts.enable_mem_pattern = False
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    if device.startswith("cuda"):
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
        return ort.InferenceSession(str(path), sess_options=opts, providers=providers)
    # Optimising the graph costs every worker 0.09-0.11 s per run (Unet-resnet18); the
    # optimised graph is kept per CPU fingerprint and later sessions load it as it is
    # (0.03-0.04 s; the same outputs, the same speed per batch).
    optimised = path.with_name(f"{path.stem}.{cpu_fingerprint()}.ort.onnx")
    if optimised.exists():
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        return ort.InferenceSession(str(optimised), sess_options=opts, providers=["CPUExecutionProvider"])
    partial = optimised.with_name(f"{optimised.name}.{os.getpid()}.partial")
    opts.optimized_model_filepath = str(partial)
    opts.log_severity_level = 3  # ORT warns that the saved graph is hardware specific: keyed above
    session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    try:
        os.replace(partial, optimised)  # whole or absent: workers may race to save it
    except OSError:
        log.debug("could not keep the optimised ONNX graph at %s", optimised, exc_info=True)
    return session
