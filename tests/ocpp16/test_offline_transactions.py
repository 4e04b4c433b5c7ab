"""OCTT 1.6 power-failure and offline scenarios, and the durable transaction journal.

Each OCTT test follows the steps and tool validations of one test case of
spec/octt-1.6-test-case-document-2024-04.txt with the real agent on the
simulated board against the test central system on loopback, in virtual time.

How the faults are made:

* **connection loss**: the central system stops listening and drops the
  websocket (``offline``); it comes back on the same port (``online``) and the
  agent reconnects after its backoff;
* **power cut / crash** (``power_cut``): the agent's tasks die where they are,
  the websocket is aborted without a close frame, nothing is flushed and no
  clean-shutdown mark is written — what the journal file holds is what a
  ``kill -9`` would leave. The simulated hardware loses its supply too (no
  current offered, contactor open) but keeps its state, as real hardware does:
  the EV stays plugged in, the meter keeps its register. One test does the real
  thing: ``ocpp-agent run`` as a process, killed with SIGKILL.
"""

import asyncio
import json
import logging
import os
import sqlite3
import sys
from math import nextafter

from pytest import approx

from agent.store.journal import TransactionJournal
from agent.ocpp16.codec import iso_time
from tests.harness import (AgentHarness, assert_charging_hw, assert_no_power, epoch, hw, index_of, quiet,
                           reach_charging, statuses, until)
from tests.harness import keys as base_keys
from tools.csms import IN, OUT, TestCentralSystem

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TAG = "TAG-1"
OTHER_TAG = "TAG-OFFLINE"
TX_ID = 4711  # the transactionId the central system assigns
INTERVAL_S = 60  # MeterValueSampleInterval of these tests
MIDNIGHT = 1_767_225_600.0  # 2026-01-01T00:00:00Z, the VirtualClock's start
FAST_RECONNECT = {"reconnect_initial_s": 1.0, "reconnect_max_s": 1.0}


# ---------------------------------------------------------------------- helpers

def keys(**values) -> dict:
    """Initial OCPP configuration keys: websocket pings off, MeterValueSampleInterval of these tests."""
    return base_keys(**dict({"MeterValueSampleInterval": INTERVAL_S}, **values))


def harness(tmp_path, ocpp: dict | None = None, **kwargs) -> AgentHarness:
    kwargs.setdefault("csms_extra", FAST_RECONNECT)
    return AgentHarness(tmp_path, ocpp=keys(**(ocpp or {})), **kwargs)


def tx_calls(h, start: int = 0) -> list:
    """The transaction messages the agent sent since ``start``, in order."""
    return [(m.action, m.payload) for m in h.cs.messages[start:]
            if m.direction == IN and (m.action in ("StartTransaction", "StopTransaction")
                                      or (m.action == "MeterValues" and "transactionId" in m.payload))]


def energy_of(meter_values_payload: dict) -> list:
    """Energy.Active.Import.Register values (Wh) in a MeterValues.req, in order."""
    return [float(s["value"]) for mv in meter_values_payload["meterValue"] for s in mv["sampledValue"]
            if s.get("measurand", "Energy.Active.Import.Register") == "Energy.Active.Import.Register"]


def assign_ids(h, first_id: int = TX_ID, reject: tuple = ()) -> list:
    """The central system answers StartTransaction with ``first_id``, ``first_id + 1``…
    (Invalid for tags in ``reject``); returns the list of ids it gave."""
    given = []

    def start(payload):
        given.append(first_id + len(given))
        status = "Invalid" if payload["idTag"] in reject else "Accepted"
        return {"transactionId": given[-1], "idTagInfo": {"status": status}}

    h.cs.handlers["StartTransaction"] = start
    return given


async def charging(h, id_tag: str = TAG, connector_id: int = 1) -> int:
    """The OCTT reusable state Charging (plug in, remote start); returns the transactionId."""
    if "StartTransaction" not in h.cs.handlers:
        assign_ids(h)
    await h.wait_status(connector_id, "Available")
    return (await reach_charging(h, connector_id, id_tag))["transactionId"]


async def power_cut(h) -> None:
    """Cut the power of the charger (or kill -9 the agent) in the middle of whatever it does.

    The agent's tasks die where they are: no clean-shutdown mark, no final journal
    checkpoint, the websocket aborted without a close frame. The hardware loses its
    supply (nothing offered, contactor open) and keeps its state (EV, meter register)."""
    agent = h.agent
    ws = agent.connection._ws
    if ws is not None:
        ws.transport.abort()
    station = agent.station
    station._running = False
    tasks = [agent._conn_task] + station._tasks + list(station._conn_tasks.values())
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    if agent._sim_server is not None:
        await agent._sim_server.close()
    if agent._security_watch is not None:  # its task dies too (it writes nothing on the way out)
        await agent._security_watch.close()
    if agent.status_page is not None:  # so do the page's (its session recorder) and its port
        await agent.status_page.close()
    agent.journal._db.close()  # committed rows are in the file (and its WAL); nothing more
    for c in agent.loaded.sim.connectors:  # the supply is gone: the outputs drop
        await c.contactor.set_closed(False)
        await c.evse.set_current_limit(0)
    await agent.loaded.board.close()  # the simulated hardware persists its state (sim-state.json)
    agent.stopped.set()


async def power_on(h):
    """Start the agent again on the same data_dir (the charger boots)."""
    m = h.mark()
    await h.start_agent()
    return m


