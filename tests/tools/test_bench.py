"""Smoke test of the resource bench (tools/bench.py): it runs end to end and
reports every figure, positive and plausible. The speed and size targets are
the bench's to report, not this test's to assert."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_quick_bench_reports_every_figure():
    proc = subprocess.run([sys.executable, "-m", "tools.bench", "--quick", "--json"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(proc.stdout)

    rss = r["rss"]
    for key in ("agent_mib", "baseline_mib", "agent_after_idle_mib", "baseline_after_idle_mib"):
        assert 5 < rss[key] < 1000, (key, rss[key])
    assert abs(rss["ratio"] - rss["agent_mib"] / rss["baseline_mib"]) < 1e-6

    boot = r["boot"]
    assert 0 < boot["baseline_s"] < 30 and 0 < boot["agent_s"] < 30
    assert len(boot["agent_runs_s"]) == len(boot["baseline_runs_s"]) == r["settings"]["repeats"] >= 1
    assert boot["ratio"] > 0

    idle = r["idle_cpu"]
    assert idle["window_s"] > 0
    assert 0 <= idle["agent_pct"] <= 100 and 0 <= idle["baseline_pct"] <= 100

    mv = r["meter_values"]
    assert mv["messages"] >= 1
    assert mv["payload"]["meterValue"][0]["sampledValue"], "the agent's MeterValues carried no sample"
    for key in ("agent_ms", "stock_triggered_ms", "stock_sync_validation_ms", "stock_call_ms"):
        assert 0 <= mv[key] < 1000, (key, mv[key])  # ms of CPU per round trip; 0 if under one clock tick
    assert sum(mv["cpu_s"].values()) > 0, "no CPU measured for any charger"
    assert 5 < mv["agent_rss_mib"] < 1000 and 5 < mv["stock_cp_rss_mib"] < 1000

    assert set(r["targets_met"]) == {"rss_ratio", "idle_cpu", "meter_values_cpu"}
    assert all(isinstance(v, bool) for v in r["targets_met"].values())
