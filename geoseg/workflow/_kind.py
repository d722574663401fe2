"""A workflow step kind, in one place: its keys (a model), its outputs, how it plans and runs.

Every kind is one module of :mod:`geoseg.workflow._kinds` that calls :func:`register` with a
:class:`Kind`; adding a kind is adding that module. A step's keys are a :class:`StepModel`
(the common ``name``/``kind``/``description`` plus the kind's own, most of them the options
model of the operation it runs, so a default is declared once for the CLI, the Python API
and the workflow). A step is checked against the model its ``kind`` names: a discriminated
union on ``kind``, dispatched by hand so that a wrong kind gets a "did you mean" and a
bad key is said as ``steps[2].tile_size``.

References to other steps, catalog entries or files are marked in the model by their type
(:data:`StepRef`, :data:`StepRefs`, :data:`ModelRef`) so the planner finds them wherever
they sit, nested lists included (``accuracy[0].map``).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from pydantic import BeforeValidator, StringConstraints, field_validator
from pydantic.fields import FieldInfo

from geoseg.options import Options, option

if TYPE_CHECKING:
    from geoseg.workflow._context import Context, Outcome
    from geoseg.workflow._plan import Planner
    from geoseg.workflow._spec import Step


class _Role:
    """Marks a field as a reference of a kind: ``ref`` (one), ``refs`` (several) or ``model``."""

    def __init__(self, role: str) -> None:
        self.role = role

    def __repr__(self) -> str:
        return f"<{self.role}>"


REF, REFS, MODEL = _Role("ref"), _Role("refs"), _Role("model")


def _one_or_more(value: Any) -> Any:
    # not split at commas: a reference may be a path, and paths may hold commas
    if isinstance(value, str):
        return (value,)
    return tuple(value) if isinstance(value, list) else value


_Text = Annotated[str, StringConstraints(min_length=1, strip_whitespace=True)]
#: an earlier step's output (``STEP``, ``STEP.OUTPUT``, ``STEP@KEY``), a catalog entry or a path
StepRef = Annotated[_Text, REF]
#: one reference or a list of them
StepRefs = Annotated[tuple[_Text, ...], BeforeValidator(_one_or_more), REFS]
#: a train step, a catalog model or a checkpoint path
ModelRef = Annotated[_Text, MODEL]


def role_of(info: FieldInfo) -> str | None:
    """``ref``, ``refs`` or ``model`` when a field's type marks it as a reference."""
    # pydantic keeps a field's own Annotated metadata in ``metadata``; ``X | None`` keeps
    # it inside the annotation
    candidates = [
        *info.metadata,
        *(m for a in getattr(info.annotation, "__args__", ()) for m in getattr(a, "__metadata__", ())),
    ]
    for meta in candidates:
        if isinstance(meta, _Role):
            return meta.role
    return None


class StepModel(Options):
    """The keys every step has; a kind's model adds its own."""

    what = "step"
    #: the order of the keys in the step's record (its provenance and STAC items): the
    #: kind's own keys first, as documented, whatever the order the models declare them in
    key_order: ClassVar[tuple[str, ...]] = ()

    name: str = option(..., "the step's name: how later steps refer to its outputs")
    kind: str = option(..., "what the step does")
    description: str = option("", "What the step is for (shown in the report).")

    @field_validator("name")
    @classmethod
    def _names_files(cls, v: str) -> str:
        if not v.replace("-", "_").isidentifier():
            raise ValueError(f"must be letters, digits, - and _ (it names files and layers), got {v!r}")
        return v

    def params(self) -> dict[str, Any]:
        """The step's parameters as its record and provenance keep them: every key (defaults
        filled in) but ``name`` and ``kind``, under its name in the file (``from``)."""
        values = self.model_dump(mode="json", by_alias=True, exclude={"name", "kind"})
        own = [f.alias or n for n, f in type(self).model_fields.items() if n in type(self).__annotations__]
        first = ["description", *(self.key_order or own)]
        return {k: values[k] for k in dict.fromkeys([*first, *values]) if k in values}


@dataclass(frozen=True)
class Kind:
    """What makes a step kind: see the module doc."""

    name: str
    model: type[StepModel]
    #: plans a validated step: resolves its references' outputs and its own output paths
    plan: Callable[[Planner, Step, StepModel, str], Step]
    #: runs a planned step in its staging folder
    run: Callable[[Context], Outcome]
    #: output names; the first is what a bare ``STEP`` reference means
    outputs: tuple[str, ...] = ()
    #: what each output is (image, truth, classmap, change, loss_year, model, folder), for
    #: checking references and for STAC
    output_kinds: Mapping[str, str] = field(default_factory=dict)
    #: a step that reads the whole workflow (the report): its fingerprint includes its name
    #: and GeoPackage
    whole_workflow: bool = False
    #: writes its output at its own path, not through the staging folder (a model file)
    in_place: bool = False


_REGISTRY: dict[str, Kind] = {}
_FOUND: list[bool] = []  # the kinds' modules were imported (some may have been before)


def register(kind: Kind) -> Kind:
    """Add a kind (each module of :mod:`geoseg.workflow._kinds` calls this once)."""
    _REGISTRY[kind.name] = kind
    return kind


def kinds() -> dict[str, Kind]:
    """Every kind, by name, in the order they are documented."""
    if not _FOUND:
        from geoseg.workflow import _kinds

        for info in sorted(pkgutil.iter_modules(_kinds.__path__), key=lambda m: m.name):
            importlib.import_module(f"{_kinds.__name__}.{info.name}")
        _FOUND.append(True)
    order = ("synthetic", "predict", "vectorize", "change", "track", "train", "report")
    return dict(
        sorted(_REGISTRY.items(), key=lambda kv: (order.index(kv[0]) if kv[0] in order else 99, kv[0]))
    )


def kind_of(name: str) -> Kind:
    """The kind called ``name`` (KeyError when there is none)."""
    return kinds()[name]
