"""The package's shape: its root in a few parts, which part may import which, no module over
600 lines, and no import cycle among its modules.

Every module is parsed with `ast` (nothing is imported), and every import counts: at module
level, inside functions and under `TYPE_CHECKING`, relative ones resolved against the importing
module's package. `from package import name` is an edge to the submodule `package.name` when
there is one, else to `package` itself.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import idminter_pipeline

PACKAGE = "idminter_pipeline"
ROOT = Path(idminter_pipeline.__file__).parent
MAX_LINES = 600

# The root's parts, and the parts each may import (besides itself). The shared value rules
# (`core`) import nothing of the package; the registry and the works pipeline build on them;
# the front doors (`cli`, `defs`, `aws_lambda`) sit over those and nobody imports them, but for
# `cli`'s `local-run`, which runs the Dagster job in process, and the code location
# (`definitions`), which is `defs`' Definitions. The local development servers are tooling: only
# the CLI starts them.
ALLOWED_IMPORTS = {
    "core": set(),
    "registry": {"core"},
    "works": {"core", "registry"},
    "local_servers": {"core"},
    "aws_lambda": {"core", "registry", "works"},
    "defs": {"core", "registry", "works"},
    "cli": {"core", "registry", "works", "local_servers", "defs"},
    "definitions": {"defs"},
}


def module_files() -> dict[str, Path]:
    """Dotted module name -> source file, for every module of the package."""
    modules = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = [PACKAGE, *path.relative_to(ROOT).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def imported_modules(name: str, path: Path, tree: ast.Module, known: dict[str, Path]) -> set[str]:
    """The package's modules that `name` imports anywhere in its source."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join([*base_parts, node.module] if node.module else base_parts)
            else:
                base = node.module or ""
            candidates = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                for alias in node.names
            ]
        else:
            continue
        for candidate in candidates:
            target = nearest_module(candidate, known)
            if target and target != name:
                targets.add(target)
    return targets


def nearest_module(dotted: str, known: dict[str, Path]) -> str:
    """`dotted` if it is one of the package's modules, else its nearest parent that is; "" for
    anything outside the package (not ours to check)."""
    while dotted and dotted not in known:
        dotted = dotted.rpartition(".")[0]
    return dotted


def import_graph() -> dict[str, set[str]]:
    known = module_files()
    return {
        name: imported_modules(name, path, ast.parse(path.read_text(), str(path)), known)
        for name, path in known.items()
    }


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [cycle_through(graph, component) for component in components]


def cycle_through(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """A concrete import loop inside a strongly connected component, from its first module."""
    members = set(component)
    start = component[0]
    paths = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for target in sorted(graph[node] & members):
            if target == start:
                return paths[node]
            if target not in paths:
                paths[target] = [*paths[node], target]
                queue.append(target)
    return component


def test_the_graph_holds_the_package_imports():
    graph = import_graph()
    assert "idminter_pipeline.core.errors" in graph["idminter_pipeline.core.source_identifiers"]
    # `from package import submodule` is an edge to the submodule.
    assert "idminter_pipeline.registry.schema" in graph["idminter_pipeline.cli.local_run"]
    # Imports inside a function body count (`cli.local_run` imports the minter lazily).
    assert "idminter_pipeline.registry.minting" in graph["idminter_pipeline.cli.local_run"]


def part_of(module: str) -> str:
    """The root part a module belongs to: `idminter_pipeline.works.stores.sqlite` -> `works`."""
    return module.removeprefix(f"{PACKAGE}.").partition(".")[0]


def test_the_root_holds_its_parts_only():
    entries = {path.stem for path in ROOT.iterdir() if path.suffix == ".py" or path.is_dir()}
    assert entries - {"__init__", "__pycache__"} == set(ALLOWED_IMPORTS)


def test_each_part_imports_only_the_parts_below_it():
    graph = import_graph()
    wrong = sorted(
        f"  {module} imports {target}"
        for module, targets in graph.items()
        if module != PACKAGE
        for target in targets
        if target != PACKAGE
        and part_of(target) != part_of(module)
        and part_of(target) not in ALLOWED_IMPORTS[part_of(module)]
    )
    assert not wrong, "imports across the layout's directions:\n" + "\n".join(wrong)


def test_nothing_imports_upward():
    """A module imports no package that contains it: a package's `__init__` re-exports its
    rooms, so importing it from one of them loops back through the room itself."""
    graph = import_graph()
    upward = sorted(
        f"  {module} imports {target}"
        for module, targets in graph.items()
        for target in targets
        if module.startswith(f"{target}.")
    )
    assert not upward, "imports of an enclosing package:\n" + "\n".join(upward)


def test_find_cycles_names_a_loop():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert find_cycles(graph) == [["a", "b", "c"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    cycles = find_cycles(import_graph())
    shown = ["  " + " -> ".join([*cycle, cycle[0]]) for cycle in cycles]
    assert not cycles, "import cycles among the package's modules:\n" + "\n".join(shown)


def test_no_module_is_named_as_a_part_of_a_sibling():
    """A module named `<sibling>_<part>` belongs inside a `<sibling>/` package."""
    misplaced = []
    modules = [name.rpartition(".") for name in module_files()]
    for package, _, leaf in modules:
        siblings = {other for parent, _, other in modules if parent == package}
        misplaced += [
            f"{package}.{leaf}"
            for sibling in siblings - {leaf}
            if leaf.startswith(f"{sibling}_") and not leaf.startswith(f"{sibling}__")
        ]
    assert misplaced == []


def test_no_module_over_600_lines():
    long = {
        name: count
        for name, path in module_files().items()
        if (count := len(path.read_text().splitlines())) > MAX_LINES
    }
    shown = [f"  {name}: {count} lines" for name, count in sorted(long.items())]
    assert not long, f"modules over {MAX_LINES} lines:\n" + "\n".join(shown)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from . import b", {"pkg.sub.b"}),
        ("from .b import thing", {"pkg.sub.b"}),
        ("from .. import top", {"pkg.top"}),
        ("from ..sub import b", {"pkg.sub.b"}),
        ("from pkg.sub import thing", {"pkg.sub"}),
        ("import pkg.sub.b", {"pkg.sub.b"}),
        ("def f():\n    from pkg.top import x", {"pkg.top"}),
        ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.top", {"pkg.top"}),
        ("import os\nfrom collections import abc", set()),
    ],
)
def test_imports_are_resolved(source, expected):
    known = {name: Path(name) for name in ("pkg", "pkg.top", "pkg.sub", "pkg.sub.a", "pkg.sub.b")}
    got = imported_modules("pkg.sub.a", Path("pkg/sub/a.py"), ast.parse(source), known)
    assert got == expected
