"""The base image ``sam local`` runs keaplink's functions in: AWS's (``public.ecr.aws/lambda/python:<version>``)
where it can be pulled, else a stand-in built once (``keaplink/lambda-python:3.13-<hash of its recipe>``) and given
to ``sam`` with ``--invoke-image``. The stand-in provides what SAM's emulator expects at AWS's paths: the runtime's
CPython in ``/var/lang``, AWS's ``awslambdaric`` and a ``bootstrap`` in ``/var/runtime``, on a minimal Debian root
(debootstrap, needs root). What it is and is not: docs/running-locally.md, "sam local".

CLI: ``python -m keaplink_dev.local.lambda_image`` prints the image to use (building the stand-in if needed).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from keaplink_dev.local.aws import REPO_ROOT
from keaplink_dev.local.ministack import REQUIREMENTS as EMULATOR_REQUIREMENTS
from keaplink_dev.local.runtime import python_executable, python_version

Printer = Callable[[str], None]

STANDIN_REPOSITORY = "keaplink/lambda-python"
AWSLAMBDARIC = "awslambdaric==4.2.2"
# boto3 "as the runtime provides it": the version the local emulator (ministack) gives functions
_BOTO3 = next(r for r in EMULATOR_REQUIREMENTS if r.startswith("boto3=="))
RUNTIME_PACKAGES = (AWSLAMBDARIC, _BOTO3, "botocore==" + _BOTO3.split("==", 1)[1])
EXTRA_DEBIAN_PACKAGES = ("ca-certificates",)  # HTTPS from a function (a real Keap)
DEFAULT_MIRROR = "http://deb.debian.org/debian"
WORK_DIR = REPO_ROOT / ".tools" / "lambda-image"
PULL_TIMEOUT_S = 90
RECIPE_VERSION = 1  # bump when the build steps below change in a way the recipe does not show

# What AWS's python base image sets (its Dockerfile), minus what SAM overrides (entrypoint, command).
IMAGE_ENV = {
    "LANG": "C.UTF-8",
    "TZ": ":/etc/localtime",
    "PATH": "/var/lang/bin:/usr/local/bin:/usr/bin:/bin",
    "LD_LIBRARY_PATH": "/var/lang/lib:/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:/var/task/lib:/opt/lib",
    "LAMBDA_TASK_ROOT": "/var/task",
    "LAMBDA_RUNTIME_DIR": "/var/runtime",
}

BOOTSTRAP_SH = """#!/bin/bash
# keaplink's stand-in for the Lambda Python runtime's bootstrap (devtools/keaplink_dev/local/lambda_image.py).
# SAM's runtime interface emulator starts this with _HANDLER set to the function's handler.
export AWS_EXECUTION_ENV=AWS_Lambda_python{version}
if [ -n "${{AWS_LAMBDA_EXEC_WRAPPER:-}}" ]; then
  exec -- "$AWS_LAMBDA_EXEC_WRAPPER" /var/lang/bin/python{version} /var/runtime/bootstrap.py "$@"
