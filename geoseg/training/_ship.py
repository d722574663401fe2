"""Shipping a model: training writes into an output folder, never into the package; ``geoseg model ship`` copies a checkpoint in.

The checkpoints in ``geoseg/models/`` are what ``predict --model forest-s2-rgb`` and the
demo run, and what the catalog's sha256s and the model cards describe. A training run
that wrote there would replace one of them with whatever it made, unreviewed, so every
training output under that folder is refused; making a model shipped is this explicit
step, with a model card to fill in and the catalog entry to add.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from geoseg.data import MODELS_DIR
from geoseg.errors import ConfigError, OutputError
from geoseg.files import atomic_output, check_writable, file_sha256


def models_dir() -> Path:
    """The package's folder of shipped checkpoints (``geoseg/models``)."""
    return MODELS_DIR


def is_shipped(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` (relative to the current folder) is inside the shipped models' folder."""
    here = Path(path).expanduser().absolute().resolve()
    return here.is_relative_to(models_dir().resolve())


#: A shipped model's name: a catalog entry name and a file name at once.
NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


@dataclass
class Shipped:
    """What :func:`ship_model` wrote, and the catalog entry to add."""

    checkpoint: Path
    card: Path
    card_written: bool  # False: an existing card was kept
    sha256: str
    entry: str  # the catalog entry, YAML, for data_catalog.yaml


def ship_model(
    checkpoint: str | os.PathLike[str],
    name: str,
    into: str | os.PathLike[str] | None = None,
    replace: bool = False,
) -> Shipped:
    """Copy a trained checkpoint into the shipped models as ``NAME.safetensors``.

    Parameters
    ----------
    checkpoint
        The checkpoint to ship (a training run's output).
    name
        The model's name: its file name and catalog entry (lowercase letters, digits,
        ``.``, ``_``, ``-``).
    into
        The models folder [default: the package's ``geoseg/models``].
    replace
        Overwrite a shipped checkpoint of that name (a retrained model); otherwise that is
        refused.

    Returns
    -------
    Shipped
        The copy, its model card (a stub written when there is none), its sha256 and the
        catalog entry to add to (or update in) ``data_catalog.yaml``.
    """
    from geoseg.inference import read_spec

    if not NAME.match(name):
        raise ConfigError(
            f"model name {name!r}: use lowercase letters, digits, '.', '_' or '-' (a catalog entry name)"
        )
    source = Path(checkpoint)
    spec = read_spec(source)  # a geoseg checkpoint, or one line saying what it is instead
    folder = Path(into) if into is not None else models_dir()
    target = folder / f"{name}.safetensors"
    if target.exists() and not replace:
        raise OutputError(
            "is a shipped model already; give --replace to ship a retrained one over it", target
        )
    check_writable(target, [source])
    with atomic_output(target) as tmp:
        shutil.copyfile(source, tmp)
    sha = file_sha256(target)
    card = folder / f"{name}.md"
    written = not card.exists()
    if written:
        card.write_text(_card(name, spec, sha))
    return Shipped(target, card, written, sha, _entry(name, spec, sha))


def _card(name: str, spec: Any, sha: str) -> str:
    prov = spec.provenance
    val = prov.get("metrics", {}).get("val", {})
    paper = prov.get("metrics", {}).get("paper")
    config = prov.get("config", {})
    data = config.get("dataset") or ("a synthetic scene" if config.get("synthetic") else "?")
    if prov.get("trained"):
        training = f"{data}; {prov.get('minutes', '?')} min, geoseg {prov.get('geoseg_version', '?')}"
        scores = (
            f"accuracy {val.get('accuracy', '?')}, mIoU {val.get('miou', '?')}, kappa {val.get('kappa', '?')}"
            + (f"; paper F1 {paper.get('f1')}" if paper else "")
        )
    else:
        training = f"untrained (`geoseg model init`, seed {prov.get('seed')})"
        scores = "none (untrained)"
    lines = [
        f"# Model card: {name}",
        "",
        "<!-- A stub written by `geoseg model ship`: the numbers below are the checkpoint's own",
        "     provenance. Say what the model is for, how it was chosen and where it fails. -->",
        "",
        f"- **What:** {spec.arch} (segmentation-models-pytorch), {spec.encoder} encoder"
        + (f", {spec.kwargs}" if spec.kwargs else "")
        + ".",
        f"- **Inputs / classes:** {len(spec.bands)} bands `{', '.join(spec.bands)}`; "
        + ", ".join(f"{c.id} {c.name}" for c in spec.classes)
        + ".",
        f"- **Training:** {training}.",
        f"- **Validation:** {scores}.",
        "- **Speed:** (measure with `geoseg predict` and its defaults)",
        f"- **sha256:** `{sha}`",
        "",
    ]
    return "\n".join(lines)


def _entry(name: str, spec: Any, sha: str) -> str:
    """The catalog entry, in the style of data_catalog.yaml's shipped models."""
    bands = ", ".join(spec.bands)
    return "\n".join(
        [
            f"  - name: {name}",
            "    kind: model",
            "    description: >-",
            f"      {spec.arch}/{spec.encoder}, {len(spec.bands)} bands ({bands}), {spec.n_classes} classes"
            " (say what it maps and how it was trained)",
            "    source:",
            "      url: https://github.com/geoseg/geoseg (trained by workflows/...)",
            "      licence: MIT, as geoseg (and its training data's terms)",
            "      citation: (its training data)",
            f"    path: {name}.safetensors",
            f"    arch: {spec.arch}",
            f"    encoder: {spec.encoder}",
            f"    bands: [{bands}]",
            "    files:",
            f"      {name}.safetensors: {sha}",
        ]
    )