class FlakyDb:
    """The journal's sqlite connection, with writes failing on demand (a disk I/O error)."""

    def __init__(self, db) -> None:
        self.db = db
        self.failing = False
        self.failed = 0

    def execute(self, sql: str, *args):
        if self.failing and not sql.startswith("ROLLBACK"):
            self.failed += 1
            raise sqlite3.OperationalError("disk I/O error")
        return self.db.execute(sql, *args)

    def __getattr__(self, name):
        return getattr(self.db, name)


def journal_rows(h) -> tuple:
    """(transactions, messages) as the journal file holds them now."""
    db = sqlite3.connect(TransactionJournal.path_in(h.agent.config.data_dir))
    try:
        txs = [json.loads(d) for (d,) in db.execute("SELECT data FROM tx ORDER BY local_id")]
        msgs = [(k, lid) for k, lid in db.execute("SELECT kind, local_id FROM msg ORDER BY jseq")]
    finally:
        db.close()
    return txs, msgs


# ---------------------------------------------------------------------- power failure

async def test_tc_032_1_power_failure_stops_transactions_before_going_down(tmp_path):
    """TC_032_1_CS Power failure boot charging point - configured to stop transaction(s)
    before going down: with a back-up source the charger ends the transaction (PowerLoss),
    reports Finishing, goes down; after the boot the connector is Finishing or Preparing."""
    async with harness(tmp_path) as h:
        tx_id = await charging(h)
        await h.clock.advance(2 * INTERVAL_S)
        energy = hw(h)["energy_wh"]
        m = h.mark()
        # [Disconnect the power]: the supply fails, the back-up source holds for a moment.
        await h.station.power_failure()
        # Steps 1-2: StopTransaction with reason PowerLoss, confirmed before going down.
        stop = await h.cs.wait_for("StopTransaction", start_index=m)
        assert stop["transactionId"] == tx_id and stop["reason"] == "PowerLoss"
        assert stop["meterStop"] == round(energy)
        assert index_of(h, "StopTransaction.conf", m, direction=OUT) >= 0
        # Steps 3-4: Finishing (the EV is still plugged in).
        await h.wait_status(1, "Finishing", m)
        assert_no_power(h)
        await power_cut(h)  # the back-up source runs out
        # [Reconnect the power]. Steps 5-6: BootNotification, Accepted.
        m = await power_on(h)
        await h.cs.wait_for("BootNotification", start_index=m)
        await until(lambda: h.agent.client.registration == "Accepted")
        # Steps 7-8: a StatusNotification per connector and for 0.
        await h.wait_status(0, "Available", m)
        first = await h.cs.wait_for("StatusNotification", lambda p: p["connectorId"] == 1, start_index=m)
        assert first["status"] in ("Finishing", "Preparing")
        assert index_of(h, "BootNotification", m) < index_of(h, "StatusNotification", m)
        await quiet(h)
        # The transaction was closed once, before going down: nothing more after the boot.
        assert len(h.received("StopTransaction")) == 1 and h.received("StartTransaction", m) == []
        assert h.station.recovered == [] and h.station.connector(1).transaction is None
        assert_no_power(h)


async def test_tc_032_2_power_cut_transaction_stopped_after_boot(tmp_path):
    """TC_032_2_CS Power failure boot charging point - configured to stop transaction(s)
    (no back-up source): the power goes at once; after the boot the agent ends the
    transaction it finds open with reason PowerLoss, meterStop from the meter register,
    exactly once; the connector (EV still plugged in) reports Finishing."""
    async with harness(tmp_path) as h:
        tx_id = await charging(h)
        start = h.received("StartTransaction")[-1]
        await h.clock.advance(3 * INTERVAL_S)
        await quiet(h)
        sampled = [e for p in h.received("MeterValues") for e in energy_of(p)]
        assert len(sampled) == 3 and sampled == sorted(sampled)
        await h.clock.advance(INTERVAL_S / 2)  # energy flows after the last sample
        energy = hw(h)["energy_wh"]
        # [Disconnect and reconnect the power of the Charge Point.]
        await power_cut(h)
        m = await power_on(h)
        # Steps 1-2: BootNotification, Accepted.
        await h.cs.wait_for("BootNotification", start_index=m)
        await until(lambda: h.agent.client.registration == "Accepted")
        # Step 5 (reason PowerLoss when stopped by the charger due to power loss).
        stop = await h.cs.wait_for("StopTransaction", start_index=m)
        assert stop["transactionId"] == tx_id and stop["reason"] == "PowerLoss"
        assert stop["meterStop"] == round(energy) >= max(sampled) >= start["meterStart"]
        # The stop time is the last moment the agent knew the transaction running: its last sample.
        assert epoch(stop["timestamp"]) == approx(epoch(start["timestamp"]) + 3 * INTERVAL_S, abs=0.002)
        assert "idTag" not in stop
        # Steps 3-4 (in any order with step 5): per connector and connectorId 0.
        await h.wait_status(0, "Available", m)
        await h.wait_status(1, "Finishing", m)
        assert set(statuses(h, 1, m)) <= {"Preparing", "Finishing", "Charging", "Available", "Unavailable"}
        assert_no_power(h)  # not resumed: the EV is plugged in but nothing is offered
        # Steps 7-8: Finishing was already reported; unplugging ends it.
        m2 = h.mark()
        h.sim.unplug(1)
        await h.wait_status(1, "Available", m2)
        # Exactly once, also across a further (clean) reboot.
        m3 = h.mark()
        await h.restart_agent()
        await h.cs.wait_for("BootNotification", start_index=m3)
        await h.wait_status(1, "Available", m3)
        await quiet(h)
        assert len(h.received("StopTransaction")) == 1
        assert journal_rows(h) == ([], [])