fi
exec /var/lang/bin/python{version} /var/runtime/bootstrap.py "$@"
"""

BOOTSTRAP_PY = '''"""keaplink's stand-in for the Lambda Python runtime's bootstrap.py: the import path as Lambda sets it
(task root, then the layer directories, then the runtime's own packages), then AWS's runtime client."""

import os
import site
import sys


def main() -> None:
    task_root = os.environ.get("LAMBDA_TASK_ROOT", "/var/task")
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    layer_dirs = [f"/opt/python/lib/python{version}/site-packages", "/opt/python"]
    user_pythonpath = "PYTHONPATH" in os.environ
    # sys.path[0] is /var/runtime (this file's directory): awslambdaric, boto3
    sys.path[0:0] = [task_root] + ([] if user_pythonpath else layer_dirs)
    for directory in [task_root] + ([] if user_pythonpath else layer_dirs):
        site.addsitedir(directory)  # .pth files, as on Lambda
    if not user_pythonpath:
        os.environ["PYTHONPATH"] = os.environ.get("LAMBDA_RUNTIME_DIR", "/var/runtime")
    handler = os.environ.get("_HANDLER") or (sys.argv[1] if len(sys.argv) > 1 else "")

    import awslambdaric.__main__ as runtime_client

    runtime_client.main([task_root, handler])


if __name__ == "__main__":
    main()
'''

# Python modules the image must import: the C extensions that need the Debian libraries, and the runtime.
IMAGE_CHECK = (
    "import bz2, ctypes, decimal, hashlib, json, lzma, readline, sqlite3, ssl, uuid, zlib, sys; "
    "sys.path.insert(0, '/var/runtime'); import awslambdaric, boto3, botocore; "
    "print(sys.version.split()[0], sys.prefix, ssl.OPENSSL_VERSION, 'boto3', boto3.__version__)"
)


class ImageError(RuntimeError):
    """The image for ``sam local`` could not be found or built (the message says why and what to do)."""


def _say(line: str) -> None:
    print(line, flush=True)


def aws_image(version: str | None = None) -> str:
    return f"public.ecr.aws/lambda/python:{version or python_version()}"


# ------------------------------------------------------------------------------------------ docker


def _docker(*args: str, timeout: float | None = None, check: bool = False) -> subprocess.CompletedProcess[str]:
    try:
        proc = subprocess.run(  # noqa: S603
            ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False  # noqa: S607
        )
    except FileNotFoundError as exc:
        raise ImageError("docker not found: run `make docker`") from exc
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(["docker", *args], 124, "", f"timed out after {timeout:.0f}s")
    if check and proc.returncode != 0:
        raise ImageError(f"docker {' '.join(args[:2])} failed: {(proc.stderr or proc.stdout).strip()}")
    return proc


def image_exists(tag: str) -> bool:
    return _docker("image", "inspect", tag).returncode == 0


def try_pull(image: str, timeout: float = PULL_TIMEOUT_S) -> tuple[bool, str]:
    """``(pulled, reason)``: ``docker pull image``, given up after ``timeout`` seconds."""
    proc = _docker("pull", "--quiet", image, timeout=timeout)
    if proc.returncode == 0:
        return True, ""
    last = (proc.stderr or proc.stdout).strip().splitlines()
    return False, last[-1] if last else f"exit {proc.returncode}"


# ------------------------------------------------------------------------------------------ recipe


@dataclass(frozen=True)
class Recipe:
    """Everything the stand-in is built from; its hash is the image tag's suffix."""

    python_version: str  # 3.13
    python_build: str  # sys.version of the interpreter copied in
    python_prefix: str  # where it is copied from
    debian_suite: str
    debian_packages: tuple[str, ...]
    runtime_packages: tuple[str, ...]
    bootstrap_sh: str
    bootstrap_py: str
    env: tuple[tuple[str, str], ...]
    recipe_version: int = RECIPE_VERSION

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]

    @property
    def tag(self) -> str:
        return f"{STANDIN_REPOSITORY}:{self.python_version}-{self.digest()}"


def _interpreter_info(exe: Path) -> tuple[Path, str]:
    code = "import sys; print(sys.base_prefix); print(sys.version.replace(chr(10), ' '))"
    proc = subprocess.run([str(exe), "-c", code], capture_output=True, text=True, check=False)  # noqa: S603
    if proc.returncode != 0:
        raise ImageError(f"{exe} does not run: {proc.stderr.strip()}")
    prefix, build = proc.stdout.splitlines()[:2]
    return Path(prefix), build


def self_contained_prefix(prefix: Path, version: str) -> Path:
    """``prefix`` if it holds a whole CPython (``bin/pythonN.N`` and ``lib/pythonN.N/os.py``) and is not
    the system's ``/usr`` (whose files are spread among everything else's)."""
    ok = (prefix / "bin" / f"python{version}").exists() and (prefix / "lib" / f"python{version}" / "os.py").exists()
    if not ok or prefix.resolve() in (Path("/usr"), Path("/usr/local"), Path("/")):
        raise ImageError(
            f"the stand-in image copies a self-contained Python {version} install into /var/lang, and {prefix} "
            f"is not one (a system Python). Install Python {version} with pyenv (`pyenv install {version}`), or "
            f"make {aws_image(version)} available to Docker."
        )
    return prefix


def _linked_files(prefix: Path, version: str) -> set[str]:
    """Shared libraries outside ``prefix`` that the interpreter and its extension modules link against."""
    targets = [prefix / "bin" / f"python{version}"]
    dynload = prefix / "lib" / f"python{version}" / "lib-dynload"
    targets += [p for p in sorted(dynload.glob("*.so")) if not p.name.startswith("_tkinter")]  # no Tk in Lambda
    proc = subprocess.run(["ldd", *map(str, targets)], capture_output=True, text=True, check=False)  # noqa: S603,S607
    found = set()
    for line in proc.stdout.splitlines():
        m = re.match(r"\s*\S+ => (/\S+) \(", line)
        if m and not m.group(1).startswith(str(prefix)):
            found.add(m.group(1))
    if not found:
        raise ImageError(f"ldd found no shared libraries for {targets[0]}: {proc.stderr.strip()}")
    return found


