"""Smoke test of the replay bench (tools/bench_replay.py): it runs end to end
and reports every figure, positive. Speeds are the bench's to report, not this
test's to assert."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_replay_bench_reports_every_figure():
    proc = subprocess.run([sys.executable, "-m", "tools.bench_replay", "--messages", "50", "--json"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(proc.stdout)

    replay, rt = r["replay"], r["round_trip"]
    assert replay["messages"] == 50 and replay["verified_in_order_once"] is True
    assert replay["elapsed_s"] > 0 and replay["rate_per_s"] > 0 and replay["ms_per_message"] > 0
    assert rt["messages"] == 50 and rt["rate_per_s"] > 0 and rt["median_ms"] > 0
    assert r["replay_vs_round_trip"] > 0

    hours = {h["interval_s"]: h for h in r["journal_per_charging_hour"]}
    assert set(hours) == {60, 10}
    for interval, h in hours.items():
        assert h["meter_values"] >= 3600 // interval - 1
        assert h["commits"] > 0 and h["fsync_commits"] > 0
        assert h["fsync_commits"] < h["commits"]  # sampled values are not fsync'd one by one