async def test_clean_stop_during_transaction_ends_it_with_reason_reboot(tmp_path):
    """A clean stop of the agent (service restart) during a transaction: the restarted
    agent ends it once with reason Reboot (OCPP 1.6: a locally initiated reboot)."""
    async with harness(tmp_path) as h:
        tx_id = await charging(h)
        await h.clock.advance(INTERVAL_S + 5)
        energy = hw(h)["energy_wh"]
        stopped_at = h.clock.time()
        m = h.mark()
        await h.restart_agent()
        await h.cs.wait_for("BootNotification", start_index=m)
        stop = await h.cs.wait_for("StopTransaction", start_index=m)
        assert stop["transactionId"] == tx_id and stop["reason"] == "Reboot"
        assert stop["meterStop"] == round(energy)
        # Stamped when the agent stopped (its last reading), not at the last sample.
        assert stop["timestamp"] == iso_time(stopped_at)
        await quiet(h)
        assert len(h.received("StopTransaction")) == 1


async def _sim_command(data_dir, command: str, *args) -> dict:
    reader, writer = await asyncio.open_unix_connection(os.path.join(str(data_dir), "sim.sock"))
    try:
        writer.write((json.dumps({"command": command, "args": list(args)}) + "\n").encode())
        await writer.drain()
        reply = json.loads(await reader.readline())
    finally:
        writer.close()
        await writer.wait_closed()
    assert reply["ok"], reply
    return reply["result"]


async def test_tc_032_2_kill_9_of_the_agent_process(tmp_path):
    """TC_032_2_CS end to end: ``ocpp-agent run`` as a process, killed with SIGKILL while
    charging. The restarted process sends StopTransaction (PowerLoss) for the same
    transactionId once, with meterStop not below any reading it reported; a third
    start sends nothing more."""
    data_dir = tmp_path / "data"
    async with TestCentralSystem(quiet=True, protocols=("ocpp1.6",)) as cs:
        config = tmp_path / "agent.toml"
        config.write_text(
            "[station]\nid = \"CPK\"\ndata_dir = %s\nlog_level = \"INFO\"\n\n[csms]\nurl = %s\n"
            "reconnect_initial_s = 0.2\nreconnect_max_s = 0.5\n\n"
            "[ocpp]\nWebSocketPingInterval = 0\nMeterValueSampleInterval = 1\n"
            % (json.dumps(str(data_dir)), json.dumps(cs.url)))
        log_path = tmp_path / "agent.log"
        env = dict(os.environ, PYTHONPATH=REPO, PYTHONUNBUFFERED="1")
        procs = []

        async def run_agent():
            with open(log_path, "ab") as log_file:
                proc = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "agent.app.cli", "run", "--config", str(config), cwd=REPO, env=env,
                    stdin=asyncio.subprocess.DEVNULL, stdout=log_file, stderr=log_file)
            procs.append(proc)
            return proc

        try:
            try:
                proc = await run_agent()
                station = await cs.wait_for_station("CPK", timeout_s=8)
                station.handlers["StartTransaction"] = lambda p: {
                    "transactionId": TX_ID, "idTagInfo": {"status": "Accepted"}}
                await station.wait_for("StatusNotification", lambda p: p["connectorId"] == 1, timeout_s=5)
                await _sim_command(data_dir, "plug", "1")
                await station.wait_for("StatusNotification",
                                       lambda p: p["connectorId"] == 1 and p["status"] == "Preparing")
                assert await station.call("RemoteStartTransaction", connectorId=1, idTag=TAG) == {
                    "status": "Accepted"}
                start = await station.wait_for("StartTransaction")
                await station.wait_for("StatusNotification",
                                       lambda p: p["connectorId"] == 1 and p["status"] == "Charging")
                # A few sampled meter values, then the plug is pulled on the controller.
                await until(lambda: len(_received(station, "MeterValues")) >= 2, 8, "no MeterValues")
                proc.kill()
                assert await asyncio.wait_for(proc.wait(), 5) == -9
                await until(lambda: not station.connected, 5, "station still connected")
                reported = [e for p in _received(station, "MeterValues") for e in energy_of(p)]
                assert _received(station, "StopTransaction") == []

                m = len(station.messages)
                proc = await run_agent()
                await station.wait_for("BootNotification", start_index=m, timeout_s=8)
                stop = await station.wait_for("StopTransaction", start_index=m, timeout_s=5)
                assert stop["transactionId"] == TX_ID and stop["reason"] == "PowerLoss"
                assert stop["meterStop"] >= round(max(reported)) >= start["meterStart"]  # meterStop: whole Wh
                assert epoch(stop["timestamp"]) >= epoch(start["timestamp"])
                status = await station.wait_for("StatusNotification", lambda p: p["connectorId"] == 1,
                                                start_index=m, timeout_s=5)
                assert status["status"] in ("Preparing", "Finishing", "Charging")
                await station.wait_for("StatusNotification",
                                       lambda p: p["connectorId"] == 0 and p["status"] == "Available",
                                       start_index=m, timeout_s=5)
                assert (await _sim_command(data_dir, "status"))["connectors"][0]["contactor_closed"] is False

                # Exactly once: a clean stop and a third start send no further StopTransaction.
                proc.terminate()
                assert await asyncio.wait_for(proc.wait(), 8) == 0
                m = len(station.messages)
                proc = await run_agent()
                await station.wait_for("BootNotification", start_index=m, timeout_s=8)
                await station.wait_for("StatusNotification", lambda p: p["connectorId"] == 1,
                                       start_index=m, timeout_s=5)
                await asyncio.sleep(0.3)
                assert len(_received(station, "StopTransaction")) == 1
                assert len(_received(station, "StartTransaction")) == 1
                proc.terminate()
                assert await asyncio.wait_for(proc.wait(), 8) == 0
            except BaseException:
                sys.stderr.write(log_path.read_text())
                raise
        finally:
            for proc in procs:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()


