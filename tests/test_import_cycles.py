"""No import cycle inside a package: the modules' top-level imports form no loop.

Read statically (ast) from every module of sip, media, acd, ivr and metrics.
Imports under ``if TYPE_CHECKING:`` and inside functions are not counted:
they do not run at import time, and a deferred import is the way to break a
loop where two modules must know of each other. A package's ``__init__``
counts as the module it is, so ``from .calls import X`` depends on
``acd/calls/__init__.py`` and everything that imports.
"""

from __future__ import annotations

import ast
from pathlib import Path

from .conftest import ROOT

PACKAGES = ("sip", "media", "acd", "ivr", "metrics")


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _top_level_imports(node: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    imports: list[ast.Import | ast.ImportFrom] = []
    for statement in node.body:
        if isinstance(statement, ast.Import | ast.ImportFrom):
            imports.append(statement)
        else:
            runs = isinstance(statement, ast.Try) or (
                isinstance(statement, ast.If) and "TYPE_CHECKING" not in ast.unparse(statement.test)
            )
            if runs:
                body = statement.body  # type: ignore[attr-defined]
                imports += [s for s in body if isinstance(s, ast.Import | ast.ImportFrom)]
    return imports


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        deps: set[str] = set()
        for statement in _top_level_imports(ast.parse(path.read_text())):
            if isinstance(statement, ast.Import):
                deps |= {alias.name for alias in statement.names if alias.name in modules}
                continue
            if statement.level:
                base = package[: len(package) - statement.level + 1]
                target = ".".join([*base, *([statement.module] if statement.module else [])])
            else:
                target = statement.module or ""
            for candidate in [target, *(f"{target}.{a.name}" for a in statement.names)]:
                if candidate in modules and candidate != name:
                    deps.add(candidate)
        graph[name] = deps
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_package_imports_itself_in_a_loop() -> None:
    assert _cycles(_graph()) == []


def test_the_check_finds_a_loop() -> None:
    graph = {"a.x": {"a.y"}, "a.y": {"a.z"}, "a.z": {"a.x"}, "a.w": {"a.x"}}
    assert _cycles(graph) == [["a.x", "a.y", "a.z"]]


def test_the_graph_sees_relative_and_package_imports() -> None:
    graph = _graph()
    assert "acd.calls._control" in graph["acd.calls"]  # from ._control import ...
    assert "sip.endpoint" in graph["acd.server"]  # from sip.endpoint import ...
