"""The package-level import graph of ``weakseg`` has no cycle, and the data layer stays below the model layers.

Every ``import`` in every module counts, also those inside functions and under ``TYPE_CHECKING``: a lazy import
hides a cycle from the interpreter, not from a reader. A node is a subpackage (``weakseg.data``) or a
top-level module (``weakseg.errors``).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import weakseg

ROOT = Path(weakseg.__file__).parent


def _node(parts: list[str]) -> str:
    return parts[0].removesuffix(".py")


def _module_name(path: Path) -> list[str]:
    rel = [p.removesuffix(".py") for p in path.relative_to(ROOT).parts]
    return ["weakseg", *rel]


def package_graph() -> dict[str, dict[str, set[str]]]:
    """{importing node: {imported node: {"file -> module", ...}}} over every .py file of the package."""
    graph: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for path in sorted(ROOT.rglob("*.py")):
        src = _node(list(path.relative_to(ROOT).parts))
        mod = _module_name(path)
        package = mod[:-1]          # the package a relative import starts from (also for __init__.py)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package[:len(package) - node.level + 1]
                    names = [".".join([*base, node.module] if node.module else base)]
                else:
                    names = [node.module or ""]
                if not node.module:        # "from . import x": each x may be a module
                    names = [f"{names[0]}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                parts = name.split(".")
                if parts[0] != "weakseg" or len(parts) < 2:
                    continue
                dst = _node(parts[1:])
                if dst != src:
                    graph[src][dst].add(f"{path.relative_to(ROOT)} -> {name}")
    return graph


def _cycle(graph: dict[str, dict[str, set[str]]]) -> list[str] | None:
    """One cycle of node names (first node repeated at the end), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, {})):
            if state.get(m) == 1:
                return [*stack[stack.index(m):], m]
            if m not in state and (found := visit(m)):
                return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state and (found := visit(n)):
            return found
    return None


def test_the_helpers_find_a_cycle() -> None:
    g = {"a": {"b": {"x"}}, "b": {"c": {"y"}}, "c": {"a": {"z"}}}
    assert _cycle(g) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b": {"x"}}, "b": {}}) is None


def test_the_graph_sees_the_packages() -> None:
    g = package_graph()
    assert {"cli", "data", "training", "methods", "evaluation"} <= set(g)
    assert "data" in g["training"] and "methods" in g["training"]


def test_package_import_graph_has_no_cycle() -> None:
    g = package_graph()
    cycle = _cycle(g)
    if cycle:
        edges = [f"{a} -> {b}: {sorted(g[a][b])}" for a, b in zip(cycle, cycle[1:])]
        raise AssertionError("package import cycle " + " -> ".join(cycle) + "\n" + "\n".join(edges))


def test_data_imports_no_model_losses_metrics_or_inference() -> None:
    g = package_graph()
    for layer in ("inference", "losses", "metrics", "methods", "models", "training", "evaluation"):
        assert layer not in g["data"], f"data imports {layer}: {sorted(g['data'][layer])}"