def _received(station, action: str) -> list:
    return [m.payload for m in station.messages if m.direction == IN and m.action == action]


async def test_tc_034_power_failure_with_unavailable_status(tmp_path):
    """TC_034_CS Power Failure with Unavailable Status: the charger set Inoperative
    (connectorId 0) is Unavailable again after a power cut and boot."""
    async with harness(tmp_path) as h:
        await h.wait_status(1, "Available")
        m = h.mark()
        # Steps 1-2: ChangeAvailability(0, Inoperative), Accepted.
        assert await h.cs.call("ChangeAvailability", connectorId=0, type="Inoperative") == {"status": "Accepted"}
        # Steps 3-4: Unavailable per connector and for 0.
        await h.wait_status(0, "Unavailable", m)
        await h.wait_status(1, "Unavailable", m)
        # [Disconnect and reconnect the power.] Steps 5-6: BootNotification, Accepted.
        await power_cut(h)
        m = await power_on(h)
        await h.cs.wait_for("BootNotification", start_index=m)
        await until(lambda: h.agent.client.registration == "Accepted")
        # Steps 7-8: still Unavailable, per connector and for 0; never Available in between.
        await h.wait_status(0, "Unavailable", m)
        await h.wait_status(1, "Unavailable", m)
        await quiet(h)
        assert statuses(h, 0, m) == ["Unavailable"] and statuses(h, 1, m) == ["Unavailable"]
        assert hw(h)["cp_state"] == "F" and not hw(h)["pwm_on"]
        # A driver cannot start anything there.
        h.sim.plug(1)
        await quiet(h)
        assert h.received("StartTransaction") == [] and h.received("Authorize", m) == []
        m = h.mark()
        assert await h.cs.call("ChangeAvailability", connectorId=0, type="Operative") == {"status": "Accepted"}
        await h.wait_status(0, "Available", m)
        await h.wait_status(1, "Preparing", m)


# ---------------------------------------------------------------------- offline behaviour

async def test_tc_036_connection_loss_during_transaction(tmp_path):
    """TC_036_CS Connection Loss During Transaction: the meter values sampled while the
    connection is lost are sent after it is back, in chronological order, MeterValueSampleInterval
    apart, with the transactionId, before any new meter values."""
    async with harness(tmp_path) as h:
        tx_id = await charging(h)
        start = h.received("StartTransaction")[-1]
        # [Remove the connectivity.] [Wait till the charge point samples a few (at least 3).]
        port = await h.go_offline()
        await h.clock.advance(4 * INTERVAL_S)
        assert len(h.station.outbox) == 4
        assert_charging_hw(h)  # charging goes on offline
        m = h.mark()
        # [Restore the connectivity.] Steps 1-2: all queued meter values.
        await h.go_online(port, step_s=0.25, timeout_s=5)
        await until(lambda: len(h.received("MeterValues", m)) >= 4)
        assert h.received("BootNotification", m) == []  # a reconnect is not a boot
        queued = h.received("MeterValues", m)
        times = [epoch(mv["timestamp"]) for p in queued for mv in p["meterValue"]]
        assert times == approx([epoch(start["timestamp"]) + k * INTERVAL_S for k in range(1, 5)], abs=0.002)
        assert all(p["transactionId"] == tx_id and p["connectorId"] == 1 for p in queued)
        energies = [e for p in queued for e in energy_of(p)]
        assert energies == sorted(energies) and energies[0] > start["meterStart"]
        await until(lambda: len(h.station.outbox) == 0)
        await h.wait_status(1, "Charging", m)  # the current status, not a history
        # New meter values come after the queued ones.
        await h.clock.advance(INTERVAL_S)
        await until(lambda: len(h.received("MeterValues", m)) == 5)
        new = h.received("MeterValues", m)[4]
        assert epoch(new["meterValue"][0]["timestamp"]) == approx(times[-1] + INTERVAL_S, abs=0.002)
        assert new["transactionId"] == tx_id
        assert [a for a, _p in tx_calls(h, m)] == ["MeterValues"] * 5


async def test_tc_038_offline_stop_transaction(tmp_path):
    """TC_038_CS Offline Stop Transaction: the driver stops while offline; after the
    connection is back, StopTransaction (reason Local) and Finishing."""
    async with harness(tmp_path) as h:
        tx_id = await charging(h)
        port = await h.go_offline()
        await h.clock.advance(30)
        energy = hw(h)["energy_wh"]
        # [The EV driver stops the transaction while offline.]
        h.sim.swipe(TAG)
        await until(lambda: h.station.connector(1).transaction is None)
        assert_no_power(h)
        m = h.mark()
        # [Restore the connectivity.] Steps 1-4 (1 and 3 in either order).
        await h.go_online(port, step_s=0.25, timeout_s=5)
        stop = await h.cs.wait_for("StopTransaction", start_index=m)
        assert stop["transactionId"] == tx_id and stop.get("reason", "Local") == "Local"
        assert stop["idTag"] == TAG and stop["meterStop"] == round(energy)
        await h.wait_status(1, "Finishing", m)
        assert h.received("Authorize") == []  # the tag of the transaction stops it without asking
        await until(lambda: len(h.station.outbox) == 0)
        assert journal_rows(h) == ([], [])


async def _offline_start(h, id_tag: str) -> None:
    """[EV driver starts a transaction offline]: plug in and present the tag."""
    m = h.mark()
    h.sim.plug(1)
    h.sim.swipe(id_tag)
    await until(lambda: h.station.connector(1).transaction is not None)
    await h.clock.settle()
    assert h.mark() == m  # nothing reached the central system
    tx = h.station.connector(1).transaction
    assert tx.backend_id is None
    assert_charging_hw(h)


