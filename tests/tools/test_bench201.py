"""Smoke test of the OCPP 2.0.1 bench (tools/bench201.py): it runs end to end on
loopback and reports every figure, positive and plausible. The figures themselves
are the bench's to report, not this test's to assert."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_quick_bench201_reports_every_figure():
    proc = subprocess.run([sys.executable, "-m", "tools.bench201", "--quick", "--json"], cwd=ROOT,
                          capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(proc.stdout)

    rss = r["rss"]
    for key in ("agent_201_mib", "agent_16_mib", "baseline_mib"):
        assert 5 < rss[key] < 1000, (key, rss[key])
    assert abs(rss["ratio_201_vs_16"] - rss["agent_201_mib"] / rss["agent_16_mib"]) < 1e-6
    assert abs(rss["ratio_201_vs_baseline"] - rss["agent_201_mib"] / rss["baseline_mib"]) < 1e-6

    idle = r["idle_cpu"]
    assert idle["window_s"] > 0
    for key in ("agent_201_pct", "agent_16_pct", "baseline_pct"):
        assert 0 <= idle[key] <= 100, (key, idle[key])

    te = r["transaction_event"]
    assert te["messages"] >= 1
    payload = te["payload"]
    assert payload["eventType"] == "Updated" and payload["triggerReason"] == "Trigger"
    assert payload["meterValue"][0]["sampledValue"], "the agent's TransactionEvent carried no meter value"
    for key in ("agent_ms", "stock_triggered_ms", "stock_sync_validation_ms", "agent_background_ms"):
        assert 0 <= te[key] < 1000, (key, te[key])  # ms of CPU per round trip; 0 if under one clock tick
    assert sum(te["cpu_s"].values()) > 0, "no CPU measured for any charging station"
    assert 5 < te["agent_rss_mib"] < 1000 and 5 < te["stock_cp_rss_mib"] < 1000


def test_bench201_table_names_each_figure():
    from tools.bench201 import render

    r = {"settings": {"quick": True, "settle_s": 1.0, "idle_s": 2.0, "messages": 4, "warmup": 1,
                      "bytecode_cache": True},
         "versions": {"python": "3", "ocpp": "2", "websockets": "1"}, "clock_tick_s": 0.01,
         "rss": {"agent_201_mib": 40.0, "agent_16_mib": 36.0, "baseline_mib": 24.0, "ratio_201_vs_16": 40 / 36,
                 "ratio_201_vs_baseline": 40 / 24, "ratio_16_vs_baseline": 1.5},
         "idle_cpu": {"window_s": 2.0, "agent_201_pct": 0.0, "agent_16_pct": 0.5, "baseline_pct": 0.0,
                      "cpu_s": {"agent_201": 0.0, "agent_16": 0.01, "baseline": 0.0}},
         "transaction_event": {"messages": 4, "payload": {"meterValue": [{"sampledValue": [{}, {}]}]},
                               "agent_ms": 2.0, "stock_triggered_ms": 2.5, "stock_sync_validation_ms": 0.0,
                               "ratio": 0.8, "ratio_vs_sync_validation": None, "agent_background_pct": 0.1,
                               "agent_background_ms": 0.01, "agent_wall_ms": 5.0, "stock_wall_ms": 6.0,
                               "agent_rss_mib": 41.0, "stock_cp_rss_mib": 33.0, "rss_ratio": 41 / 33}}
    table = render(r)
    for text in ("1 Idle RSS, vs the agent on 1.6", "vs the bare import", "3 CPU per TransactionEvent round trip",
                 "2.000 ms", "2.500 ms", "0.80x", "1.11x", "1.67x", "2 sampled values"):
        assert text in table, text
