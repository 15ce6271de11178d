"""The shared layer's import graph, read from the source (every import statement, lazy and typing-only ones
included): modules, arrows, cycles, levels, and which modules each handler can reach.

CLI: ``python -m keaplink_dev.perf.layer_graph`` (``PYTHONPATH=devtools``) prints the figures; the architecture
tests (``tests/unit/test_architecture.py``) hold the layer to its rules with the same graph.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
LAYER = REPO / "layers" / "keaplink"
FUNCTIONS = REPO / "functions"


@dataclass(frozen=True)
class Graph:
    modules: dict[str, Path]  # dotted name → file
    arrows: frozenset[tuple[str, str]]  # (importer, imported), both layer modules

    def imports_of(self, module: str) -> set[str]:
        return {b for a, b in self.arrows if a == module}

    def cycles(self) -> list[list[str]]:
        """Strongly connected components with more than one module (Tarjan)."""
        index: dict[str, int] = {}
        low: dict[str, int] = {}
        stack: list[str] = []
        on_stack: set[str] = set()
        found: list[list[str]] = []

        def visit(v: str) -> None:
            index[v] = low[v] = len(index)
            stack.append(v)
            on_stack.add(v)
            for w in sorted(self.imports_of(v)):
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

        for module in sorted(self.modules):
            if module not in index:
                visit(module)
        return found

    def levels(self) -> int:
        """Length of the longest import chain (1 = a module that imports nothing of the layer)."""

        @cache
        def depth(module: str) -> int:
            return 1 + max((depth(m) for m in self.imports_of(module)), default=0)

        return max(depth(m) for m in self.modules) if not self.cycles() else -1

    def reachable(self, roots: Iterable[str]) -> set[str]:
        seen: set[str] = set()
        todo = list(roots)
        while todo:
            module = todo.pop()
            if module in seen or module not in self.modules:
                continue
            seen.add(module)
            todo.extend(self.imports_of(module))
        return seen


def _name(path: Path, base: Path) -> str:
    parts = list(path.relative_to(base).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def imported_modules(path: Path, package: str, modules: dict[str, Path]) -> set[str]:
    """The layer modules ``path`` imports, by any import statement (relative imports resolved).

    ``from keaplink.admin import web`` imports the module ``keaplink.admin.web``; ``from keaplink.errors
    import X`` imports ``keaplink.errors``.
    """
    found: set[str | None] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(_resolve(alias.name, modules) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else _resolve(base, modules))
    return {m for m in found if m}


def layer_graph(layer: Path = LAYER, package: str = "keaplink") -> Graph:
    """The import graph of ``package`` under ``layer`` (the layer by default; the dev tools use it too)."""
    modules = {_name(p, layer): p for p in sorted((layer / package).rglob("*.py"))}
    arrows: set[tuple[str, str]] = set()
    for module, path in modules.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        arrows.update((module, target) for target in imported_modules(path, package, modules) if target != module)
    return Graph(modules, frozenset(arrows))


def handler_imports(graph: Graph) -> dict[str, set[str]]:
    """Layer modules each ``functions/<name>/app.py`` imports directly."""
    return {app.parent.name: imported_modules(app, "", graph.modules) for app in sorted(FUNCTIONS.glob("*/app.py"))}


def loaded_at_import(function: str) -> list[str]:
    """The layer modules in ``sys.modules`` once ``functions/<function>/app.py`` is imported (a cold start's
    import phase; the composition root imports the rest on first use)."""
    import subprocess

    code = (f"import runpy, sys; runpy.run_path({str(FUNCTIONS / function / 'app.py')!r}); "
            "print('\\n'.join(sorted(m for m in sys.modules if m.startswith('keaplink'))))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,  # noqa: S603
                          env={"PYTHONPATH": str(LAYER), "PATH": ""})
    return done.stdout.split()


def main() -> int:
    graph = layer_graph()
    cycles = graph.cycles()
    print(f"layer modules (with __init__)  {len(graph.modules)}")
    print(f"import arrows                  {len(graph.arrows)}")
    print(f"levels (longest chain)         {graph.levels() if not cycles else 'n/a: cycles'}")
    print(f"cycles                         {cycles or 'none'}")
    for name, imports in handler_imports(graph).items():
        loaded = loaded_at_import(name)
        print(f"functions/{name}: imports {', '.join(sorted(imports))}; {len(loaded)} layer modules loaded at import")
    return 1 if cycles else 0


if __name__ == "__main__":
    sys.exit(main())
