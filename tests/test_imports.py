"""Imports point one way (docs/contracts.md): data, models -> train -> launch, tune -> entry points;
analysis beside launch. Checked on the source (every import, function-level ones included), so a
cycle hidden inside a function fails here instead of at some caller's first run."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "rsscale"

# package -> the rsscale packages it must not import
FORBIDDEN = {
    "rsscale.models": ("rsscale.data", "rsscale.train", "rsscale.launch", "rsscale.tune", "rsscale.analysis"),
    "rsscale.data": ("rsscale.models", "rsscale.train", "rsscale.launch", "rsscale.tune", "rsscale.analysis"),
    "rsscale.train": ("rsscale.launch", "rsscale.tune", "rsscale.analysis"),
    "rsscale.launch": ("rsscale.tune",),
    "rsscale.analysis": (
        "rsscale.launch.launcher",
        "rsscale.launch.runner",
        "rsscale.tune",
        "rsscale.train.loop",
    ),
}
LEAVES = ("rsscale.io", "rsscale.layout", "rsscale.states", "rsscale.schema")  # import nothing of rsscale


def module_name(path: Path) -> str:
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def rsscale_imports(path: Path) -> set[str]:
    """Every rsscale module `path` imports, anywhere in the file (relative imports resolved)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("rsscale")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.startswith("rsscale"):
                found.add(mod)
                found |= {
                    f"{mod}.{a.name}"
                    for a in node.names
                    if (PKG.parent / f"{mod}.{a.name}".replace(".", "/")).with_suffix(".py").exists()
                }
    return found - {name}


GRAPH = {module_name(p): rsscale_imports(p) for p in PKG.rglob("*.py")}


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_point_one_way(package):
    wrong = {
        (mod, imp)
        for mod, imps in GRAPH.items()
        if mod == package or mod.startswith(package + ".")
        for imp in imps
        if any(imp == f or imp.startswith(f + ".") for f in FORBIDDEN[package])
    }
    assert not wrong, f"{package} imports against the direction: {sorted(wrong)}"


def test_leaf_modules_import_nothing_of_rsscale():
    for leaf in LEAVES:
        assert not GRAPH[leaf], f"{leaf} imports {sorted(GRAPH[leaf])}"


def test_no_import_cycles_between_modules():
    graph = {m: {i for i in imps if i in GRAPH and i != m} for m, imps in GRAPH.items()}
    # a package's __init__ importing its own modules is not a cycle of concern
    graph = {
        m: {i for i in imps if not (m != "rsscale" and i.startswith(m + "."))} for m, imps in graph.items()
    }
    state: dict[str, int] = {}
    cycles = []

    def visit(node, stack):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)
