"""The layer's shape, held by tests: packages by behaviour, no import circle, no upward import, one reader of
the environment, thin handlers that use the composition root and one package each (see ARCHITECTURE.md)."""

from __future__ import annotations

import ast

import pytest

from keaplink_dev.client_dist import client_files
from keaplink_dev.perf.layer_graph import FUNCTIONS, LAYER, handler_imports, layer_graph

# What each part of the layer may import: parts of a lower rank, and its own package.
RANKS = {
    "keaplink": 0,
    "keaplink.errors": 0,
    "keaplink.observability": 0,
    "keaplink.config": 1,
    "keaplink.contract": 1,
    "keaplink.aws": 2,
    "keaplink.keap": 3,
    "keaplink.connection": 4,
    "keaplink.actions": 5,
    "keaplink.admin": 5,
    "keaplink.client": 6,
    "keaplink.root": 6,
}
PACKAGES = ("keaplink.keap", "keaplink.connection", "keaplink.actions", "keaplink.admin")
GRAPH = layer_graph()


def part(module: str) -> str:
    return max((p for p in RANKS if module == p or module.startswith(p + ".")), key=len)


def test_every_module_belongs_to_a_ranked_part() -> None:
    assert all(part(m) for m in GRAPH.modules)
    assert {part(m) for m in GRAPH.modules} == set(RANKS)


def test_the_import_graph_has_no_circle() -> None:
    assert GRAPH.cycles() == []


def test_no_import_from_a_lower_part_to_a_higher_or_sideways() -> None:
    wrong = sorted(
        f"{a} -> {b}"
        for a, b in GRAPH.arrows
        if part(a) != part(b) and RANKS[part(b)] >= RANKS[part(a)]
    )
    assert wrong == []


def test_the_graph_sees_real_imports() -> None:
    """Guards the guard: a known lazy import and a known typing-only import are arrows."""
    assert ("keaplink.root", "keaplink.actions.batch") in GRAPH.arrows  # inside a factory
    assert ("keaplink.admin.web", "keaplink.connection.refresh") in GRAPH.arrows  # under TYPE_CHECKING
    assert ("keaplink.connection.oauth", "keaplink.keap.http") in GRAPH.arrows


CLIENT_ROOTS = ("keaplink.client", "keaplink.contract")


def shipped_in_the_client() -> set[str]:
    """The modules of the files the client's wheel is built from (the root pyproject's ``only-include``)."""
    paths = [LAYER.parents[1] / path for path in client_files()]
    return {m for m, file in GRAPH.modules.items() if any(file == p or p in file.parents for p in paths)}


def test_the_client_distribution_is_what_the_client_imports_and_nothing_else() -> None:
    """Every module the client and the contract import, by any import statement, is in the wheel (with the
    packages that hold it), and the wheel holds nothing more: no Lambda code."""
    needed = GRAPH.reachable(m for m in GRAPH.modules if part(m) in CLIENT_ROOTS)
    packages = {".".join(m.split(".")[:i]) for m in needed for i in range(1, m.count(".") + 1)}
    assert shipped_in_the_client() == needed | packages
    assert {"keaplink.contract.messages", "keaplink.client.cli", "keaplink.errors"} <= needed


def test_the_layer_uses_the_one_contract() -> None:
    assert ("keaplink.actions.batch", "keaplink.contract.messages") in GRAPH.arrows
    assert not [m for m in GRAPH.modules if part(m) == "keaplink.actions" and m.endswith(("messages", "dead_letters"))]


ENV_NAMES = ("environ", "getenv", "environb", "putenv")


def _reads_environment(tree: ast.AST) -> list[int]:
    """Lines that touch the process environment (``os.environ``, ``os.getenv``, ``from os import environ``)."""
    attributes = [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr in ENV_NAMES]
    imports = [n.lineno for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module == "os"
               and any(a.name in ENV_NAMES for a in n.names)]
    return sorted(attributes + imports)


def test_only_config_reads_the_environment() -> None:
    readers = {
        str(path.relative_to(LAYER)): lines
        for path in (LAYER / "keaplink").rglob("*.py")
        if (lines := _reads_environment(ast.parse(path.read_text())))
    }
    assert set(readers) == {"keaplink/config.py"}, readers


def test_the_environment_check_would_catch_a_reader() -> None:
    assert _reads_environment(ast.parse("import os\nx = os.environ.get('A')\ny = os.getenv('B')")) == [2, 3]
    assert _reads_environment(ast.parse("from os import environ")) == [1]


@pytest.mark.parametrize("function", sorted(p.parent.name for p in FUNCTIONS.glob("*/app.py")))
def test_handlers_are_thin_and_use_the_root_and_one_package(function: str) -> None:
    source = (FUNCTIONS / function / "app.py").read_text()
    assert len(source.splitlines()) <= 40
    imports = handler_imports(GRAPH)[function]
    assert "keaplink.root" in imports
    packages = {p for m in imports for p in PACKAGES if part(m) == p}
    assert len(packages) == 1, f"functions/{function} uses {sorted(packages)}"
    assert {part(m) for m in imports} <= {"keaplink.root", "keaplink.observability", *packages}


def test_functions_in_the_template_are_the_handlers_on_disk() -> None:
    import re

    template = (LAYER.parents[1] / "template.yaml").read_text()
    code_uris = set(re.findall(r"CodeUri: functions/(\w+)/", template))
    assert code_uris == {p.parent.name for p in FUNCTIONS.glob("*/app.py")}


DEVTOOLS = LAYER.parents[1] / "devtools"


def test_the_dev_tools_have_no_import_circle() -> None:
    graph = layer_graph(DEVTOOLS, "keaplink_dev")
    assert {"keaplink_dev.soak.refresh", "keaplink_dev.soak.messages", "keaplink_dev.local.stack"} <= set(graph.modules)
    assert graph.cycles() == []


def test_the_tests_import_the_dev_tools_never_the_reverse() -> None:
    """The runtime helpers the tests, the soak and the bench share live in keaplink_dev.local."""
    reaching_back = []
    for path in sorted((DEVTOOLS / "keaplink_dev").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom)
                     else [node.args[0].value] if isinstance(node, ast.Call) and node.args
                     and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
                     and getattr(node.func, "attr", "") == "import_module" else [])
            reaching_back += [f"{path.name}: {n}" for n in names if n == "tests" or n.startswith("tests.")]
    assert reaching_back == []
