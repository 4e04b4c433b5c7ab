"""Smoke test of the TLS bench (tools/bench_tls.py): it runs end to end on loopback with
--quick, connects in every mode (ws://, wss:// with a server certificate, wss:// with a
client certificate) and reports every figure, positive and plausible. The timings are the
bench's to report, not this test's to judge."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_quick(*extra) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "tools.bench_tls", "--quick", *extra], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_quick_bench_tls_reports_every_mode():
    r = json.loads(run_quick("--json").stdout)
    assert r["settings"]["repetitions"] >= 2
    modes = r["modes"]
    assert set(modes) == {"ws", "wss", "wss_client"}
    for name, m in modes.items():
        for figure in ("connect", "boot"):
            f = m[figure]
            assert f["n"] == r["settings"]["repetitions"]
            assert 0 < f["median_ms"] <= f["p95_ms"] < 10_000, (name, figure, f)
            assert 0 < f["first_ms"] < 20_000, (name, figure, f)
        assert m["connect"]["median_ms"] <= m["boot"]["median_ms"], name  # the boot comes after the connection
        assert 5 < m["rss_before_mib"] <= m["rss_connected_mib"] < 1000, (name, m)
        assert abs(m["rss_cost_mib"] - (m["rss_connected_mib"] - m["rss_before_mib"])) < 1e-6
        assert abs(m["rss_connected_ratio"] - m["rss_connected_mib"] / modes["ws"]["rss_connected_mib"]) < 1e-6
        assert not m["cryptography_before"], name  # the agent's imports leave cryptography out
    assert modes["ws"]["boot_ratio"] == 1.0
    assert modes["wss_client"]["cryptography_connected"]  # the charger certificate is read with it
    ci = r["cryptography_import"]
    assert not ci["loaded_by_agent"] and 0 < ci["cost_mib"] < 200, ci


def test_quick_bench_tls_prints_a_table_with_each_row():
    out = run_quick().stdout
    for text in ("ws:// (profile 1)", "wss:// server cert (profile 2)", "wss:// client cert (profile 3)",
                 "agent RSS", "import agent.security.certificates (cryptography)", "1.00x", "openssl"):
        assert text in out, text