def debian_packages_for(files: set[str]) -> tuple[str, ...]:
    """The Debian packages that own ``files`` (``dpkg -S``, trying both sides of the /usr merge)."""
    packages = set()
    for path in sorted(files):
        for candidate in (path, "/usr" + path if not path.startswith("/usr/") else path[4:]):
            proc = subprocess.run(["dpkg", "-S", candidate], capture_output=True, text=True, check=False)  # noqa: S603,S607
            if proc.returncode == 0:
                packages.add(proc.stdout.split(":", 1)[0].strip())
                break
        else:
            raise ImageError(f"no Debian package owns {path} (dpkg -S): the stand-in is built on Debian only")
    return tuple(sorted(packages))


def host_debian_suite() -> str:
    try:
        fields = dict(
            line.split("=", 1) for line in Path("/etc/os-release").read_text().splitlines() if "=" in line
        )
    except OSError:
        fields = {}
    if fields.get("ID", "").strip('"') != "debian" or not fields.get("VERSION_CODENAME"):
        raise ImageError("the stand-in image is built with Debian's debootstrap from this Debian host's packages; "
                         "this host is not Debian")
    return fields["VERSION_CODENAME"].strip('"')


def recipe() -> Recipe:
    version = python_version()
    prefix, build = _interpreter_info(python_executable())
    prefix = self_contained_prefix(prefix, version)
    packages = debian_packages_for(_linked_files(prefix, version))
    return Recipe(
        python_version=version,
        python_build=build,
        python_prefix=str(prefix),
        debian_suite=host_debian_suite(),
        debian_packages=tuple(sorted({*packages, *EXTRA_DEBIAN_PACKAGES} - {"libc6"})),
        runtime_packages=RUNTIME_PACKAGES,
        bootstrap_sh=BOOTSTRAP_SH.format(version=version),
        bootstrap_py=BOOTSTRAP_PY,
        env=tuple(sorted(IMAGE_ENV.items())),
    )


# ------------------------------------------------------------------------------------------ build


@contextlib.contextmanager
def _build_lock() -> Iterator[None]:
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    with (WORK_DIR / "build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another build of the same image waits here, then finds it built
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _run_logged(cmd: list[str], log: Path, what: str, env: dict[str, str] | None = None) -> None:
    with log.open("a") as out:
        out.write(f"\n$ {' '.join(cmd)}\n")
        out.flush()
        proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, check=False)  # noqa: S603
    if proc.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        raise ImageError(f"{what} failed (exit {proc.returncode}); last lines of {log}:\n{tail}")


def _copy_python(prefix: Path, version: str, dest: Path) -> None:
    lib = f"lib/python{version}"
    skip_dirs = {f"{lib}/test", f"{lib}/idlelib", f"{lib}/tkinter", f"{lib}/turtledemo", f"{lib}/site-packages"}

    def ignore(directory: str, names: list[str]) -> set[str]:
        rel = os.path.relpath(directory, prefix)
        skipped = {n for n in names if f"{rel}/{n}".removeprefix("./") in skip_dirs}
        if rel == lib:  # config-N.N-<arch>/: the static library and Makefile for building CPython itself
            skipped |= {n for n in names if n.startswith(f"config-{version}")}
        return skipped | {n for n in names if n.startswith("_tkinter")}

    shutil.copytree(prefix, dest, symlinks=True, ignore=ignore)
    (dest / lib / "site-packages").mkdir()


