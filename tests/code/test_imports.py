"""The house's import graph (issue 18): each room imports only the rooms before it, no module
imports itself back through others (no import circle, counting the imports inside functions), and
no module imports another's private names. Read from the source with ``ast``, nothing is imported.

The rooms and their order are docs/design.md's "Data flow and layout": features -> validation
(with reporting, which renders reports) -> models (artifact, scoring, building, lifecycle) ->
batch / serving / monitoring -> pipelines; simulator beside the flow (features only); harness
under the tests and the benchmarks."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from harness.commands import REPO

PACKAGES = (
    "features",
    "validation",
    "reporting",
    "models",
    "batch",
    "serving",
    "monitoring",
    "pipelines",
    "simulator",
    "harness",
)
MODELS = ("models.artifact", "models.scoring", "models.building", "models.lifecycle")
EARLIER = {
    "features": set(),
    "reporting": set(),
    "validation": {"features", "reporting"},
    "models.artifact": set(),
    "models.scoring": {"features", "validation", "models.artifact"},
    "models.building": {"features", "validation", "reporting", "models.artifact", "models.scoring"},
}
EARLIER["models.lifecycle"] = EARLIER["models.building"] | {"models.building"}
EARLIER["batch"] = EARLIER["models.lifecycle"] | {"models.lifecycle"}
EARLIER["serving"] = EARLIER["batch"]
EARLIER["monitoring"] = EARLIER["batch"] | {"batch", "serving"}
EARLIER["pipelines"] = EARLIER["monitoring"] | {"monitoring", "simulator"}
EARLIER["simulator"] = {"features"}
EARLIER["harness"] = EARLIER["monitoring"] | {"monitoring", "simulator"}


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for f in sorted((REPO / pkg).rglob("*.py")):
            name = ".".join(f.relative_to(REPO).with_suffix("").parts)
            out[name.removesuffix(".__init__")] = f
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> list[tuple[str, str | None]]:
    """(module, imported name or None) of every import in the file, inside functions too."""
    pkg = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(a.name, None) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            out += [(base, a.name) for a in node.names]
    return out


def _project_module(base: str, what: str | None) -> str | None:
    """The project module an import names (``from pkg import module`` names the module)."""
    if what and f"{base}.{what}" in MODULES:
        return f"{base}.{what}"
    while base and base not in MODULES:
        base = base.rpartition(".")[0]
    return base or None


def _graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {name: set() for name in MODULES}
    for name, path in MODULES.items():
        for base, what in _imports(name, path):
            target = _project_module(base, what)
            if target and target != name:
                edges[name].add(target)
    return edges


def room(module: str) -> str:
    if module.startswith("models."):
        return ".".join(module.split(".")[:2])
    return module.split(".")[0]


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
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
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_the_graph_reads_the_whole_house():
    """The reader finds what it should: a relative, an absolute and a function-level import."""
    edges = _graph()
    assert len(MODULES) > 80
    assert "models.scoring.scorer" in edges["models.scoring.explain"]  # top of the module
    assert "models.building.candidates" in edges["models.building.training"]
    assert "validation.report" in edges["pipelines.train"]  # imported inside main()
    assert room("models.scoring.weekly") == "models.scoring" and room("batch.spark") == "batch"


def test_no_import_circle_among_the_project_modules():
    assert _cycles(_graph()) == []


def test_the_cycle_finder_finds_a_circle():
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(edges) == [["a", "b", "c"]]


@pytest.mark.parametrize("source", sorted(EARLIER))
def test_each_room_imports_only_the_rooms_before_it(source):
    edges = _graph()
    wrong = sorted(
        (m, t)
        for m, targets in edges.items()
        if room(m) == source
        for t in targets
        if room(t) != source and room(t) not in EARLIER[source]
    )
    assert wrong == [], f"{source} may import {sorted(EARLIER[source])} only"


def test_the_models_rooms_cover_the_models_package():
    assert {room(m) for m in MODULES if m.startswith("models.")} == set(MODELS)


def test_resolve_does_not_import_the_registry():
    """Finding a model (resolve) does not depend on moving aliases (registry); the registry uses
    resolve's alias names and lookup, and both reach MLflow through store.py."""
    edges = _graph()
    assert "models.lifecycle.registry" not in edges["models.lifecycle.resolve"]
    assert "models.lifecycle.store" in edges["models.lifecycle.resolve"]


def test_no_module_imports_another_modules_private_names():
    private = sorted(
        (name, f"{base}.{what}")
        for name, path in MODULES.items()
        for base, what in _imports(name, path)
        if what
        and what.startswith("_")
        and not what.startswith("__")
        and _project_module(base, what) not in (None, name)
        and f"{base}.{what}" not in MODULES
    )
    assert private == []
