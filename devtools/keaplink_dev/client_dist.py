"""The client distribution (the root ``pyproject.toml``): its wheel, the Python versions it supports, and its
tests (``tests/client``) run on each of those found here, each in its own venv holding only the built wheel and
pytest (``.tools/client-pyM.M``), so they exercise what an application installs.

CLI: ``python -m keaplink_dev.client_dist`` (what ``make test-client`` runs).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from keaplink_dev.local.runtime import find_python, python_version

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / ".tools"
PIP = ("-m", "pip", "--disable-pip-version-check", "--quiet")


def floor() -> str:
    """The oldest Python the client supports: ``requires-python`` of the root ``pyproject.toml``."""
    spec = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    found = re.fullmatch(r">=(3\.\d+)", spec)
    if not found:
        raise ValueError(f"requires-python is {spec!r}; expected >=3.N")
    return found.group(1)


def supported_versions() -> list[str]:
    """Every minor version from the client's floor to the Lambda runtime's (the newest the project runs)."""
    low, high = (int(v.split(".")[1]) for v in (floor(), python_version()))
    return [f"3.{minor}" for minor in range(low, high + 1)]


def interpreters() -> dict[str, Path | None]:
    """Each supported version → its interpreter on this machine (PATH, else pyenv), None when absent."""
    return {version: find_python(version) for version in supported_versions()}


def _pip(python: Path | str, *args: str) -> None:
    """pip, quiet unless it fails (then its whole output, in the error)."""
    done = subprocess.run([str(python), *PIP, *args], capture_output=True, text=True, check=False,  # noqa: S603
                          timeout=600)
    if done.returncode:
        raise RuntimeError(f"{python} -m pip {' '.join(args)} failed:\n{done.stdout}{done.stderr}")


def build_wheel(out: Path) -> Path:
    """The client's wheel, built from the checkout's files (hatchling writes nothing into the checkout)."""
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("keaplink-*.whl"):
        old.unlink()
    _pip(sys.executable, "wheel", "--no-deps", "-w", str(out), str(REPO))
    [wheel] = out.glob("keaplink-*.whl")
    return wheel


def _pytest_pin() -> str:
    """pytest as pinned for the dev venv, so both run the same version."""
    pins = (REPO / "requirements-dev.txt").read_text().splitlines()
    return next(line.split("#")[0].strip() for line in pins if line.startswith("pytest=="))


def install(python: Path, venv: Path, wheel: Path, *extra: str) -> Path:
    """A venv of ``python`` at ``venv`` (made if missing) holding ``wheel`` (reinstalled: same version, new
    code), its dependencies and ``extra``; returns the venv's interpreter."""
    if not (venv / "bin" / "python").exists():
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([str(python), "-m", "venv", str(venv)], check=True, timeout=300)  # noqa: S603
    exe = venv / "bin" / "python"
    _pip(exe, "install", str(wheel), *extra)
    _pip(exe, "install", "--no-deps", "--force-reinstall", str(wheel))
    return exe


def client_env(**extra: str) -> dict[str, str]:
    """The environment of a process that must see the installed client only, never the checkout's source."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return {**env, **extra}


def client_files() -> list[str]:
    """The checkout's files the wheel is built from (``only-include`` of the root ``pyproject.toml``)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    return list(project["tool"]["hatch"]["build"]["targets"]["wheel"]["only-include"])


def typecheck_at_floor() -> subprocess.CompletedProcess[str]:
    """mypy over the client's files as the floor's Python would see them: typeshed knows which version added
    what (``typing.Self``, ``datetime.UTC``, ``tomllib``…), including on paths no test runs."""
    return subprocess.run([sys.executable, "-m", "mypy", "--python-version", floor(), *client_files()],  # noqa: S603
                          cwd=REPO, capture_output=True, text=True, check=False, timeout=600)


def _test_on(version: str, python: Path, wheel: Path, pytest_args: list[str]) -> subprocess.CompletedProcess[str]:
    exe = install(python, TOOLS / f"client-py{version}", wheel, _pytest_pin())
    env = client_env(KEAPLINK_CLIENT_WHEEL=str(wheel), KEAPLINK_MOTO_PYTHON=sys.executable)
    return subprocess.run([str(exe), "-m", "pytest", "-q", "-c", "tests/client/client.ini", "tests/client",  # noqa: S603
                           *pytest_args], cwd=REPO, env=env, capture_output=True, text=True, check=False)


def run_tests(versions: list[str] | None = None, pytest_args: list[str] | None = None) -> int:
    """mypy at the floor, then tests/client on each supported Python found, all at once; a missing one is named
    and skipped. Non-zero if anything failed or no interpreter was found."""
    started = time.monotonic()
    found = {v: p for v, p in interpreters().items() if not versions or v in versions}
    for version in (v for v, p in found.items() if p is None):
        print(f"==> client tests: no python{version} on this machine (PATH or pyenv): skipped")
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor() as pool:
        wheel = build_wheel(Path(tmp))
        runs = {v: pool.submit(_test_on, v, p, wheel, pytest_args or []) for v, p in found.items() if p}
        checked = typecheck_at_floor()
        print(f"==> mypy --python-version {floor()} over the client's files: {checked.stdout.strip()}")
        failed = [] if checked.returncode == 0 else [f"mypy at {floor()}"]
        for version, run in runs.items():
            done = run.result()
            print(f"==> client tests on python{version} ({found[version]}, .tools/client-py{version}):\n"
                  f"{done.stdout.strip()}{done.stderr.strip()}", flush=True)
            failed += [version] if done.returncode else []
    print(f"==> client tests ran on {', '.join(runs) or 'none'}" + (f"; FAILED: {', '.join(failed)}" if failed else
          "; all passed") + f" ({time.monotonic() - started:.0f} s)")
    return 1 if failed or not runs else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--python", action="append", help="only this version (M.M; repeatable)")
    parser.add_argument("pytest_args", nargs="*", help="passed to pytest (after --)")
    args = parser.parse_args(argv)
    return run_tests(args.python, args.pytest_args)


if __name__ == "__main__":
    sys.exit(main())
