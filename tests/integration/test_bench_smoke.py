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
    done = subprocess.run([sys.executable, "-m", "keaplink_dev.perf.bench", "--smoke", "--json", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "figure" in done.stdout and "measured" in done.stdout

    results = json.loads(out.read_text())
    counts = results["counts"]
    assert counts["signup_calls_per_event"] == 2  # looked up by e-mail, then created
    assert counts["known_signup_calls_per_event"] == 1  # found: nothing of the customer's contact is written
    assert counts["known_first_press_calls_per_event"] == 0  # it had the tag already
    assert counts["first_press_calls"] == 1  # five first presses in one batch: one applyTags call
    assert counts["repeat_press_calls_per_event"] == 0
    assert counts["untag_batch_calls"] == 1  # five untags in one batch: one removeTags call
    assert counts["goal_calls_per_event"] == 1 and counts["repeat_goal_calls_per_event"] == 0
    assert counts["note_calls_per_event"] <= 1.2 and counts["fields_calls_per_event"] <= 2.2
    assert counts["token_reads_per_batch_max"] <= 1

    # The event source as template.yaml sets it: 200 presses at once are two full batches, one call each.
    source = results["event_source"]
    assert (source["batch_size"], source["concurrency"]) == (100, 2)
    burst = results["burst"]
    assert (burst["events"], burst["batches"], burst["batch_size_max"]) == (200, 2, 100)
    assert burst["keap_requests"] == burst["apply_tags_calls"] == 2
    assert burst["presses_per_keap_call"] == 100
    # The 50/50 mixes: a new person's signup is 2 calls, a known person's 1, the presses share calls.
    new, known = results["mix_new"], results["mix_known"]
    assert new["keap_requests"] == 2 * 20 + new["apply_tags_calls"]
    assert known["keap_requests"] == 20 + known["apply_tags_calls"]
    # The naive way: 2 calls per signup (search, create), 3 per press (search, tag lookup, apply).
    assert results["naive"]["calls_per_event_by_type"] == {"user.signed_up": 2, "button.pressed": 3}

    for run in ("burst", "mix_new", "mix_known", "light", "mix_new_slow"):
        assert results[run]["token_reads_per_batch_max"] <= 1, run
        assert results[run]["throttled_429"] == 0, run
        assert results[run]["records_returned"] == 0, run
    for run in ("burst", "mix_new", "mix_known", "light", "mix_new_slow", "naive", "naive_slow"):
        assert results[run]["lost"] == 0, run
    assert {row["figure"] for row in results["rows"]} >= {"Keap calls / user.signed_up, new contact",
                                                          "token-store reads / SQS batch (max)"}
