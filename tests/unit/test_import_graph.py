"""The package's import graph: no cycle between its modules or its packages, and only
``churnops.orchestration`` imports Airflow.

The graph is read from the source with ``ast``, nothing is imported. Every import
statement counts, wherever it is: at module level, inside a function (a lazy import is
still a dependency, only a later one), and under ``if TYPE_CHECKING:`` (a cycle hidden
behind a type-only import is the same tangle: the two modules cannot be understood, moved
or tested apart). Relative forms (``from . import x``, ``from ..a import b``) are resolved
against the importing module's package.

An edge goes to the module the statement names: ``from churnops.a import b`` is an edge
to ``churnops.a.b`` when that is a module, else to ``churnops.a`` (its ``__init__``).
Python also runs a package's ``__init__`` before any of its submodules; that implicit
edge is NOT counted: a package ``__init__`` that re-exports its submodules would
otherwise make every package a cycle by construction. An explicit import of a package
from one of its own submodules (``from churnops.train import x`` inside
``churnops/train/model.py``) does count: that one is a real cycle.

Two levels are checked. Modules: no two modules of ``churnops`` import each other,
directly or around a loop. Packages: the same with each module folded into its top-level
part of ``churnops`` (``churnops.train.model`` -> ``churnops.train``; a top-level module
such as ``churnops.stores`` is its own node), so ``train`` -> ``evaluate`` -> ``train``
fails even when no single module loop exists.
"""

from __future__ import annotations

import ast
from collections import deque
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

import churnops

pytestmark = pytest.mark.unit

PACKAGE_DIR = Path(churnops.__file__).parent
Graph = Mapping[str, Iterable[str]]


def module_files(package_dir: Path) -> dict[str, Path]:
    """Every module of the package under ``package_dir``, by dotted name (a package by
    the name of its ``__init__``)."""
    modules = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = path.relative_to(package_dir.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def imported_names(module: str, path: Path) -> list[tuple[str, int]]:
    """Every dotted name ``module`` imports (from its source at ``path``), with the line:
    all import statements, wherever they are; relative ones made absolute. ``from a
    import b`` gives ``a.b``: a submodule, or a name defined in ``a``."""
    is_package = path.name == "__init__.py"
    package = module if is_package else module.rpartition(".")[0]
    names: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            source = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - (node.level - 1)])
                source = f"{base}.{source}" if source else base
            names += [(f"{source}.{alias.name}", node.lineno) for alias in node.names]
    return names


def import_graph(package_dir: Path) -> dict[str, dict[str, int]]:
    """``{module: {imported module of the package: first line importing it}}``: each
    imported name goes to its longest prefix that is a module of the package."""
    modules = module_files(package_dir)
    graph: dict[str, dict[str, int]] = {name: {} for name in modules}
    for module, path in modules.items():
        for name, line in imported_names(module, path):
            target = name
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != module:
                graph[module].setdefault(target, line)
    return graph


def package_graph(graph: Graph, root: str) -> dict[str, set[str]]:
    """``graph`` with each module folded into its top-level part of ``root``."""

    def part(module: str) -> str:
        return ".".join(module.split(".")[:2]) if module != root else root

    folded: dict[str, set[str]] = {part(m): set() for m in graph}
    for module, targets in graph.items():
        folded[part(module)] |= {part(t) for t in targets if part(t) != part(module)}
    return folded


def cycles(graph: Graph) -> list[list[str]]:
    """One cycle per tangle (``tangles``): the shortest loop through its first node,
    e.g. ``["a", "b", "a"]``."""
    return sorted(_shortest_loop(graph, tangle) for tangle in tangles(graph))


