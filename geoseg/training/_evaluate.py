"""Evaluation: a checkpoint scored on a catalog label set's split, through the predict path.

:class:`EvaluateOptions` declares the options once (default, range, help): ``geoseg
evaluate`` builds its flags from it, :func:`evaluate` checks its keywords through it, and a
workflow step can take the same keys.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any, ClassVar

from geoseg.errors import ConfigError
from geoseg.options import Options, option
from geoseg.training._config import TrainConfig, Zoom
from geoseg.training._data import load_labelset
from geoseg.training._trainer import Trainer, paper_metric


class EvaluateOptions(Options):
    """How a model is scored (the model and the label set are the call's own arguments)."""

    what: ClassVar[str] = "evaluate"

    split: str = option("validation", "The label set's split to score on.")
    tta: bool = option(False, "Score the mean over the 8 rotations/flips of each image.")
    zoom: Zoom | None = option(
        None, "Resample each image by this factor for the model [default: the model's own]."
    )
    threads: int | None = option(None, "CPU threads for the model [default: torch's].", ge=1)


def evaluate(
    model: str | os.PathLike[str],
    dataset: str,
    split: str | None = None,
    *,
    options: EvaluateOptions | None = None,
    **keywords: Any,
) -> dict[str, Any]:
    """Score a checkpoint on a catalog label set's split: pooled metrics (+ the paper's).

    Parameters
    ----------
    model
        A checkpoint file or a catalog model name.
    dataset
        A label set of the catalog.
    split
        The split to score on (``validation`` by default); the same as ``split=``.
    options
        The options as one :class:`EvaluateOptions`; keywords given too override its values.
    **keywords
        The fields of :class:`EvaluateOptions`: ``split``, ``tta`` (the mean over the 8
        rotations/flips, as ``predict --tta``), ``zoom`` (overrides the checkpoint's, as
        ``predict --zoom``), ``threads``. A bad or unknown one is a ``ConfigError`` naming it.

    Returns
    -------
    dict
        ``model``, ``sha256``, ``dataset``, ``split``, ``tta``, ``zoom``, the pooled scores,
        ``table`` (printable) and, for ``amazon-s2-rgb``, ``paper`` (the published metric).
    """
    import torch

    from geoseg.inference import load_checkpoint

    if split is not None:
        keywords["split"] = split
    if options is None:
        opts = EvaluateOptions.build(keywords)
    else:
        opts = options.replace(**keywords) if keywords else options
    if opts.threads:
        torch.set_num_threads(opts.threads)
    loaded = load_checkpoint(model)
    spec = loaded.spec if opts.zoom is None else replace(loaded.spec, zoom=opts.zoom)
    # the label set is read as training reads its validation split (same bands, same masks)
    cfg = TrainConfig.build(
        {
            "out": "-",
            "dataset": dataset,
            "split_train": opts.split,
            "split_val": opts.split,
            "bands": spec.bands,
        }
    )
    data = load_labelset(dataset, cfg)
    if len(data.classes) != spec.n_classes:
        raise ConfigError(
            f"{loaded.path.name} predicts {spec.n_classes} classes but {dataset} has {len(data.classes)}"
        )
    if len(data.bands) != len(spec.bands):
        raise ConfigError(
            f"{loaded.path.name} expects {len(spec.bands)} bands but {dataset} has {len(data.bands)}"
        )
    trainer = Trainer.__new__(Trainer)  # its validation methods only: no statistics to compute
    trainer.cfg, trainer.data = cfg, data
    per_tile = trainer.tile_confusions(loaded.module, spec, opts.tta)
    scores = trainer.scores(per_tile)
    out: dict[str, Any] = {
        "model": str(loaded.path),
        "sha256": loaded.sha256,
        "dataset": dataset,
        "split": opts.split,
        "tta": opts.tta,
        "zoom": spec.zoom,
    }
    out.update(scores.as_dict())
    out["table"] = scores.table()
    if dataset == "amazon-s2-rgb":
        out["paper"] = paper_metric(per_tile)
    return out
