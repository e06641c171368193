"""The package's import graph: no circles, and no import against the layer order.

Layers, lowest first (docs/continual_learning/CODE_LAYOUT.md draws them):

    utils < config < dataloader < streams < model < runs < training | benchmarks < deployment < evaluation

A module may import its own package and any lower layer, never a higher one. `training` and
`benchmarks` share a layer and never import each other: benchmarks declare their streams through
entry points, and training reads them through `streams`. Every import counts, also the ones inside
functions: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "AlphaBrain"

LAYERS: list[set[str]] = [
    {"utils"},
    {"config"},
    {"dataloader"},
    {"streams"},
    {"model"},
    {"runs"},
    {"training", "benchmarks"},
    {"deployment"},
    {"evaluation"},
]
LAYER_OF = {pkg: i for i, layer in enumerate(LAYERS) for pkg in layer}


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(path: Path, modules: dict[str, Path]) -> set[str]:
    """The package modules `path` imports (a name imported from a package that is a submodule counts as it)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                     for a in node.names]
        else:
            continue
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name.startswith("AlphaBrain."):
                out.add(name)
    return out


def import_graph() -> dict[str, set[str]]:
    modules = all_modules()
    return {name: imports_of(path, modules) - {name} for name, path in modules.items()}


def top_package(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm: the components of more than one module (each one an import circle)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_every_package_has_a_layer():
    packages = {top_package(m) for m in all_modules()} - {None}
    assert packages <= set(LAYER_OF), f"add these packages to LAYERS (and CODE_LAYOUT.md): {packages - set(LAYER_OF)}"


def test_no_import_runs_up_the_layers():
    bad = []
    for module, targets in import_graph().items():
        src = top_package(module)
        for target in targets:
            dst = top_package(target)
            if src is None or dst is None or src == dst:
                continue
            if LAYER_OF[dst] >= LAYER_OF[src]:
                bad.append(f"{module} -> {target} ({src} is layer {LAYER_OF[src]}, {dst} is layer {LAYER_OF[dst]})")
    assert not bad, "imports against the layer order:\n" + "\n".join(sorted(bad))


def test_no_import_circles():
    circles = strongly_connected(import_graph())
    assert not circles, "import circles:\n" + "\n".join(" <-> ".join(c) for c in circles)


def test_the_checker_sees_what_it_must():
    """The graph builder on known facts: lazy imports count, and a circle is found."""
    graph = import_graph()
    assert "AlphaBrain.runs.run_dir" in graph["AlphaBrain.training.continual_learning.train"] or any(
        t.startswith("AlphaBrain.runs") for t in graph["AlphaBrain.training.continual_learning.train"])
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_docstrings_cite_only_files_that_exist():
    """A comment or docstring naming a package file (AlphaBrain/... .py, or a path relative to the package) is
    only useful while that file exists."""
    cited = re.compile(r"(?<![\w/.])((?:AlphaBrain/)?(?:utils|config|dataloader|streams|model|runs|training|benchmarks|"
                       r"deployment|evaluation)/[\w/]+\.py)")
    missing = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            for ref in cited.findall(line):
                rel = ref.removeprefix("AlphaBrain/")
                here = path.parent
                candidates = [PACKAGE / rel] + [p / rel for p in [here, *here.parents] if PACKAGE in [p, *p.parents]]
                if not any(c.is_file() for c in candidates):
                    missing.append(f"{path.relative_to(PACKAGE.parent)}:{lineno}: {ref}")
    assert not missing, "references to files that do not exist:\n" + "\n".join(missing)


def test_no_module_over_400_lines():
    """A file that outgrows 400 lines holds two responsibilities: split it along the seam."""
    long = {str(p.relative_to(PACKAGE.parent)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 400}
    assert not long, f"split these modules: {long}"
