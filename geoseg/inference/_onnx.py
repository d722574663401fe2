"""The ONNX export of a checkpoint (checked against the torch model), kept in the ONNX cache, and ONNX Runtime sessions."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from geoseg.errors import BackendWarning, ExportError, first_line
from geoseg.inference._model import LoadedModel
from geoseg.inference._onnxcache import cache_folder, claim, export_lock, trim_cache

log = logging.getLogger(__name__)

OPSET = 17

#: The size an export is traced at, and the one it is checked at: another size, not
#: square, two images, so a graph that kept the traced shape somewhere is caught.
TRACE_SIZE = (256, 256)
CHECK_SHAPE = (2, 320, 384)

#: How far the export's scores may be from the torch model's: float32 rounding in a
#: different order (measured: at most 3e-5 on every architecture untrained, 8e-5 on
#: forest-s2-rgb, whose scores reach tens).
CHECK_RTOL = 1e-3


def onnx_cache_path(model: LoadedModel) -> Path:
    """Where the ONNX export of a checkpoint is cached (keyed by the checkpoint's hash)."""
    return cache_folder() / f"{model.sha256[:20]}.onnx"


def export_onnx(model: LoadedModel, out: str | os.PathLike[str], opset: int = OPSET) -> Path:
    """Export a checkpoint's model to ONNX with dynamic batch, height and width.

    The export is checked before it is kept: ONNX Runtime's scores for a batch of another
    size than the traced one must be the torch model's (to float rounding).

    Parameters
    ----------
    model
        The loaded checkpoint (with its torch module).
    out
        The ``.onnx`` file to write (whole or not at all).
    opset
        The ONNX opset.

    Returns
    -------
    Path
        ``out``.

    Raises
    ------
    ExportError
        The model cannot be exported, or its export computes something else.
    """
    import torch

    from geoseg.files import atomic_output

    module = model.module.cpu().eval()
    dummy = torch.zeros(1, len(model.spec.bands), *TRACE_SIZE)
    out_path = Path(out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    what = f"{model.path.name} ({model.spec.arch}/{model.spec.encoder})"
    with atomic_output(out_path) as tmp:
        try:
            # the tracer's warnings (shape arithmetic it cannot follow) are what the check
            # below tests for real; a user sees one line if it fails, not a page of them
            with warnings.catch_warnings(), _TraceablePooling(), _output_held():
                warnings.simplefilter("ignore")
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
        except Exception as exc:  # torch raises a dozen kinds, with the whole graph in the text
            raise ExportError(f"{what} cannot be exported to ONNX ({first_line(exc)[:200]})") from exc
        _check_export(tmp, module, len(model.spec.bands), what)
    return out_path


#: What torch's exporter prints before it raises: the whole traced graph, 100s of lines.
_GRAPH_DUMP = b"Torch IR graph at exception"


@contextmanager
def _output_held() -> Iterator[None]:
    """Hold back what is written to file descriptors 1 and 2 meanwhile; give it back
    after, less the graph dump of a failed export.

    torch's TorchScript exporter always enables its C++ log while exporting (it tests the
    function ``_jit_is_onnx_log_enabled`` for truth instead of calling it; seen in torch 2.13)
    and, when an export fails, prints the whole traced graph to the C++ ``std::cout``
    before it raises. The error's first line says what failed; the dump would bury it (and
    a command's own output). Only file descriptors catch C++ output, so 1 and 2 point at
    temporary files while the export runs; anything else written meanwhile (by another
    thread) is written out after it.
    """
    with contextlib.ExitStack() as stack:
        held: list[tuple[int, int, Any]] = []
        for fd, stream in ((1, sys.stdout), (2, sys.stderr)):
            try:
                stream.flush()
                saved = os.dup(fd)
            except (OSError, ValueError, AttributeError):  # none to hold (a daemon's closed one)
                continue
            tmp = stack.enter_context(tempfile.TemporaryFile())
            os.dup2(tmp.fileno(), fd)
            held.append((fd, saved, tmp))
        failed = False
        try:
            yield
        except BaseException:
            failed = True
            raise
        finally:
            for fd, saved, tmp in held:
                stream = sys.stdout if fd == 1 else sys.stderr
                with contextlib.suppress(OSError, ValueError, AttributeError):
                    stream.flush()
                os.dup2(saved, fd)
                os.close(saved)
                tmp.seek(0)
                text = tmp.read()
                cut = text.find(_GRAPH_DUMP) if failed else -1
                if cut >= 0:
                    log.debug("torch's export log: %s", text[cut:].decode(errors="replace"))
                    text = text[:cut]
                view = memoryview(text)
                while view:  # os.write may take part of it
                    view = view[os.write(fd, view) :]


def _check_export(path: Path, module: Any, bands: int, what: str) -> None:
    import numpy as np
    import onnxruntime as ort
    import torch

    n, h, w = CHECK_SHAPE
    x = np.random.default_rng(0).standard_normal((n, bands, h, w)).astype(np.float32)
    with torch.inference_mode():
        want = module(torch.from_numpy(x)).float().numpy()
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    try:
        got = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"]).run(
            None, {"input": x}
        )[0]
    except Exception as exc:  # ORT's own errors (a node it cannot run at this size)
        raise ExportError(
            f"the ONNX export of {what} fails at {w} x {h} px ({first_line(exc)[:200]})"
        ) from exc
    if got.shape != want.shape:
        raise ExportError(f"the ONNX export of {what} gives scores of shape {got.shape}, not {want.shape}")
    diff = float(np.abs(got - want).max())
    if not diff <= CHECK_RTOL * max(1.0, float(np.abs(want).max())):
        raise ExportError(
            f"the ONNX export of {what} computes other scores than the model at {w} x {h} px "
            f"(max difference {diff:.3g})"
        )


class _TraceablePooling:
    """Adaptive average pooling that an ONNX graph computes for any input size, while exporting.

    PSPNet's pyramid and UPerNet's pool their features to 1, 2, 3 and 6 bins.
    ``adaptive_avg_pool2d`` has no ONNX operator: the exporter writes a plain average pool
    whose kernel it works out from the traced size, and refuses when the size is dynamic
    ("input size not accessible"), as here, where every tile size shares one graph. PSPNet
    pools with ``interpolate(mode="area")`` while exporting, which is the same operator.
    The bins are simple to write for any size: bin i of n covers rows floor(i * n / k) to
    ceil((i + 1) * n / k), the rule of torch's own kernel, so each is a slice whose bounds
    the graph computes from the input's shape, averaged. The same numbers as the operator
    (to float rounding), and the export is checked against the torch model anyway.

    A torch function mode, not a patched module: it changes only what this thread traces
    inside the ``with``, for every model (smp's own modules, timm encoders), and leaves
    global pooling (one bin: ONNX's GlobalAveragePool, size-free already) as it is.
    """

    def __enter__(self) -> _TraceablePooling:
        from torch.overrides import TorchFunctionMode

        class Mode(TorchFunctionMode):
            def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
                kwargs = kwargs or {}
                size = _pooled_size(func, args, kwargs)
                if size is not None:
                    return adaptive_avg_pool2d_traceable(args[0], size)
                return func(*args, **kwargs)

        self._mode = Mode()
        self._mode.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._mode.__exit__(*exc)


def _pooled_size(func: Any, args: Sequence[Any], kwargs: dict[str, Any]) -> Sequence[int | None] | None:
    """The output size of an adaptive 2-D average pooling call of more than one bin, else None."""
    import torch
    import torch.nn.functional as F

    def arg(i: int, name: str) -> Any:
        return args[i] if len(args) > i else kwargs.get(name)

    if func in (F.adaptive_avg_pool2d, torch._C._nn.adaptive_avg_pool2d):
        size = arg(1, "output_size")
    elif func is F.interpolate and arg(3, "mode") == "area" and arg(0, "input").dim() == 4:
        size = arg(1, "size")
    else:
        return None
    if size is None:
        return None
    pair = (size, size) if isinstance(size, int) else tuple(size)
    return None if all(s == 1 for s in pair) else pair


def adaptive_avg_pool2d_traceable(x: Any, size: Sequence[int | None]) -> Any:
    """``F.adaptive_avg_pool2d(x, size)`` as slices and means that trace for any input size.

    Parameters
    ----------
    x
        A ``(n, c, h, w)`` tensor.
    size
        The output ``(height, width)``; None keeps that axis's size.

    Returns
    -------
    torch.Tensor
        The pooled ``(n, c, *size)`` tensor.
    """
    kh, kw = (x.shape[2 + d] if s is None else s for d, s in enumerate(size))
    return _bin_means(_bin_means(x, kh, 2), kw, 3)  # a rectangle's mean: of its rows' means


def _bin_means(x: Any, k: int, dim: int) -> Any:
    import torch

    if not isinstance(k, int):  # None above on a traced size: the axis stays as it is
        return x
    n = x.shape[dim]  # a traced value while exporting, so the bounds follow the input
    means = []
    for i in range(k):
        start = (i * n) // k
        end = ((i + 1) * n + k - 1) // k
        means.append(x.narrow(dim, start, end - start).mean(dim, keepdim=True))
    return torch.cat(means, dim)


_EXPORTING = threading.Lock()  # predict() calls of one process at once (a workflow's maps) export once
_FAILED: dict[str, str] = {}  # checkpoint sha256 -> why its export failed, in this process


def ensure_export(model: LoadedModel) -> Path:
    """The checkpoint's export in the ONNX cache, claimed for use; exported now if missing.

    ``model`` may be a record without its torch module: it is loaded only when there is
    something to export. After an export the cache is trimmed to its cap.

    Raises
    ------
    ExportError
        The model cannot be exported (or the cache not written).
    """
    path = onnx_cache_path(model)
    if model.sha256 in _FAILED:
        raise ExportError(_FAILED[model.sha256])
    with _EXPORTING:
        if claim(path):
            return path
        try:
            with export_lock():
                if claim(path):  # another process exported it while this one waited
                    return path
                if model.module is None:
                    from geoseg.inference._model import load_checkpoint

                    model = load_checkpoint(model.path)
                log.info("exporting %s to ONNX at %s", model.path, path)
                export_onnx(model, path)
        except ExportError as exc:
            _FAILED[model.sha256] = str(exc)
            raise
        except OSError as exc:
            raise ExportError(
                f"cannot keep the ONNX export of {model.path.name} in {path.parent} ({exc.strerror or exc})"
            ) from exc
    trim_cache()
    return path


def onnx_or_torch(model: LoadedModel, asked: str) -> str:
    """``"onnx"`` once the checkpoint's export is in the cache, else ``"torch"``.

    ``asked`` is the backend the caller chose: with ``auto`` a model that cannot be
    exported runs on torch, with one ``BackendWarning`` saying why; with ``onnx`` it is
    an ``ExportError``.
    """
    try:
        ensure_export(model)
        return "onnx"
    except ExportError as exc:
        if asked == "onnx":
            raise ExportError(f"{exc}; use --backend torch (or auto) to run it with torch") from exc
        warnings.warn(f"{exc}; predicting with torch instead", BackendWarning, stacklevel=2)
        return "torch"


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

    path = ensure_export(model)  # claimed: no other process evicts it while this one opens it
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
    else:
        trim_cache()  # the cache grew
    return session
