"""The package layout is the architecture: what may import what, and no import circle within a side.

    weibao.core       imports no other part of weibao
    weibao.agent      imports the core only (never the collector)
    weibao.collector  imports the core only (never the agent)
    weibao.embedded   may import all three (agent and collector in one process, the demo)
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "weibao"
ALLOWED = {"core": {"core"}, "agent": {"core", "agent"}, "collector": {"core", "collector"},
           "embedded": {"core", "agent", "collector", "embedded"}}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path, *, top_level_only: bool) -> set[str]:
    """Absolute ``weibao.*`` modules imported by ``path`` (anywhere, or only outside functions)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = ast.walk(tree) if not top_level_only else _outside_functions(tree)
    out: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("weibao")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module.startswith("weibao"):
            # ``from weibao.x import y``: the module weibao.x.y when y is one, else weibao.x itself
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                out.add(sub if _is_module(sub) else node.module)
    return out


def _is_module(dotted: str) -> bool:
    path = PACKAGE.parent / dotted.replace(".", "/")
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def _outside_functions(tree: ast.AST) -> list[ast.AST]:
    found: list[ast.AST] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                continue
            found.append(child)
            stack.append(child)
    return found


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_follow_the_layers(name: str) -> None:
    parts = name.split(".")
    side = parts[1] if len(parts) > 1 else None
    if side not in ALLOWED:
        return  # weibao itself, weibao.__main__
    for target in imports(MODULES[name], top_level_only=False):
        tparts = target.split(".")
        if len(tparts) < 2:
            continue
        assert tparts[1] in ALLOWED[side], f"{name} imports {target}: {side} may import only {sorted(ALLOWED[side])}"


def test_no_import_circle_within_a_side() -> None:
    graph = {name: {t for t in imports(path, top_level_only=True) if t in MODULES and t != name}
             for name, path in MODULES.items()}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt):], nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert not cycles, "import circles:\n" + "\n".join(" -> ".join(c) for c in cycles)
