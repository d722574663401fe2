"""A checkpoint's value domain recorded after the fact, from the data it was trained on.

Checkpoints made before geoseg recorded value domains say "domain unknown", and predict
cannot check their inputs. Their provenance holds the training config, so the domain can
be measured again from the same data, the way training measures it now, and written into
the checkpoint's header: the weights stay byte for byte the same.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from geoseg.errors import ModelError
from geoseg.inference import ValueDomain, read_spec, resolve_model_path, rewrite_spec
from geoseg.training._config import TrainConfig
from geoseg.training._data import dataset_domain, load_labelset, load_synthetic

#: the keys of a training config that say which data (and bands) it read; the rest (the
#: schedule, the model) do not change what the inputs were
_DATA_KEYS = ("dataset", "synthetic", "bands", "split_train", "split_val", "holdout")


def record_domain(model: str | os.PathLike[str], out: str | os.PathLike[str] | None = None) -> ValueDomain:
    """Measure a checkpoint's value domain from its training data and write it into it.

    Parameters
    ----------
    model
        A checkpoint path or a catalog model name; its provenance must hold its training
        config (``geoseg train`` records it).
    out
        Where to write the checkpoint with its domain (default: in place, atomically).

    Returns
    -------
    ValueDomain
        What was recorded.
    """
    path = resolve_model_path(model)
    spec = read_spec(path)
    config: dict[str, Any] = spec.provenance.get("config") or {}
    if not config.get("dataset") and not config.get("synthetic"):
        raise ModelError(
            "records no training config (dataset or synthetic scene) in its provenance: its training "
            "data cannot be read again",
            path,
        )
    cfg = TrainConfig.build(
        {**{k: config[k] for k in _DATA_KEYS if config.get(k) is not None}, "out": str(Path(out or path))}
    )
    data = load_labelset(cfg.dataset, cfg) if cfg.dataset else load_synthetic(dict(cfg.synthetic or {}))
    if list(data.bands) != list(spec.bands):
        raise ModelError(
            f"its training data now has the bands {', '.join(data.bands)}, not the checkpoint's "
            f"{', '.join(spec.bands)}: the data changed since it was trained",
            path,
        )
    domain = dataset_domain(data)
    rewrite_spec(path, replace(spec, domain=domain), out)
    return domain
