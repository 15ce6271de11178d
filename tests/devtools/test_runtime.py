"""The Python version is named once (template.yaml's ``Runtime: &runtime pythonN.N``); everything else
derives it, and what cannot (a TOML file, a fixture) is checked against it here. The one other version is the
client distribution's floor (``requires-python``)."""

from __future__ import annotations

import fnmatch
import re
import subprocess
import tomllib
from pathlib import Path

from keaplink_dev.client_dist import client_files, floor
from keaplink_dev.local.deploy import _load_cfn_yaml
from keaplink_dev.local.runtime import SCRIPT, python_executable, python_version, runtime

REPO = Path(__file__).resolve().parents[2]
TOY = Path(__file__).parent / "fixtures" / "toy" / "template.yaml"
# Files that once named the version themselves; none may name another one now.
CONFIG_FILES = ["Makefile", "layers/keaplink/Makefile", "layers/keaplink/requirements.txt", "pyproject.toml",
                "template.yaml", ".ci/run", "samconfig.toml", "tests/devtools/fixtures/toy/template.yaml",
                *[str(p.relative_to(REPO)) for p in sorted((REPO / "devtools").rglob("*.py"))],
                *[str(p.relative_to(REPO)) for p in sorted((REPO / "tests" / "support").glob("*.py"))]]


def _runtimes(template: Path) -> set[str]:
    data = _load_cfn_yaml(template)
    found = {data["Globals"]["Function"]["Runtime"]}
    for resource in data["Resources"].values():
        props = resource.get("Properties") or {}
        found.update({props["Runtime"]} if "Runtime" in props else set())
        found.update(props.get("CompatibleRuntimes") or [])
        build = (resource.get("Metadata") or {}).get("BuildMethod", "")
        found.update({build} if build.startswith("python") else set())
    return found


def test_the_template_names_one_runtime_and_the_script_reads_it() -> None:
    assert re.fullmatch(r"python3\.\d+", runtime())
    assert runtime() == "python" + python_version()
    assert _runtimes(REPO / "template.yaml") == {runtime()}  # CompatibleRuntimes is an alias of it


def test_the_interpreter_found_is_that_version() -> None:
    out = subprocess.run([str(python_executable()), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out == python_version()
    assert subprocess.run([str(SCRIPT)], capture_output=True, text=True, check=True).stdout.strip()


def test_what_cannot_derive_it_agrees() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert project["tool"]["ruff"]["target-version"] == "py" + python_version().replace(".", "")
    assert "python_version" not in project["tool"]["mypy"]  # mypy uses the venv's interpreter
    assert _runtimes(TOY) == {runtime()}


def test_the_client_floor_is_named_by_requires_python_and_ruff_checks_every_client_file_at_it() -> None:
    """The client distribution supports older Pythons than the runtime: its floor is ``requires-python``, and
    ruff's per-file target for each file the wheel is built from is that floor."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert floor() != python_version() and project["project"]["requires-python"] == f">={floor()}"
    targets = project["tool"]["ruff"]["per-file-target-version"]
    assert set(targets.values()) == {"py" + floor().replace(".", "")}
    for path in client_files():
        assert any(fnmatch.fnmatch(path, glob) or fnmatch.fnmatch(path + "/x.py", glob) for glob in targets), path


def test_no_config_file_names_another_python_version() -> None:
    pattern = re.compile(r"python ?3\.(\d+)|\bpy3(\d\d)\b|python_version\s*=\s*\"3\.(\d+)\"", re.IGNORECASE)
    minors = {python_version().split(".")[1], floor().split(".")[1]}  # the runtime's, the client's floor
    stray = [
        f"{name}: {m.group(0)}"
        for name in CONFIG_FILES
        for m in pattern.finditer((REPO / name).read_text())
        if next(g for g in m.groups() if g) not in minors
    ]
    assert stray == []