LISTED_OFFLINE = {"LocalAuthorizeOffline": True, "LocalAuthListEnabled": True, "AuthorizationCacheEnabled": True,
                  "AllowOfflineTxForUnknownId": False}  # TAG in the Local Authorization List starts offline


async def listed_then_offline(h) -> int:
    """Memory state IdTagLocalAuthList for ``TAG`` (Available), then the connectivity removed.
    Returns the central system's port, for ``go_online``."""
    await h.wait_status(1, "Available")
    reply = await h.cs.call("SendLocalList", listVersion=1, updateType="Full",
                            localAuthorizationList=[{"idTag": TAG, "idTagInfo": {"status": "Accepted"}}])
    assert reply == {"status": "Accepted"}
    return await h.go_offline()


async def test_tc_037_1_offline_start_transaction_valid_id_tag(tmp_path):
    """TC_037_1_CS Offline Start Transaction - Valid IdTag: a tag in the Local
    Authorization List starts a transaction offline (LocalAuthorizeOffline); after the
    connection is back StartTransaction (Accepted) and Charging."""
    async with harness(tmp_path, ocpp=LISTED_OFFLINE) as h:
        given = assign_ids(h)
        port = await listed_then_offline(h)
        await _offline_start(h, TAG)
        m = h.mark()
        await h.go_online(port, step_s=0.25, timeout_s=5)
        # Steps 1-2: StartTransaction, Accepted.
        start = await h.cs.wait_for("StartTransaction", start_index=m)
        assert start["idTag"] == TAG and start["connectorId"] == 1
        await until(lambda: h.station.connector(1).transaction.backend_id == given[0])
        # Steps 3-4: Charging.
        await h.wait_status(1, "Charging", m)
        assert_charging_hw(h)
        assert h.received("Authorize") == []


async def _offline_start_invalid(tmp_path, stop_on_invalid: bool) -> None:
    ocpp = {"LocalAuthorizeOffline": True, "LocalAuthListEnabled": True, "AuthorizationCacheEnabled": True,
            "AllowOfflineTxForUnknownId": True, "StopTransactionOnInvalidId": stop_on_invalid,
            "MaxEnergyOnInvalidId": 0}
    async with harness(tmp_path, ocpp=ocpp) as h:
        given = assign_ids(h, reject=(OTHER_TAG,))
        await h.wait_status(1, "Available")
        port = await h.go_offline()
        await h.clock.advance(5)
        # [EV driver starts offline a transaction with an invalid idTag]: unknown here, allowed offline.
        await _offline_start(h, OTHER_TAG)
        await h.clock.advance(INTERVAL_S)  # one sample queued behind the StartTransaction
        m = h.mark()
        await h.go_online(port, step_s=0.25, timeout_s=5)
        # Steps 1-2: StartTransaction, answered Invalid.
        start = await h.cs.wait_for("StartTransaction", start_index=m)
        assert start["idTag"] == OTHER_TAG
        await until(lambda: index_of(h, "StartTransaction.conf", m, direction=OUT) >= 0)
        assert h.cs.messages[index_of(h, "StartTransaction.conf", m, direction=OUT)].payload["idTagInfo"][
            "status"] == "Invalid"
        # Step 3: Charging (the status when the connection came back).
        await h.wait_status(1, "Charging", m)
        if stop_on_invalid:
            # Steps 5-6: StopTransaction, reason DeAuthorized; steps 7-8: Finishing.
            stop = await h.cs.wait_for("StopTransaction", start_index=m)
            assert stop["transactionId"] == given[0] and stop["reason"] == "DeAuthorized"
            await h.wait_status(1, "Finishing", m)
            assert statuses(h, 1, m)[-1] == "Finishing"
        else:
            # Steps 5-6: SuspendedEVSE: the transaction goes on, the energy offer stops.
            await h.wait_status(1, "SuspendedEVSE", m)
            await quiet(h)
            assert h.received("StopTransaction", m) == []
            assert h.station.connector(1).transaction.backend_id == given[0]
        assert_no_power(h)
        i_charging = index_of(h, "StatusNotification", m, pred=lambda p: p["connectorId"] == 1)
        assert h.cs.messages[i_charging].payload["status"] == "Charging"
        # The queued MeterValues went out with the id the central system gave, after the start.
        meter = [p for p in h.received("MeterValues", m) if "transactionId" in p]
        assert meter and all(p["transactionId"] == given[0] for p in meter)


async def test_tc_037_2_offline_start_invalid_id_tag_keep_transaction(tmp_path):
    """TC_037_2_CS Offline Start Transaction - Invalid IdTag - StopTransactionOnInvalidId = false:
    Charging, then SuspendedEVSE once StartTransaction.conf says Invalid; no StopTransaction."""
    await _offline_start_invalid(tmp_path, stop_on_invalid=False)


async def test_tc_037_3_offline_start_invalid_id_tag_stop_transaction(tmp_path):
    """TC_037_3_CS Offline Start Transaction - Invalid IdTag - StopTransactionOnInvalidId = true:
    Charging, then StopTransaction (DeAuthorized) and Finishing."""
    await _offline_start_invalid(tmp_path, stop_on_invalid=True)


