"""Cold-start figures for the four handlers, and the layer's size.

* Import time of ``functions/<name>/app.py`` in fresh interpreters (median of several runs), with the
  layer directory and the function directory on ``sys.path`` as Lambda has them (``/opt/python`` and
  ``/var/task``), and the resident memory (VmRSS) right after the import.
* The heaviest imports per handler, from ``python -X importtime`` (cumulative microseconds of each
  top-level package), to show what to import lazily.
* The layer's unzipped size: ``pip install --target`` of ``layers/keaplink/requirements.txt`` plus the
  ``keaplink`` package, with and without boto3/botocore (the Lambda runtime brings its own), and the
  ``.aws-sam/build/KeaplinkLayer`` directory when a ``sam build`` left one.

CLI: ``python -m keaplink_dev.perf.coldstart [--runs 5] [--no-layer]`` prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]
HANDLERS = ("admin", "callback", "refresh", "actions")
BOTO = ("boto3", "botocore", "s3transfer")
# Everything the Lambda Python runtime already has, i.e. boto3 and its dependencies.
RUNTIME_PROVIDED = (*BOTO, "jmespath", "dateutil", "python_dateutil", "six", "urllib3")

_PROBE = """
import sys, time, json
sys.path[:0] = [{function!r}, {layer!r}]
t0 = time.perf_counter()
import app
t1 = time.perf_counter()
rss = 0
with open("/proc/self/status") as f:
    for line in f:
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
print(json.dumps({{"import_ms": (t1 - t0) * 1000, "rss_kb": rss}}))
"""


def _env() -> dict[str, str]:
    """A Lambda-like environment: no PYTHONPATH, a region, nothing from the caller's AWS setup."""
    keep = ("PATH", "HOME", "LANG", "TMPDIR")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env.update({"AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1", "PYTHONHASHSEED": "0"})
    return env


def _probe(name: str, importtime: bool = False) -> tuple[dict[str, Any], str]:
    script = _PROBE.format(function=str(ROOT / "functions" / name), layer=str(ROOT / "layers" / "keaplink"))
    cmd = [sys.executable, *(["-X", "importtime"] if importtime else []), "-c", script]
    done = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=120, check=False)  # noqa: S603 - our own interpreter
    if done.returncode != 0:
        raise RuntimeError(f"importing functions/{name}/app.py failed:\n{done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result, done.stderr


def top_imports(importtime_log: str, limit: int = 6) -> list[dict[str, Any]]:
    """Third-party and stdlib packages imported directly by the handler or by ``keaplink`` (``boto3`` via
    ``keaplink.aws``), by cumulative import time: the candidates for a lazy import. ``-X importtime``
    prints a module's nested imports before it, more deeply indented."""
    rows: list[tuple[int, str, int]] = []  # (cumulative us, module, depth)
    for line in importtime_log.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        parts = line[len("import time:"):].split("|")
        if len(parts) != 3:
            continue
        raw = parts[2].rstrip()
        rows.append((int(parts[1].strip()), raw.strip(), (len(raw) - len(raw.lstrip(" "))) // 2))
    entries: list[tuple[int, str, str]] = []
    for i, (cumulative, module, depth) in enumerate(rows):
        parent = next((m for _, m, d in rows[i + 1:] if d < depth), "")
        package = module.split(".")[0]
        if package in ("app", "keaplink", "encodings", "site") or parent.split(".")[0] not in ("app", "keaplink"):
            continue
        entries.append((cumulative, module, parent or "-"))
    entries.sort(reverse=True)
    return [{"module": m, "via": p, "ms": round(us / 1000, 1)} for us, m, p in entries[:limit]]


def measure_imports(runs: int = 5) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name in HANDLERS:
        _probe(name)  # warm the bytecode cache, as a deployed package with .pyc files would be
        samples = [_probe(name)[0] for _ in range(runs)]
        _, log = _probe(name, importtime=True)
        out[name] = {
            "import_ms_median": round(statistics.median(s["import_ms"] for s in samples), 1),
            "import_ms_all": [round(s["import_ms"], 1) for s in samples],
            "rss_mb_median": round(statistics.median(s["rss_kb"] for s in samples) / 1024, 1),
            "top_imports": top_imports(log),
        }
    return out


def _files(directory: Path, pyc: bool) -> int:
    return sum(f.stat().st_size for f in directory.rglob("*")
               if f.is_file() and not f.is_symlink() and (pyc or "__pycache__" not in f.parts))


def dir_size(path: Path, exclude_top: tuple[str, ...] = (), pyc: bool = True) -> int:
    """Bytes under ``path``, leaving out top-level entries named after ``exclude_top`` distributions."""
    total = 0
    for entry in path.iterdir():
        top = entry.name.split("-")[0].split(".")[0].lower()
        if top in exclude_top or entry.is_symlink():
            continue
        if entry.is_dir():
            total += _files(entry, pyc)
        elif entry.is_file():
            total += entry.stat().st_size
    return total


def measure_layer(timeout_s: float = 300.0) -> dict[str, Any]:
    """Build the layer exactly as ``sam build`` does (``layers/keaplink/Makefile``, which leaves out what
    the Lambda runtime provides) into a temporary directory, and measure what would be deployed."""
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="keaplink-layer-") as tmp:
        target = Path(tmp) / "python"
        cmd = ["make", "-s", "-C", str(ROOT / "layers" / "keaplink"), "build-KeaplinkLayer", f"ARTIFACTS_DIR={tmp}",
               f"PYTHON={sys.executable}"]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s,  # noqa: S603
                                  check=False)
        except subprocess.TimeoutExpired:
            result["error"] = f"layer build timed out after {timeout_s:.0f}s"
        else:
            if done.returncode != 0:
                result["error"] = "layer build failed: " + done.stderr[-500:]
        if "error" not in result:
            result["total_mb"] = round(dir_size(target) / 1e6, 2)
            result["without_boto_mb"] = round(dir_size(target, BOTO) / 1e6, 2)
            result["without_boto_no_pyc_mb"] = round(dir_size(target, BOTO, pyc=False) / 1e6, 2)
            result["without_runtime_provided_mb"] = round(dir_size(target, RUNTIME_PROVIDED) / 1e6, 2)
            sizes = {}
            for entry in target.iterdir():
                if entry.is_dir() and not entry.name.endswith(".dist-info") and entry.name != "bin":
                    sizes[entry.name] = _files(entry, True)
            result["largest_mb"] = {k: round(v / 1e6, 2)
                                    for k, v in sorted(sizes.items(), key=lambda kv: kv[1], reverse=True)[:6]}
    built = ROOT / ".aws-sam" / "build" / "KeaplinkLayer"
    if built.is_dir():
        base = built / "python" if (built / "python").is_dir() else built
        try:
            result["sam_build_total_mb"] = round(dir_size(base) / 1e6, 2)
            result["sam_build_without_boto_mb"] = round(dir_size(base, BOTO) / 1e6, 2)
        except OSError as exc:  # a `sam build` is rewriting the directory right now
            result.pop("sam_build_total_mb", None)
            result["sam_build_error"] = f"{type(exc).__name__}: {exc}"
    return result


def measure(runs: int = 5, layer: bool = True) -> dict[str, Any]:
    return {"handlers": measure_imports(runs), "layer": measure_layer() if layer else {}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m keaplink_dev.perf.coldstart", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-layer", action="store_true", help="skip the pip build of the layer")
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.runs, not args.no_layer), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
