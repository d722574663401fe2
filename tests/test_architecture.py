"""geoseg's import graph: packages follow the data flow, no cycles, no reaching into private modules.

Every import in every module counts, those inside functions too (they hide cycles as well
as any other); only ``if TYPE_CHECKING:`` blocks are left out (they never run). The
checks:

- no import cycle among geoseg's modules;
- no module imports another package's private module (``geoseg.raster._read``) or
  private name (``from geoseg.vector import _x``): packages meet at their faces;
- imports run one way, down the data flow: core modules, then raster, data, inference,
  vector, temporal, training, products, the use cases (``geoseg.api``), workflow, cli;
  computations never import the report and plot code (``geoseg.products``);
- no module is over 600 lines.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "geoseg"
#: packages (and the use-case module) from the bottom of the data flow to the top
LAYERS = [
    "raster",
    "data",
    "inference",
    "vector",
    "temporal",
    "training",
    "products",
    "api",
    "workflow",
    "cli",
]
MAX_LINES = 600


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node but those under ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            stack.extend(node.orelse)
            continue
        yield node
        stack.extend(ast.iter_child_nodes(node))


def imports(name: str) -> list[tuple[str, list[str], int]]:
    """``(module imported, names taken from it, line)`` for every runtime import of ``name``."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in _runtime_nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(a.name, [], node.lineno) for a in node.names if a.name.startswith("geoseg")]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            if base.startswith("geoseg"):
                out.append((base, [a.name for a in node.names], node.lineno))
    return out


def lazy_targets(name: str) -> set[str]:
    """The modules a package face loads on first use (its ``_LAZY`` name -> module table)."""
    for node in ast.parse(MODULES[name].read_text()).body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(node.value, ast.Dict):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == "_LAZY" for t in targets):
                return {v.value for v in node.value.values if isinstance(v, ast.Constant)}
    return set()


@functools.cache
def edges() -> dict[str, set[str]]:
    """Module -> the geoseg modules its import statements run (submodules taken by name too).

    A face's lazily loaded modules count as imported by it: ``from geoseg.inference import
    predict`` runs them. (The root package's front door is left out: it resolves names on
    attribute access, after the packages have loaded.)
    """
    graph: dict[str, set[str]] = {m: set(lazy_targets(m)) for m in MODULES}
    for m in MODULES:
        for target, names, _ in imports(m):
            submodules = [f"{target}.{n}" for n in names if f"{target}.{n}" in MODULES]
            graph[m].update(submodules)  # `from geoseg.workflow import _kinds`: that module
            if target in MODULES and (len(submodules) < len(names) or not names):
                graph[m].add(target)
    return graph


def layer(module: str) -> int | None:
    parts = module.split(".")
    if len(parts) < 2:
        return None
    return LAYERS.index(parts[1]) if parts[1] in LAYERS else -1  # -1: a core module


def package(module: str) -> str:
    """``geoseg.raster`` for its modules and its face; ``geoseg`` for the core modules."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 and parts[1] in LAYERS else "geoseg"


def test_the_graph_is_read() -> None:
    graph = edges()
    assert len(graph) > 60
    assert "geoseg.raster" in graph["geoseg.vector._vectorize"] or any(
        t.startswith("geoseg.raster") for t in graph["geoseg.vector._vectorize"]
    )
    # function-level imports count: the CLI's lazy ones are seen
    assert any(t.startswith("geoseg.inference") for t in graph["geoseg.cli.predict"])


def test_no_import_cycle() -> None:
    graph = edges()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in graph[v]:
                cycles.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_no_reaching_into_another_package() -> None:
    bad = []
    for m in MODULES:
        for target, names, line in imports(m):
            if package(target) == package(m):
                continue
            if any(p.startswith("_") and not p.startswith("__") for p in target.split(".")[1:]):
                bad.append(f"{m}:{line} imports {target}")
            bad += [
                f"{m}:{line} imports {target}.{n}"
                for n in names
                if n.startswith("_") and not n.startswith("__")
            ]
    assert not bad, "\n".join(bad)


def test_imports_run_down_the_data_flow() -> None:
    bad = []
    for m in MODULES:
        lm = layer(m)
        if lm is None:
            continue
        for target in sorted(edges()[m]):
            lt = layer(target)
            if lt is None or lt == -1 or (lm == -1 and lt == -1):
                continue
            if lm == -1:
                bad.append(f"core module {m} imports {target}")
            elif lt > lm:
                bad.append(f"{m} ({LAYERS[lm]}) imports {target} ({LAYERS[lt]}), which is above it")
    assert not bad, "\n".join(bad)


def test_computations_never_draw() -> None:
    computations = {"raster", "data", "inference", "vector", "temporal", "training"}
    bad = [
        f"{m} imports {t}"
        for m, targets in edges().items()
        if m.split(".")[1:2] and m.split(".")[1] in computations
        for t in targets
        if t.startswith("geoseg.products")
    ]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_module_size(name: str) -> None:
    lines = len(MODULES[name].read_text().splitlines())
    assert lines <= MAX_LINES, f"{MODULES[name]} has {lines} lines (at most {MAX_LINES})"