async def test_tc_039_offline_transaction(tmp_path):
    """TC_039_CS Offline Transaction: start, stop and unplug while offline; after the
    connection is back StartTransaction, then the queued MeterValues and StopTransaction
    with the transactionId StartTransaction.conf assigned (never -1 or a local number)."""
    async with harness(tmp_path, ocpp=LISTED_OFFLINE) as h:
        given = assign_ids(h, first_id=90001)
        port = await listed_then_offline(h)
        # [Start offline] [stop offline] [unplug].
        await _offline_start(h, TAG)
        local_id = h.station.connector(1).transaction.local_id
        await h.clock.advance(3 * INTERVAL_S + 10)
        h.sim.swipe(TAG)
        await until(lambda: h.station.connector(1).transaction is None)
        h.sim.unplug(1)
        await h.clock.settle()
        assert [e.kind for e in h.station.outbox.entries()] == ["start", "meter", "meter", "meter", "stop"]
        m = h.mark()
        await h.go_online(port, step_s=0.25, timeout_s=5)
        # Steps 1-4, all in order.
        await h.cs.wait_for("StopTransaction", start_index=m)
        sent = tx_calls(h, m)
        assert [a for a, _p in sent] == ["StartTransaction", "MeterValues", "MeterValues", "MeterValues",
                                         "StopTransaction"]
        start, stop = sent[0][1], sent[-1][1]
        assert start["idTag"] == TAG
        assert given == [90001] and local_id != 90001
        assert all(p["transactionId"] == 90001 for _a, p in sent[1:])
        assert stop.get("reason", "Local") == "Local" and stop["meterStop"] >= start["meterStart"]
        conf = h.cs.messages[index_of(h, "StartTransaction.conf", m, direction=OUT)].payload
        assert conf["idTagInfo"]["status"] == "Accepted"
        await h.wait_status(1, "Available", m)
        await until(lambda: len(h.station.outbox) == 0)
        assert journal_rows(h) == ([], [])


# ---------------------------------------------------------------------- the journal

async def test_offline_stop_then_reboot_sends_stop_exactly_once(tmp_path):
    """The bug other stacks had: a transaction stopped offline, then a reboot (clean,
    then a power cut): StopTransaction reaches the central system once, with its own
    reason, and never again."""
    async with harness(tmp_path) as h:
        tx_id = await charging(h)
        port = await h.go_offline()
        h.sim.swipe(TAG)
        await until(lambda: h.station.connector(1).transaction is None)
        # Reboot while still offline: the queued StopTransaction survives.
        await h.restart_agent()
        assert [e.kind for e in h.station.outbox.entries()] == ["stop"]
        assert h.station.recovered == []  # already stopped: not closed a second time
        m = h.mark()
        await h.go_online(port, step_s=0.25, timeout_s=5)
        stop = await h.cs.wait_for("StopTransaction", start_index=m)
        assert stop["transactionId"] == tx_id and stop["reason"] == "Local"
        await until(lambda: len(h.station.outbox) == 0)
        # Further reboots, clean or not, send nothing more.
        m = h.mark()
        await h.restart_agent()
        await h.cs.wait_for("BootNotification", start_index=m)
        await power_cut(h)
        m2 = await power_on(h)
        await h.cs.wait_for("BootNotification", start_index=m2)
        await h.wait_status(1, "Preparing", m2)
        await quiet(h)
        assert len(h.received("StopTransaction")) == 1
        assert len(h.received("StartTransaction")) == 1


async def test_offline_started_transaction_survives_power_cut_with_real_id(tmp_path):
    """A transaction started offline, its meter values queued, then a power cut while
    still offline: after the boot StartTransaction goes first, every queued MeterValues
    and the StopTransaction (PowerLoss) carry the transactionId from StartTransaction.conf,
    each sent exactly once."""
    ocpp = {"AllowOfflineTxForUnknownId": True, "LocalAuthorizeOffline": True}
    async with harness(tmp_path, ocpp=ocpp) as h:
        given = assign_ids(h, first_id=777)
        await h.wait_status(1, "Available")
        port = await h.go_offline()
        await _offline_start(h, OTHER_TAG)
        local_id = h.station.connector(1).transaction.local_id
        await h.clock.advance(3 * INTERVAL_S)
        energy = hw(h)["energy_wh"]
        await power_cut(h)
        # The charger boots while the central system is still away, then it comes back.
        await h.cs_server.start(port=port)
        m = h.mark()
        await h.start_agent()
        await h.cs.wait_for("BootNotification", start_index=m)
        stop = await h.cs.wait_for("StopTransaction", start_index=m)
        sent = tx_calls(h, m)
        assert [a for a, _p in sent] == ["StartTransaction"] + ["MeterValues"] * 3 + ["StopTransaction"]
        assert given == [777] and local_id != 777
        assert all(p["transactionId"] == 777 for _a, p in sent[1:])
        assert stop["reason"] == "PowerLoss" and stop["meterStop"] == round(energy)
        await until(lambda: len(h.station.outbox) == 0)
        assert journal_rows(h) == ([], [])
        # Another reboot: nothing is sent again.
        m = h.mark()
        await h.restart_agent()
        await h.cs.wait_for("BootNotification", start_index=m)
        await quiet(h)
        assert tx_calls(h, m) == []


