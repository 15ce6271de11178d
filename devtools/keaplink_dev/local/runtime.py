"""The project's Python version, from its one source: ``Runtime: &runtime pythonN.N`` in ``template.yaml``.

``devtools/runtime-python`` reads it and finds the interpreter (the Makefiles run it directly); this
module runs that script, so there is one parser and one search order.
"""

from __future__ import annotations

import functools
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
SCRIPT = REPO_ROOT / "devtools" / "runtime-python"


class RuntimeNotFound(RuntimeError):
    """No interpreter for the template's runtime on this machine (the message says what to install)."""


def _script(*args: str) -> str:
    proc = subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, check=False)  # noqa: S603
    if proc.returncode != 0:
        raise RuntimeNotFound(proc.stderr.strip() or f"{SCRIPT} {' '.join(args)} failed")
    return proc.stdout.strip()


@functools.cache
def runtime() -> str:
    """The Lambda runtime, e.g. ``python3.13``."""
    return _script("--runtime")


@functools.cache
def python_version() -> str:
    """The runtime's Python version, e.g. ``3.13``."""
    return _script("--version")


@functools.cache
def python_executable() -> Path:
    """A base interpreter (not a venv's) of the runtime's version: ``pythonN.N`` on PATH, else pyenv's.
    When the running interpreter already is one, that one."""
    if running_matches():
        return Path(getattr(sys, "_base_executable", "") or sys.executable)
    return Path(_script())


def find_python(version: str) -> Path | None:
    """A base interpreter of ``version`` (``M.M``) by the same search as the runtime's, or None."""
    try:
        return Path(_script("--find", version))
    except RuntimeNotFound:
        return None


def running_matches() -> bool:
    """True when this process runs on the runtime's Python version."""
    return f"{sys.version_info[0]}.{sys.version_info[1]}" == python_version()
