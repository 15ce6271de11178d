"""Run the local AWS emulator ministack (https://pypi.org/project/ministack/, MIT) as a subprocess.

ministack pins its own botocore, so it lives in its own venv at ``.tools/ministack`` (see
:func:`ensure_installed`). It serves every AWS API on one port; Python Lambda functions run as local
worker processes of that venv's interpreter (``<venv>/bin/python /tmp/.../_worker.py``) in ministack's
process group, so stopping the group also stops every function process. The venv is therefore made with the
template's runtime version (:mod:`keaplink_dev.local.runtime`), so functions run locally on Lambda's Python.

State is kept in memory only: a restarted ministack is empty and the stack has to be deployed again.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from keaplink_dev.local.runtime import python_executable, python_version

# Pinned together: ministack itself, the SAM translator it needs to accept templates with
# ``Transform: AWS::Serverless-2016-10-31`` (ministack's CloudFormation refuses them without it, and
# ``sam deploy --resolve-s3`` needs it for its own managed-bucket stack), and boto3 - which functions
# import from this venv, as the real Lambda Python runtime provides boto3 (the translator pulls it in;
# pinning it keeps it matched to ministack's botocore pin).
MINISTACK_VERSION = "1.5.33"
REQUIREMENTS = (
    f"ministack=={MINISTACK_VERSION}",
    "aws-sam-translator==1.115.0",
    "boto3==1.43.106",
)
VENV_RELATIVE = Path(".tools") / "ministack"
READY_PATH = "/_ministack/ready"

Printer = Callable[[str], None]


class MiniStackError(RuntimeError):
    """ministack could not be installed, started or reached."""


def _default_print(line: str) -> None:
    print(line, flush=True)


def venv_dir(repo_root: Path | str) -> Path:
    return Path(repo_root) / VENV_RELATIVE


def _installed_versions(python: Path) -> dict[str, str] | None:
    if not python.exists():
        return None
    code = (
        "import importlib.metadata as m, sys\n"
        "print('python', '%d.%d' % sys.version_info[:2])\n"
        "for n in ('ministack', 'aws-sam-translator', 'boto3'):\n"
        "    try:\n        print(n, m.version(n))\n"
        "    except m.PackageNotFoundError:\n        print(n, '-')\n"
    )
    proc = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=False)  # noqa: S603
    if proc.returncode != 0:
        return None
    return dict(line.split(" ", 1) for line in proc.stdout.splitlines() if " " in line)


def _wanted_versions() -> dict[str, str]:
    return {"python": python_version(), **dict(req.split("==", 1) for req in REQUIREMENTS)}


def ensure_installed(repo_root: Path | str, *, out: Printer = _default_print, python: str | None = None) -> Path:
    """Make sure ``.tools/ministack`` holds the pinned ministack; return the path of its ``ministack`` script.

    Creates the venv (with the template's runtime interpreter unless ``python`` is given; a venv of another
    Python version is replaced) and pip-installs :data:`REQUIREMENTS` when the venv is missing or holds
    other versions. Prints one line per step.
    """
    venv = venv_dir(repo_root)
    vpython = venv / "bin" / "python"
    script = venv / "bin" / "ministack"
    installed = _installed_versions(vpython)
    if installed == _wanted_versions() and script.exists():
        return script
    if installed is not None and installed.get("python") != python_version():
        out(f"[ministack] {venv} has Python {installed.get('python')}, the runtime is {python_version()}: replacing it")
        shutil.rmtree(venv)
    if not vpython.exists():
        base = python or str(python_executable())
        out(f"[ministack] creating venv {venv} with {base}")
        venv.parent.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run([base, "-m", "venv", str(venv)], capture_output=True, text=True, check=False)  # noqa: S603
        if proc.returncode != 0:
            raise MiniStackError(f"could not create {venv}: {proc.stderr.strip() or proc.stdout.strip()}")
    out(f"[ministack] installing {' '.join(REQUIREMENTS)}")
    cmd = [str(vpython), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *REQUIREMENTS]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)  # noqa: S603
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-20:])
        raise MiniStackError(f"pip install into {venv} failed:\n{tail}")
    got = _installed_versions(vpython)
    if got != _wanted_versions():
        raise MiniStackError(f"{venv} holds {got}, wanted {_wanted_versions()}")
    out(f"[ministack] ready: ministack {MINISTACK_VERSION} in {venv}")
    return script


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now on ``host``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def is_ready(endpoint: str, timeout: float = 2.0) -> bool:
    """True when ministack at ``endpoint`` answers ``/_ministack/ready`` with HTTP 200."""
    try:
        with urllib.request.urlopen(endpoint.rstrip("/") + READY_PATH, timeout=timeout) as resp:  # noqa: S310
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def _wait_group_gone(pgid: int, timeout: float) -> None:
    """Wait until no process of group ``pgid`` is left (a killed worker lingers until it is reaped)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    raise MiniStackError(f"processes of group {pgid} still exist {timeout:.0f}s after SIGKILL")