def build_standin(r: Recipe, out: Printer = _say, mirror: str | None = None) -> str:
    """Build the stand-in for ``r`` and tag it ``r.tag``; return the tag."""
    if os.geteuid() != 0:
        raise ImageError("building the stand-in image needs root (debootstrap); run it as root once, or make "
                         f"{aws_image(r.python_version)} available to Docker")
    if not shutil.which("debootstrap"):
        raise ImageError("debootstrap not found: run `make docker` (it installs docker.io and debootstrap)")
    mirror = mirror or os.environ.get("KEAPLINK_DEBIAN_MIRROR", DEFAULT_MIRROR)
    build = WORK_DIR / f"build-{r.digest()}"
    rootfs = build / "rootfs"
    log = WORK_DIR / f"build-{r.digest()}.log"
    shutil.rmtree(build, ignore_errors=True)
    build.mkdir(parents=True)
    log.write_text(f"recipe: {json.dumps(asdict(r), indent=2)}\n")
    start = time.monotonic()
    out(f"[lambda image] building the stand-in {r.tag} (about a minute; log: {log})")
    try:
        out(f"[lambda image]   1/5 Debian {r.debian_suite} root file system (debootstrap minbase + "
            f"{', '.join(r.debian_packages)})")
        _run_logged(["debootstrap", "--variant=minbase", f"--include={','.join(r.debian_packages)}",
                     r.debian_suite, str(rootfs), mirror], log, "debootstrap")
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man",
                     "usr/share/locale"):
            shutil.rmtree(rootfs / junk, ignore_errors=True)
        out(f"[lambda image]   2/5 Python {r.python_build.split()[0]} from {r.python_prefix} -> /var/lang")
        _copy_python(Path(r.python_prefix), r.python_version, rootfs / "var" / "lang")
        out(f"[lambda image]   3/5 {', '.join(r.runtime_packages)} -> /var/runtime (pip)")
        runtime_dir = rootfs / "var" / "runtime"
        _run_logged([str(python_executable()), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                     "--no-warn-script-location", "--target", str(runtime_dir), *r.runtime_packages],
                    log, "pip install into /var/runtime", env={**os.environ, "PIP_ROOT_USER_ACTION": "ignore"})
        (runtime_dir / "bootstrap").write_text(r.bootstrap_sh)
        (runtime_dir / "bootstrap").chmod(0o755)
        (runtime_dir / "bootstrap.py").write_text(r.bootstrap_py)
        for directory in ("var/task", "opt", "tmp"):
            (rootfs / directory).mkdir(parents=True, exist_ok=True)
        (rootfs / "tmp").chmod(0o1777)
        out("[lambda image]   4/5 docker import")
        changes = [arg for key, value in r.env for arg in ("--change", f"ENV {key}={value}")]
        changes += ["--change", "WORKDIR /var/task"]
        with subprocess.Popen(["tar", "-C", str(rootfs), "--numeric-owner", "-c", "."],  # noqa: S603,S607
                              stdout=subprocess.PIPE) as tar:
            assert tar.stdout is not None
            imported = subprocess.run(["docker", "import", *changes, "-", r.tag],  # noqa: S603,S607
                                      stdin=tar.stdout, capture_output=True, text=True, check=False)
            tar.stdout.close()
        if tar.returncode != 0 or imported.returncode != 0:
            raise ImageError(f"docker import failed: {imported.stderr.strip() or f'tar exit {tar.returncode}'}")
        out("[lambda image]   5/5 check: the image's Python imports its C extensions, awslambdaric and boto3")
        check = _docker("run", "--rm", "--network", "none", "--entrypoint", f"/var/lang/bin/python{r.python_version}",
                        r.tag, "-c", IMAGE_CHECK, timeout=120)
        if check.returncode != 0:
            _docker("rmi", r.tag)
            raise ImageError(f"the built image fails its check:\n{check.stderr.strip()}")
        out(f"[lambda image]   {check.stdout.strip()}")
    finally:
        shutil.rmtree(build, ignore_errors=True)
    _remove_older_standins(r)
    out(f"[lambda image] built {r.tag} in {time.monotonic() - start:.0f} s")
    return r.tag


def _remove_older_standins(r: Recipe) -> None:
    listed = _docker("images", STANDIN_REPOSITORY, "--format", "{{.Repository}}:{{.Tag}}")
    for tag in listed.stdout.split():
        if tag != r.tag and tag.startswith(f"{STANDIN_REPOSITORY}:{r.python_version}-"):
            _docker("rmi", tag)  # only untags it while SAM's images still build on it


def ensure_image(out: Printer = _say, *, pull: bool = True) -> str:
    """The image to pass to ``sam local … --invoke-image``: ``$KEAPLINK_LAMBDA_IMAGE`` if set, else AWS's
    (pulled now if possible), else the stand-in (built once, then cached)."""
    explicit = os.environ.get("KEAPLINK_LAMBDA_IMAGE")
    if explicit:
        return explicit
    aws = aws_image()
    if pull:
        pulled, reason = try_pull(aws)
        if pulled:
            return aws
    else:
        reason = "not pulled"
    if image_exists(aws):
        return aws
    r = recipe()
    if image_exists(r.tag):
        out(f"[lambda image] {aws} unavailable ({reason}); using the cached stand-in {r.tag}")
        return r.tag
    out(f"[lambda image] {aws} unavailable ({reason}); building a stand-in")
    with _build_lock():
        if image_exists(r.tag):  # built by another process meanwhile
            return r.tag
        return build_standin(r, out)


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Print the base image for sam local (build the stand-in if needed).")
    parser.add_argument("--no-pull", action="store_true", help=f"do not try to pull {aws_image()}")
    parser.add_argument("--recipe", action="store_true", help="print the stand-in's recipe and tag, build nothing")
    args = parser.parse_args(argv)
    try:
        if args.recipe:
            r = recipe()
            print(json.dumps({"tag": r.tag, **asdict(r)}, indent=2))
            return 0
        print(ensure_image(lambda line: print(line, file=sys.stderr, flush=True), pull=not args.no_pull))
    except ImageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
