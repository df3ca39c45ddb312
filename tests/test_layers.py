"""The package reads top-down: no module imports from a layer above its own, no import circles.

Every import is counted, also those inside functions (lazy imports keep ``import qrspec``
fast; they are dependencies all the same). Layers, lowest first (README "Architecture"):
errors, photons (the data type), io (readers and writers, which build Photons), stats, models
(fitting < levels < charging: within the layer, packages only import downward), simulate,
analysis, store, app, cli. The photon type ranks below io because the readers construct it;
data still flows one way, files -> Photons -> statistics -> models -> analysis -> store.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "qrspec"

# module prefix -> rank; a module may import modules of its own or a lower rank
LAYERS = [
    ("qrspec.errors", 0),
    ("qrspec.validate", 0),  # argument checks and unit rules: imports only errors
    ("qrspec.photons", 1),  # the photon data type: the readers of io build it
    ("qrspec.io", 2),
    ("qrspec.stats", 3),
    ("qrspec.fitting", 4),
    ("qrspec.levels", 5),
    ("qrspec.charging", 6),
    ("qrspec.simulate", 7),
    ("qrspec.analysis", 8),
    ("qrspec.store", 9),
    ("qrspec.app", 10),
    ("qrspec.cli", 11),
    ("qrspec.__main__", 11),
]
ROOT_PACKAGE = "qrspec"  # the lazy facade: imports only qrspec.errors itself


def rank(module: str) -> int:
    """Layer rank of a qrspec module (the root package ranks with errors: lowest)."""
    if module == ROOT_PACKAGE:
        return 0
    for prefix, r in LAYERS:
        if module == prefix or module.startswith(prefix + "."):
            return r
    raise KeyError(f"module {module} is in no layer: add it to LAYERS")


def module_name(path: Path, root: Path) -> str:
    rel = path.relative_to(root.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(path: Path, root: Path, known: set[str]) -> set[str]:
    """qrspec modules imported anywhere in ``path`` (module level and inside functions)."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            # "from pkg import sub" imports the module pkg.sub when it is one; the package
            # itself counts when a name that is not a submodule is imported from it
            subs = [f"{mod}.{a.name}" for a in node.names if f"{mod}.{a.name}" in known]
            targets = subs + ([mod] if len(subs) < len(node.names) else [])
        else:
            continue
        for t in targets:
            if t == ROOT_PACKAGE or t.startswith(ROOT_PACKAGE + "."):
                # the deepest known module named by the import
                while t not in known and "." in t:
                    t = t.rpartition(".")[0]
                if t != name:
                    out.add(t)
    return out


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    files = sorted(root.rglob("*.py"))
    known = {module_name(p, root) for p in files}
    return {module_name(p, root): imports_of(p, root, known) for p in files}


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{m} -> {t}" for m, ts in graph.items() for t in ts if rank(t) > rank(m))


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, on, stack, out = {}, {}, set(), [], []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
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
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_every_module_has_a_layer():
    for m in import_graph():
        rank(m)


def test_no_upward_imports():
    assert upward_imports(import_graph()) == []


def test_no_import_cycles():
    assert import_cycles(import_graph()) == []


def test_checker_flags_a_planted_upward_import_and_cycle(tmp_path):
    """The checker itself can fail: a stats module importing the pipeline (inside a function)
    is an upward import, and two modules importing each other are a cycle."""
    pkg = tmp_path / "qrspec"
    for sub in ("stats", "analysis"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("from qrspec.errors import QrspecError\n")
    (pkg / "errors.py").write_text("")
    (pkg / "stats" / "trace.py").write_text(
        "def f():\n    from qrspec.analysis.pipeline import analyze_file\n")
    (pkg / "analysis" / "pipeline.py").write_text("from . import stages\n")
    (pkg / "analysis" / "stages.py").write_text("from qrspec.analysis import pipeline\n")
    graph = import_graph(pkg)
    assert upward_imports(graph) == ["qrspec.stats.trace -> qrspec.analysis.pipeline"]
    assert import_cycles(graph) == [["qrspec.analysis.pipeline", "qrspec.analysis.stages"]]
    with pytest.raises(KeyError, match="qrspec.newlayer is in no layer"):
        rank("qrspec.newlayer")
