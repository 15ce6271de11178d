"""The benchmark's smoke variant runs end to end and its per-event counts are exact (no timing asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_bench_smoke_counts_are_exact(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(ROOT / d) for d in ("devtools", "layers/keaplink",
                                                                                 "sandbox", "."))}
    for key in [k for k in env if k.startswith(("AWS_", "KEAP_", "POWERTOOLS_"))]:
        env.pop(key)
    done = subprocess.run([sys.executable, "-m", "keaplink_dev.bench", "--smoke", "--json", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "figure" in done.stdout and "measured" in done.stdout

    results = json.loads(out.read_text())
    counts = results["counts"]
    assert counts["signup_calls_per_event"] == 2  # looked up by e-mail, then created
    assert counts["known_signup_calls_per_event"] == 1  # found: nothing of the customer's contact is written
    assert counts["known_first_press_calls_per_event"] == 0  # it had the tag already
    assert counts["first_press_calls_per_event"] * counts["first_press_batch"] == 1  # one call for the batch
    assert counts["repeat_press_calls_per_event"] == 0
    assert counts["token_reads_per_batch_max"] <= 1

    throughput = results["throughput"]
    assert throughput["token_reads_per_batch_max"] <= 1
    assert throughput["lost"] == 0
    assert throughput["dlq"] == 0
    assert throughput["queue_left"] == 0
    assert results["naive"]["lost"] == 0
    assert {row["figure"] for row in results["rows"]} >= {"Keap calls / user.signed_up, new contact",
                                                          "token-store reads / SQS batch (max)"}