def tangles(graph: Graph) -> list[set[str]]:
    """The strongly connected components of more than one node (Tarjan): nodes that all
    reach each other through imports."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(components, key=min)


def _shortest_loop(graph: Graph, component: set[str]) -> list[str]:
    start = min(component)
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for target in sorted(graph.get(node, ())):
            if target == start:
                path = [node]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                return [*reversed(path), start]
            if target in component and target not in came_from:
                came_from[target] = node
                queue.append(target)
    raise AssertionError(f"no loop through {start} in {sorted(component)}")


def airflow_imports(package_dir: Path, allowed: str) -> list[str]:
    """``module:line imports name`` for every Airflow import outside ``allowed``."""
    found = []
    for module, path in module_files(package_dir).items():
        if module == allowed or module.startswith(f"{allowed}."):
            continue
        for name, line in imported_names(module, path):
            if name.split(".")[0] == "airflow":
                found.append(f"{module}:{line} imports {name}")
    return sorted(set(found))


def _describe(graph: Mapping[str, Iterable[str]]) -> str:
    """Each tangle's members, and one loop through it with the line of each import."""
    lines = []
    for tangle in tangles(graph):
        loop = _shortest_loop(graph, tangle)
        lines.append(f"{len(tangle)} import each other: {', '.join(sorted(tangle))}")
        lines.append("  for one: " + " -> ".join(loop))
        for a, b in zip(loop, loop[1:], strict=False):
            where = graph[a]
            line = f" (line {where[b]})" if isinstance(where, Mapping) else ""
            lines.append(f"    {a} imports {b}{line}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------ churnops
def test_no_module_of_churnops_imports_itself_around_a_loop() -> None:
    graph = import_graph(PACKAGE_DIR)
    assert len(graph) > 50, "the package's modules were not found"
    assert not cycles(graph), "import cycles between modules:\n" + _describe(graph)


def test_no_package_of_churnops_imports_itself_around_a_loop() -> None:
    packages = package_graph(import_graph(PACKAGE_DIR), "churnops")
    assert not cycles(packages), "import cycles between packages:\n" + _describe(packages)


def test_the_layers_the_issue_untangled_point_one_way() -> None:
    """train <- evaluate <- registry <- retrain, and ingest's loader never imports bulk:
    the cycles issue 13 named, held apart by name (the loop tests would catch them too)."""
    packages = package_graph(import_graph(PACKAGE_DIR), "churnops")
    assert "churnops.train" in packages["churnops.evaluate"]
    assert (
        not {"churnops.evaluate", "churnops.registry", "churnops.retrain"}
        & packages["churnops.train"]
    )
    assert not {"churnops.registry", "churnops.retrain"} & packages["churnops.evaluate"]
    modules = import_graph(PACKAGE_DIR)
    assert "churnops.ingest.loader" in modules["churnops.ingest.bulk"]
    assert "churnops.ingest.bulk" not in modules["churnops.ingest.loader"]


def test_only_orchestration_imports_airflow() -> None:
    found = airflow_imports(PACKAGE_DIR, "churnops.orchestration")
    assert not found, "Airflow imported outside churnops.orchestration:\n" + "\n".join(found)
    assert any(
        name.split(".")[0] == "airflow"
        for module, path in module_files(PACKAGE_DIR).items()
        if module.startswith("churnops.orchestration.")
        for name, _ in imported_names(module, path)
    ), "no Airflow import found at all: the check reads the wrong files"


# ------------------------------------------------------------------ self-checks, synthetic
def test_cycles_finds_each_loop_and_nothing_in_a_dag() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": {"a"}, "x": {"y"}, "y": {"x", "a"}}) == [
        ["a", "b", "a"],
        ["x", "y", "x"],
    ]
    # The shortest loop through the component's first node, not the first one walked.
    assert cycles({"a": {"b", "c"}, "b": {"c"}, "c": {"a"}}) == [["a", "c", "a"]]


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "pkg"


def test_the_graph_sees_every_form_of_import(tmp_path: Path) -> None:
    package = _write(
        tmp_path,
        {
            "pkg/__init__.py": "from pkg.a import thing\n",
            "pkg/a.py": "import os\nimport pkg.sub.deep\n\ndef f():\n    from . import b\n",
            "pkg/b.py": (
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n    from pkg.sub import deep\n"
                "from pkg import c\n"
            ),
            "pkg/c.py": "from pkg.sub.deep import VALUE\n",
            "pkg/sub/__init__.py": "from .deep import VALUE\n",
            "pkg/sub/deep.py": "from ..c import x\nVALUE = 1\n",
            "pkg/flow/__init__.py": "",
            "pkg/flow/run.py": "def f():\n    import airflow.sdk\n",
            "pkg/flow/other.py": "from .. import a\n",
        },
    )
    graph = import_graph(package)
    assert {m: set(t) for m, t in graph.items()} == {
        "pkg": {"pkg.a"},
        "pkg.a": {"pkg.sub.deep", "pkg.b"},  # `import os` is not the package's
        "pkg.b": {"pkg.sub.deep", "pkg.c"},  # TYPE_CHECKING counts; `from pkg import c`
        "pkg.c": {"pkg.sub.deep"},
        "pkg.sub": {"pkg.sub.deep"},  # the re-export
        "pkg.sub.deep": {"pkg.c"},  # `from ..c import x`
        "pkg.flow": set(),
        "pkg.flow.run": set(),
        "pkg.flow.other": {"pkg.a"},  # `from .. import a`
    }
    # The implicit edge pkg.sub.deep -> pkg.sub (its package runs first) is not counted,
    # or the re-export in pkg/sub/__init__.py would be a loop.
    assert cycles(graph) == [["pkg.c", "pkg.sub.deep", "pkg.c"]]
    assert cycles(package_graph(graph, "pkg")) == [["pkg.c", "pkg.sub", "pkg.c"]]
    assert airflow_imports(package, "pkg.flow") == []
    assert airflow_imports(package, "pkg.other") == ["pkg.flow.run:2 imports airflow.sdk"]


def test_a_package_loop_without_a_module_loop_is_caught(tmp_path: Path) -> None:
    """train.pipeline -> evaluate -> train.frame was no module loop, yet train and
    evaluate needed each other: the package level sees it."""
    package = _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/train/__init__.py": "",
            "pkg/train/frame.py": "",
            "pkg/train/pipeline.py": "def retrain():\n    from pkg.evaluate import score\n",
            "pkg/evaluate/__init__.py": "from pkg.evaluate.score import score\n",
            "pkg/evaluate/score.py": "from pkg.train.frame import Frame\n",
        },
    )
    graph = import_graph(package)
    assert cycles(graph) == []
    assert cycles(package_graph(graph, "pkg")) == [["pkg.evaluate", "pkg.train", "pkg.evaluate"]]
