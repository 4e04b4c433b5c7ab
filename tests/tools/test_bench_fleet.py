"""Smoke test of the fleet bench (tools/bench_fleet.py): two tiny fleets, short windows and
meter values every second so the windows hold round trips; every figure is reported,
positive and finite. The cost goals are the bench's to report, not this test's to assert."""

import json
import math
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SIZES = (5, 20)


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def test_quickest_fleet_bench_reports_every_figure():
    proc = subprocess.run([sys.executable, "-m", "tools.bench_fleet", "--json", "--sizes", ",".join(map(str, SIZES)),
                           "--window-s", "3", "--settle-s", "0.5", "--meter-interval-s", "1"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(proc.stdout)

    assert [f["stations"] for f in r["sizes"]] == list(SIZES)
    for f in r["sizes"]:
        n = f["stations"]
        assert f["ocpp_version"] == "1.6" and f["charging"] == n, f
        for key in ("mib_per_station", "fleet_rss_mib", "baseline_rss_mib", "cpu_ms_per_station_s", "cpu_pct",
                    "stations_per_core", "frames_per_s", "round_trips_per_s", "window_s"):
            assert _positive(f[key]), (n, key, f[key])
        assert f["mib_per_station"] < 50 and f["baseline_rss_mib"] > 5, f
        for key in ("idle_cpu_ms_per_station_s", "idle_cpu_pct", "baseline_cpu_pct", "csms_cpu_pct"):
            assert math.isfinite(f[key]) and f[key] >= 0, (n, key, f[key])  # 0 if under one clock tick
        latency = f["latency_ms"]
        assert latency["n"] > 0 and all(_positive(latency[q]) for q in ("p50", "p95", "p99"))
        assert latency["p50"] <= latency["p95"] <= latency["p99"] <= latency["max"]
        assert f["calls"].get("MeterValues", 0) > 0 and f["calls"]["StartTransaction"] == n
        assert f["lost"] == f["callerrors"] == f["invalid"] == 0, f
        assert 0 < f["loop_busy_pct"] <= 100
        assert f["stations_per_core"] == min(f["stations_per_core_cpu"], f["stations_per_loop"])
        assert abs(f["stations_per_core_cpu"] * f["cpu_ms_per_station_s"] - 1000) < 1e-6

    assert set(r["estimate"]) == {"stations_per_core", "from_stations"}
    assert _positive(r["estimate"]["stations_per_core"]) and r["estimate"]["from_stations"] in SIZES
    assert r["verify"] is None
    assert set(r["targets"]) == {"stations_per_core", "mib_per_station", "p99_ms"}

    from tools.bench_fleet import render

    text = render(r)  # the table a person reads, from the same figures
    assert "largest fleet one core sustains" in text and "MiB/stn" in text