class MiniStack:
    """ministack on ``127.0.0.1:<port>`` as a child process in its own process group.

    ``workdir`` gets ministack's temporary files (``TMPDIR``: the pid file and the unpacked code of every
    function, ``workdir/tmp/ministack-lambda-<function>-*``); ``log_path`` gets its stdout+stderr.
    Use as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        port: int,
        workdir: Path | str,
        log_path: Path | str,
        *,
        repo_root: Path | str | None = None,
        executable: Path | str | None = None,
        host: str = "127.0.0.1",
        extra_env: Mapping[str, str] | None = None,
        startup_timeout: float = 30.0,
        region: str = "us-east-1",
    ) -> None:
        self.port = port
        self.host = host
        self.workdir = Path(workdir)
        self.log_path = Path(log_path)
        self.region = region
        self.startup_timeout = startup_timeout
        self.extra_env = dict(extra_env or {})
        if executable is None:
            root = Path(repo_root) if repo_root is not None else Path(__file__).resolve().parents[3]
            executable = venv_dir(root) / "bin" / "ministack"
        self.executable = Path(executable)
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def environment(self) -> dict[str, str]:
        """The environment ministack (and therefore every function process) runs with.

        Functions inherit ministack's whole environment plus their template ``Environment``; host AWS
        settings are dropped so no real credentials or profiles leak in. ``AWS_ENDPOINT_URL`` is set to
        this emulator, which is what functions see unless their template sets it themselves.
        """
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MINISTACK_", "LOCALSTACK_"))}
        tmp = self.workdir / "tmp"
        env.update(
            {
                "BIND_HOST": self.host,
                "GATEWAY_PORT": str(self.port),
                "MINISTACK_HOST": self.host,
                "MINISTACK_REGION": self.region,
                "IOT_MTLS_ENABLED": "0",
                "SFTP_ENABLED": "0",
                "TMPDIR": str(tmp),
                "AWS_ENDPOINT_URL": self.endpoint,
                "AWS_ACCESS_KEY_ID": "test",
                "AWS_SECRET_ACCESS_KEY": "test",
                "AWS_DEFAULT_REGION": self.region,
                "AWS_REGION": self.region,
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(self.extra_env)
        return env

    def start(self) -> Self:
        if self._proc is not None and self._proc.poll() is None:
            return self
        if not self.executable.exists():
            raise MiniStackError(f"{self.executable} not found: run ministack.ensure_installed() first")
        if port_in_use(self.port, self.host):
            raise MiniStackError(f"{self.host}:{self.port} is already in use (another ministack?)")
        (self.workdir / "tmp").mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("wb")
        self._proc = subprocess.Popen(  # noqa: S603
            [str(self.executable)],
            cwd=self.workdir,
            env=self.environment(),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            code = self._proc.poll()
            if code is not None:
                self._close_log()
                self._proc = None
                raise MiniStackError(
                    f"ministack exited with code {code} during startup; last lines of {self.log_path}:\n"
                    f"{_tail(self.log_path)}"
                )
            if is_ready(self.endpoint, timeout=1.0):
                return self
            time.sleep(0.1)
        self.stop()
        raise MiniStackError(
            f"ministack not ready at {self.endpoint}{READY_PATH} after {self.startup_timeout:.0f}s; "
            f"last lines of {self.log_path}:\n{_tail(self.log_path)}"
        )

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the whole process group (ministack + function workers), SIGKILL what is left after
        ``timeout`` seconds, and remove the unpacked function code under ``workdir/tmp``."""
        proc = self._proc
        if proc is not None:
            pgid = proc.pid  # start_new_session=True: the child leads its own group
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pgid, signal.SIGKILL)
                proc.wait(timeout=5)
            # Function workers are in the same group; make sure none outlives ministack, and that they are
            # gone (not merely signalled) when stop() returns.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            _wait_group_gone(pgid, timeout=5.0)
            self._proc = None
        self._close_log()
        tmp = self.workdir / "tmp"
        if tmp.is_dir():
            for child in tmp.glob("ministack-*"):
                if child.is_dir():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        return _tail(self.log_path, lines)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