async def test_bounded_journal_drops_oldest_meter_values_never_start_or_stop(tmp_path, caplog):
    """With journal_max_entries = 5 and a long outage, the oldest sampled meter values
    go first; StartTransaction and StopTransaction are always kept, also across a power cut."""
    ocpp = {"AllowOfflineTxForUnknownId": True, "LocalAuthorizeOffline": True}
    async with harness(tmp_path, ocpp=ocpp, station={"journal_max_entries": 5}) as h:
        given = assign_ids(h)
        await h.wait_status(1, "Available")
        port = await h.go_offline()
        await _offline_start(h, OTHER_TAG)
        start_time = h.clock.time()
        with caplog.at_level(logging.WARNING, logger="agent.store.journal"):
            await h.clock.advance(10 * INTERVAL_S)
        assert any("journal full" in r.getMessage() for r in caplog.records), caplog.text
        assert h.agent.journal.dropped_meter_entries == 6
        assert [e.kind for e in h.station.outbox.entries()] == ["start"] + ["meter"] * 4
        h.sim.swipe(OTHER_TAG)
        await until(lambda: h.station.connector(1).transaction is None)
        assert [kind for kind, _lid in journal_rows(h)[1]] == ["start"] + ["meter"] * 4 + ["stop"]
        await power_cut(h)
        await h.cs_server.start(port=port)
        m = await power_on(h)
        await h.cs.wait_for("StopTransaction", start_index=m)
        sent = tx_calls(h, m)
        assert [a for a, _p in sent] == ["StartTransaction"] + ["MeterValues"] * 4 + ["StopTransaction"]
        # The newest four samples (minutes 7-10) are the ones kept.
        times = [epoch(p["meterValue"][0]["timestamp"]) for a, p in sent if a == "MeterValues"]
        assert times == approx([start_time + k * INTERVAL_S for k in range(7, 11)], abs=0.002)
        assert all(p["transactionId"] == given[0] for _a, p in sent[1:])
        assert sent[-1][1]["reason"] == "Local"


async def test_journal_write_failure_refuses_new_transactions(tmp_path, caplog):
    """While the journal cannot be written, no transaction starts (no current is offered)
    and the log says why; once writes work again a transaction starts normally."""
    async with harness(tmp_path) as h:
        await h.wait_status(1, "Available")
        flaky = h.agent.journal._db = FlakyDb(h.agent.journal._db)
        flaky.failing = True
        m = h.mark()
        h.sim.plug(1)
        await h.wait_status(1, "Preparing", m)
        with caplog.at_level(logging.ERROR):
            assert await h.cs.call("RemoteStartTransaction", connectorId=1, idTag=TAG) == {"status": "Accepted"}
            await until(lambda: flaky.failed > 0)
            await quiet(h)
            # While the journal cannot be written, a remote start is not promised.
            assert await h.cs.call("RemoteStartTransaction", connectorId=1, idTag=TAG) == {"status": "Rejected"}
        assert h.received("StartTransaction") == []
        assert h.station.connector(1).transaction is None
        assert_no_power(h)
        assert not h.agent.journal.healthy
        text = caplog.text
        assert "journal write failed (disk I/O error): no new transactions until it works again" in text
        assert "cannot record a new transaction" in text
        # The disk works again: the next start is journaled and goes ahead.
        flaky.failing = False
        assign_ids(h)
        m = h.mark()
        assert await h.cs.call("RemoteStartTransaction", connectorId=1, idTag=TAG) == {"status": "Accepted"}
        await h.cs.wait_for("StartTransaction", start_index=m)
        await h.wait_status(1, "Charging", m)
        assert h.agent.journal.healthy
        assert_charging_hw(h)


async def test_journal_write_failure_loses_nothing_durable(tmp_path, caplog):
    """Writes fail during an offline transaction (meter values, then its stop are only in
    memory): the charger goes on safely, the journal is rewritten from memory once
    writes work again, and after a power cut everything reaches the central system once."""
    async with harness(tmp_path) as h:
        tx_id = await charging(h)
        port = await h.go_offline()
        flaky = h.agent.journal._db = FlakyDb(h.agent.journal._db)
        flaky.failing = True
        with caplog.at_level(logging.WARNING):
            await h.clock.advance(2 * INTERVAL_S)  # two samples: journal writes fail
            assert flaky.failed > 0 and not h.agent.journal.healthy
            assert_charging_hw(h)  # a running transaction goes on from memory
            h.sim.swipe(TAG)
            await until(lambda: h.station.connector(1).transaction is None)
            energy = hw(h)["energy_wh"]
            assert h.station.outbox.resync_needed
            assert [kind for kind, _lid in journal_rows(h)[1]] == []  # the file has only the transaction
            # Writes work again: within JOURNAL_RETRY_S the journal is rewritten from memory.
            flaky.failing = False
            await h.clock.advance(30)
        assert "journal rewritten from memory after failed writes" in caplog.text
        assert "journal writes work again" in caplog.text
        assert h.agent.journal.healthy and not h.station.outbox.resync_needed
        assert [kind for kind, _lid in journal_rows(h)[1]] == ["meter", "meter", "stop"]
        await power_cut(h)
        await h.cs_server.start(port=port)
        m = await power_on(h)
        stop = await h.cs.wait_for("StopTransaction", start_index=m)
        assert [a for a, _p in tx_calls(h, m)] == ["MeterValues", "MeterValues", "StopTransaction"]
        assert all(p["transactionId"] == tx_id for _a, p in tx_calls(h, m))
        assert stop["reason"] == "Local" and stop["meterStop"] == round(energy)
        await quiet(h)
        assert len(h.received("StopTransaction")) == 1


async def test_journal_write_failure_then_power_cut_closes_transaction_once(tmp_path):
    """A power cut while journal writes fail: what was durable (the started transaction)
    is closed once after the boot (PowerLoss) with a meterStop not below what was reported."""
    async with harness(tmp_path) as h:
        tx_id = await charging(h)
        await h.clock.advance(INTERVAL_S)
        await until(lambda: len(h.received("MeterValues")) == 1)
        reported = energy_of(h.received("MeterValues")[0])
        flaky = h.agent.journal._db = FlakyDb(h.agent.journal._db)
        flaky.failing = True
        await h.clock.advance(INTERVAL_S)
        await quiet(h)
        await power_cut(h)
        m = await power_on(h)
        stop = await h.cs.wait_for("StopTransaction", start_index=m)
        assert stop["transactionId"] == tx_id and stop["reason"] == "PowerLoss"
        assert stop["meterStop"] >= max(reported)
        await quiet(h)
        assert len(h.received("StopTransaction")) == 1


