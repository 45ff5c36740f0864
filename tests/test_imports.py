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
    "rsscale.train": ("rsscale.launch", "rsscale.tune", "rsscale.analysis", "rsscale.driver"),
    "rsscale.launch": ("rsscale.tune", "rsscale.driver"),
    "rsscale.analysis": (
        "rsscale.launch.backends",
        "rsscale.launch.runner",
        "rsscale.tune",
        "rsscale.train.loop",
        "rsscale.driver",
    ),
    "rsscale.driver": ("rsscale.tune",),
    "rsscale.tune": ("rsscale.driver",),
}
# import nothing of rsscale
LEAVES = ("rsscale.io", "rsscale.layout", "rsscale.states", "rsscale.config_schema")


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


ROOT = PKG.parent
ANALYSIS = PKG / "analysis"


def private_imports(path: Path) -> list[str]:
    """`from rsscale.x import _name` and `module._name` on an imported rsscale module: the private
    names of another module that `path` uses (its own are fine; dunders are not private)."""
    tree = ast.parse(path.read_text())
    own = module_name(path) if path.is_relative_to(PKG) else None
    aliases: dict[str, str] = {}
    found = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.ImportFrom)
            and (node.module or "").startswith("rsscale")
            and node.module != own
        ):
            for a in node.names:
                if a.name.startswith("_") and not a.name.startswith("__"):
                    found.append(f"{node.module}.{a.name}")
                elif (ROOT / f"{node.module}.{a.name}".replace(".", "/")).with_suffix(".py").exists():
                    aliases[a.asname or a.name] = f"{node.module}.{a.name}"
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("rsscale") and a.asname:
                    aliases[a.asname] = a.name
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
        ):
            found.append(f"{aliases[node.value.id]}.{node.attr}")
    return sorted(set(found))


def test_analysis_modules_use_no_private_names_of_other_modules():
    wrong = {str(p.relative_to(ROOT)): private_imports(p) for p in sorted(ANALYSIS.rglob("*.py"))}
    wrong = {k: v for k, v in wrong.items() if v}
    assert not wrong, f"private names used across modules (make them public or move them): {wrong}"


def test_shipped_code_uses_no_private_names_of_other_modules():
    """The package, its Hydra plugin and the scripts: a private name is its module's own business."""
    files = [*PKG.rglob("*.py"), *(ROOT / "hydra_plugins").rglob("*.py"), *(ROOT / "scripts").rglob("*.py")]
    wrong = {str(p.relative_to(ROOT)): private_imports(p) for p in sorted(files)}
    wrong = {k: v for k, v in wrong.items() if v}
    assert not wrong, f"private names used across modules (make them public or move them): {wrong}"


def test_private_import_check_sees_both_spellings(tmp_path):
    f = tmp_path / "probe.py"
    f.write_text(
        "from rsscale.analysis.power import _replication, describe\n"
        "from rsscale.analysis import power as pw\n"
        "x = pw._replication, pw.describe, pw.__doc__\n"
    )
    assert private_imports(f) == ["rsscale.analysis.power._replication"]


def imports_tests(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import) and any(
            a.name == "tests" or a.name.startswith("tests.") for a in node.names
        ):
            return True
        if (
            isinstance(node, ast.ImportFrom)
            and not node.level
            and (node.module or "").split(".")[0] == "tests"
        ):
            return True
    return False


def test_shipped_code_and_scripts_never_import_tests():
    files = sorted(PKG.rglob("*.py")) + sorted((ROOT / "scripts").rglob("*.py"))
    files += sorted((ROOT / "hydra_plugins").rglob("*.py"))
    wrong = [str(p.relative_to(ROOT)) for p in files if imports_tests(p)]
    assert not wrong, f"shipped code or scripts import tests/ (move the helper into rsscale/): {wrong}"


def test_tests_import_check_sees_both_spellings(tmp_path):
    for src, bad in (
        ("import tests.analysis.synthetic_laws\n", True),
        ("from tests import conftest\n", True),
        ("from rsscale.analysis import synthetic\n", False),
    ):
        (tmp_path / "probe.py").write_text(src)
        assert imports_tests(tmp_path / "probe.py") is bad, src
