"""The README's first quick-start command: ``ocpp-agent demo`` runs a whole session."""

import io
import subprocess
import sys

from tools.demo import run_demo


async def test_demo_runs_a_full_session_and_prints_a_summary(capsys):
    peer_lines = io.StringIO()
    status = await run_demo(speed=1200, out=peer_lines)
    printed = capsys.readouterr().out
    assert status == 0, printed
    assert "session complete" in printed
    assert "energy        20.00 kWh" in printed  # the simulated EV stops itself at 20 kWh
    traffic = peer_lines.getvalue()
    for action in ("BootNotification", "Authorize", "StartTransaction", "MeterValues", "StopTransaction"):
        assert "→ %s" % action in traffic
    assert "status=SuspendedEV" in traffic and "reason=Local" in traffic


def test_demo_command_line_exits_zero():
    done = subprocess.run([sys.executable, "-m", "agent.app.cli", "demo", "--speed", "6000"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "session complete" in done.stdout


async def test_demo_in_ocpp_201_reads_the_transaction_events(capsys):
    peer_lines = io.StringIO()
    status = await run_demo(speed=1200, out=peer_lines, ocpp="2.0.1")
    printed = capsys.readouterr().out
    assert status == 0, printed
    assert "session complete" in printed and "summary (OCPP 2.0.1)" in printed
    assert "energy        20.00 kWh (Energy.Active.Import.Register: Started 0 Wh, Ended 20000 Wh)" in printed
    assert "stoppedReason Local" in printed
    traffic = peer_lines.getvalue()
    assert "subprotocol=ocpp2.0.1" in traffic
    for action in ("BootNotification", "Authorize", "TransactionEvent eventType=Started",
                   "TransactionEvent eventType=Updated", "TransactionEvent eventType=Ended"):
        assert "→ %s" % action in traffic
    assert "StartTransaction" not in traffic and "CALLERROR" not in traffic and ".error" not in traffic
    assert "connectorStatus=Occupied" in traffic and "transactionInfo.stoppedReason=Local" in traffic


def test_demo_command_line_runs_ocpp_201():
    done = subprocess.run([sys.executable, "-m", "agent.app.cli", "demo", "--speed", "6000", "--ocpp", "2.0.1"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "session complete" in done.stdout and "subprotocol=ocpp2.0.1" in done.stdout
    assert "summary (OCPP 2.0.1)" in done.stdout