async def test_corrupt_journal_is_set_aside_and_the_agent_starts(tmp_path, caplog):
    """A journal file that is garbage at start (power cut on a failing card): kept as
    journal.sqlite.corrupt-1, a clear log line, a fresh journal, and the agent works."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    garbage = b"\x00\xffnot a database " * 512
    (data_dir / "journal.sqlite").write_bytes(garbage)
    with caplog.at_level(logging.WARNING, logger="agent.store.journal"):
        async with harness(tmp_path) as h:
            assert (data_dir / "journal.sqlite.corrupt-1").read_bytes() == garbage
            assert "cannot be read" in caplog.text and "journal.sqlite.corrupt-1" in caplog.text
            tx_id = await charging(h)
            assert journal_rows(h)[0][0]["backend_id"] == tx_id


async def _damaged_journal(tmp_path, caplog, which: str) -> tuple:
    """An offline session (40 samples, then a local stop), a clean stop of the agent, one
    page of queued meter values overwritten (``which``: "middle" or "last", the one that
    holds the StopTransaction too), a boot. Returns (harness, messages sent after the boot,
    the energy at the stop, the transactionId)."""
    h = harness(tmp_path)
    async with h:
        tx_id = await charging(h)
        port = await h.go_offline()
        await h.clock.advance(40 * INTERVAL_S)  # enough meter values for several pages
        h.sim.swipe(TAG)
        await until(lambda: h.station.connector(1).transaction is None)
        energy = hw(h)["energy_wh"]
        await h.agent.stop()
        path = TransactionJournal.path_in(h.agent.config.data_dir)
        size = os.path.getsize(path)
        with open(path, "r+b") as f:  # the leaf pages of the msg table hold the kind "meter"
            pages = [n for n in range(size // 4096)
                     if (lambda page: b"meter" in page and b"meter_start_wh" not in page)(
                         (f.seek(n * 4096), f.read(4096))[1])]
            assert len(pages) >= 3, pages
            f.seek((pages[len(pages) // 2] if which == "middle" else pages[-1]) * 4096)
            f.write(b"\xde\xad" * 2048)
        await h.cs_server.start(port=port)
        with caplog.at_level(logging.WARNING, logger="agent"):
            m = await power_on(h)
        assert os.path.exists(path + ".corrupt-1")
        assert "salvaged" in caplog.text
        await h.cs.wait_for("StopTransaction", start_index=m)
        await until(lambda: len(h.station.outbox) == 0)
        await quiet(h)
        sent = tx_calls(h, m)
        assert len(h.received("StopTransaction")) == 1
        # Exactly once: another boot sends nothing.
        m2 = h.mark()
        await h.restart_agent()
        await h.cs.wait_for("BootNotification", start_index=m2)
        await quiet(h)
        assert tx_calls(h, m2) == []
    return sent, energy, tx_id


async def test_damaged_journal_keeps_rows_on_both_sides_of_the_damage(tmp_path, caplog):
    """A journal damaged in the middle (a page of queued meter values overwritten by a
    failing card): the rows before and after the damage are salvaged, the file is kept as
    journal.sqlite.corrupt-1, and the StopTransaction goes out once, as it was queued."""
    sent, energy, tx_id = await _damaged_journal(tmp_path, caplog, "middle")
    meter = [p for a, p in sent if a == "MeterValues"]
    assert [a for a, _p in sent] == ["MeterValues"] * len(meter) + ["StopTransaction"]
    assert 0 < len(meter) < 40 and all(p["transactionId"] == tx_id for p in meter)
    minutes = [round((epoch(p["meterValue"][0]["timestamp"]) - MIDNIGHT) / 60) for p in meter]
    assert minutes == sorted(minutes)
    assert minutes[0] == 1 and minutes[-1] == 40, minutes  # rows before and after the damage
    assert len(minutes) < minutes[-1] - minutes[0] + 1  # the damaged page's are gone
    stop = sent[-1][1]
    assert stop["transactionId"] == tx_id and stop["reason"] == "Local" and stop["meterStop"] == round(energy)


async def test_damaged_journal_requeues_a_lost_stop_from_its_transaction(tmp_path, caplog):
    """The page holding the queued StopTransaction is damaged: the transaction's own row
    (stopped, with its meterStop and reason) is intact, so the StopTransaction is queued
    again from it and goes out once."""
    sent, energy, tx_id = await _damaged_journal(tmp_path, caplog, "last")
    assert "the end of transaction 1 (id %d) was lost: queued again" % tx_id in caplog.text
    stop = sent[-1][1]
    assert sent[-1][0] == "StopTransaction" and [a for a, _p in sent].count("StopTransaction") == 1
    assert stop["transactionId"] == tx_id and stop["reason"] == "Local" and stop["meterStop"] == round(energy)
    assert stop["idTag"] == TAG


def test_timestamps_round_seconds_and_milliseconds_together():
    """A time a hair below a whole second (as a clock that adds up intervals gives) is that
    second, not almost a second later: the queued meter values of TC_036 must be exactly
    MeterValueSampleInterval apart."""
    whole = MIDNIGHT + 60
    assert iso_time(nextafter(whole, 0)) == "2026-01-01T00:01:00.000Z"
    assert iso_time(whole) == "2026-01-01T00:01:00.000Z"
    assert iso_time(whole + 0.25) == "2026-01-01T00:01:00.250Z"
    assert iso_time(whole + 0.9996) == "2026-01-01T00:01:01.000Z"
