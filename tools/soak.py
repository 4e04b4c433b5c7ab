"""Fault soak: kill -9 the agent at random moments of charging sessions and
check that no transaction is lost or duplicated.

    python -m tools.soak --runs 300 --seed 1
    python -m tools.soak --runs 100 --stations 4 --seed 7      # four agents at once
    python -m tools.soak --runs 20 --seed 7 --json              # figures as JSON
    python -m tools.soak --ocpp 2.0.1 --runs 100 --seed 1       # the same on OCPP 2.0.1

``--ocpp`` (1.6 by default) is the version the central system serves and the
agents pin; the driver, the faults and the schedule are the same for both, the
ledger and its checks are the version's (below).

What runs, all on loopback 127.0.0.1 in a temporary directory:

* a counting central system: ``TestCentralSystem`` (tools/csms.py) in this
  process, with handlers (``Ledger``) that record every StartTransaction,
  StopTransaction and MeterValues (2.0.1: ``Ledger201``, every TransactionEvent)
  per station, in arrival order, with the number of the websocket
  connection it came over;
* per station, the agent as a subprocess (``python -m agent.app.cli run --config F``)
  on the simulated board (two connectors, ``speed`` 60: a real second charges a
  minute; MeterValueSampleInterval 1 s), always on the same ``data_dir``;
* an EV driver that talks to the sim control socket (``plug``, ``swipe``,
  ``unplug``, ``status``) and sometimes asks the central system for
  RemoteStartTransaction / RemoteStopTransaction (2.0.1: RequestStartTransaction /
  RequestStopTransaction).

A *run* is one life of the agent: it is started, the driver plays sessions,
and at a moment drawn from the seed the run ends with ``kill -9`` (SIGKILL) or,
now and then, a clean stop (SIGTERM, so that the restart closes transactions
with reason Reboot rather than PowerLoss); then the next run starts the agent
again on the same data_dir. Some kills are *targeted*: they land a few
milliseconds after the central system answered a StartTransaction or
StopTransaction, inside the window where the agent has the answer but may not
have recorded it. Meanwhile the link flaps (the central system closes the
station's websocket) and the central system is stopped for a while and
started again on the same port. At the end the central system is up, the
agent is started once more, every EV is unplugged, and the soak waits until
the agent's queue is drained (every transaction stopped at the central system,
the journal empty) before it checks.

Definitions and checks (``analyze``), on OCPP 1.6:

* A *session* is one fresh idTag presented to the charger (a swipe or a
  RemoteStartTransaction): every tag is used for one session only, so a tag
  names its session. The central system identifies a StartTransaction by its
  *session key* (connectorId, idTag, meterStart, timestamp); it answers a
  repeat of a key with the transactionId it assigned the first time, as a
  central system that deduplicates must (OCPP-J has no message ids that
  survive a reconnect).
* **Lost**: a transactionId the central system assigned that never got a
  StopTransaction; a tag the driver saw running as a local transaction (sim
  status), or drawing power, that never reached the central system in a
  StartTransaction.
* **Duplicated**: a second StopTransaction for a transactionId, or a second
  StartTransaction for a session key, that is not a *redelivery*; two session
  keys for one tag (two transactions for one session); StopTransactions for
  one id with different contents. A repeat is a *redelivery* - the agent
  could not know the first copy arrived - when the station sent no other
  transaction message over the first copy's connection after it: the agent
  sends transaction messages one at a time and records a confirmation
  durably before it sends the next, so any later message proves it had
  recorded the answer, and a repeat after that is a bug. Redeliveries are
  counted, not failed: a kill or link drop between the answer and its record
  cannot be told apart from a lost message by any agent.
* meterStop >= meterStart, the stop timestamp not before the start, meterStop
  not below any Energy.Active.Import.Register the transaction's MeterValues
  reported.
* MeterValues: always with a transactionId the central system assigned to this
  station (never none, -1 or unknown), timestamps inside the transaction, and
  none after the transaction's StopTransaction unless it is a copy of one
  received before (confirmed meter values leave the journal with its next
  write, so after a kill the last few may be sent again - counted).
On OCPP 2.0.1 the ledger (``Ledger201``) records every TransactionEvent by
(transactionId, seqNo) and checks:

* **Lost**: a transaction with any event that never reaches Ended; a seqNo
  missing from 0..Ended's seqNo (a gap); a tag seen running locally that no
  event carries.
* **Duplicated**: a (transactionId, seqNo) received again that is not a
  redelivery by the rule above; an Updated copy is also a redelivery when the
  agent was restarted since the first (an Updated's confirmation is journaled
  with the next write, as 1.6's MeterValues are); two different events under
  one seqNo; a transaction ended twice; two transactions for one tag.
* Ended's Energy.Active.Import.Register not below Started's, each event's
  latest register not below the one before it in seqNo order (the agent rounds
  start and end registers to whole Wh: 0.5 Wh of slack), Ended not before
  Started. The offline flag is not checked.

Both versions:

* The agent never exits by itself, the central system answers no CALLERROR,
  and after the final clean stop the journal holds no message and no
  transaction.

Reproducible: ``--seed`` fixes the whole schedule (run lengths, kill or clean
stop, targeted kills, link flaps, outages, every choice of the EV driver), with
separate random streams per concern so one does not shift another. What the
agent happens to be doing at each moment still depends on timing, so a seed
replays the same schedule, not the same instruction trace. The exit status is
1 on any violation (the temporary directory with each station's agent logs is
then kept and named), 2 if the soak itself could not run.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import random
import shutil
import signal
import sqlite3
import sys
import tempfile
import time

from agent.core.isotime import parse_datetime
from hal.sim import SAVE_INTERVAL_S as SIM_SAVE_INTERVAL_S

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOST = "127.0.0.1"

START_TIMEOUT_S = 20.0  # spawn -> sim control socket answers
STOP_TIMEOUT_S = 10.0  # SIGTERM -> exit
COMMAND_TIMEOUT_S = 3.0  # one sim control command or CS -> agent call
TIME_TOLERANCE_S = 1.0  # timestamps are rounded to ms and taken at slightly different moments
REGISTER_TOLERANCE_WH = 0.5  # the agent rounds a transaction's start and end registers to whole Wh
LATE_S = 1.0  # a StartTransaction first received this long after its timestamp was queued (offline, a kill)
AGENT_CONNECTORS = 2
AGENT_SPEED = 60.0


class SoakError(Exception):
    """The soak could not run (not a finding about the agent)."""


# --------------------------------------------------------------------------- counting central system

class TxMessage:
    """One transaction message as the central system received it."""

    __slots__ = ("seq", "conn", "kind", "ident", "payload", "tid", "t", "wall")

    def __init__(self, seq: int, conn: int, kind: str, ident: tuple, payload: dict, tid, t: float) -> None:
        self.seq = seq  # arrival order at the central system (all stations)
        self.conn = conn  # the station's websocket connection it came over (1, 2, ...)
        self.kind = kind  # "start", "stop" or "meter"
        self.ident = ident  # equal for two copies of the same message
        self.payload = payload
        self.tid = tid  # the transaction it is about (a start: the id assigned)
        self.t = t  # time.monotonic() at arrival
        self.wall = time.time()

    def __repr__(self) -> str:
        return "%s#%d(conn %d, tx %r)" % (self.kind, self.seq, self.conn, self.tid)


def session_key(payload: dict) -> tuple:
    """What identifies a StartTransaction: (connectorId, idTag, meterStart, timestamp)."""
    return (payload.get("connectorId"), payload.get("idTag"), payload.get("meterStart"), payload.get("timestamp"))


class BaseLedger:
    """What both versions' ledgers share: the arrival record of one station's
    transaction messages (``messages``), the central system's handlers for them
    (``attach(cs)`` installs ``handlers()`` on a ``TestCentralSystem`` before the
    station connects) and the agent's lives (``new_life()`` before each start).
    Transaction ids the central system assigns come from ``ids`` and the arrival
    order from ``order`` (share them between the ledgers of one central system)."""

    SUBPROTOCOL = ""
    LABELS: dict = {}  # names of the messages and registers in the report

    def __init__(self, station_id: str, ids=None, order=None) -> None:
        self.station_id = station_id
        self.ids = ids if ids is not None else itertools.count(1)
        self.order = order if order is not None else itertools.count(1)
        self.messages: list = []  # TxMessage, in arrival order
        self.life_starts: list = []  # the first connection number of each agent life
        self.remote_ids = itertools.count(1)
        self.handle = None
        self.tx_event = asyncio.Event()  # set (and replaced) on every Start/Stop: targeted kills wait on it

    def handlers(self) -> dict:
        raise NotImplementedError

    def attach(self, cs):
        from tools.csms import StationHandle

        handle = cs.stations.get(self.station_id)
        if handle is None:
            handle = cs.stations[self.station_id] = StationHandle(self.station_id, cs)
        handle.handlers.update(self.handlers())
        self.handle = handle
        return handle

    def new_life(self) -> None:
        """The agent is (re)started: its next connection begins a new life of the process."""
        self.life_starts.append((self.handle.connections if self.handle is not None else 0) + 1)

    def restarted_between(self, first: TxMessage, again: TxMessage) -> bool:
        """Whether the agent was restarted between two messages (by their connections)."""
        return any(first.conn < start <= again.conn for start in self.life_starts)

    def _add(self, kind: str, ident: tuple, payload: dict, tid) -> None:
        conn = self.handle.connections if self.handle is not None else 0
        self.messages.append(TxMessage(next(self.order), conn, kind, ident, payload, tid, time.monotonic()))
        if kind != "meter":
            event, self.tx_event = self.tx_event, asyncio.Event()
            event.set()

    def dump(self, path: str) -> None:
        """The record as JSON lines (kept with the agent logs when the soak fails)."""
        with open(path, "w") as f:
            for m in self.messages:
                f.write(json.dumps({"seq": m.seq, "conn": m.conn, "kind": m.kind, "tid": m.tid, "wall": m.wall,
                                    "payload": m.payload}, default=str) + "\n")

    def call_errors_sent(self) -> int:
        from tools.csms import OUT

        if self.handle is None:
            return 0
        return sum(1 for m in self.handle.messages if m.direction == OUT and m.action.endswith(".error"))

    def open_ids(self) -> set:
        """Transactions begun at the central system but not ended (yet)."""
        raise NotImplementedError

    def started_tags(self) -> set:
        raise NotImplementedError

    def analyze(self, seen_tags: set, energy_tags: set) -> dict:
        raise NotImplementedError


class Ledger(BaseLedger):
    """The OCPP 1.6 ledger: every StartTransaction, StopTransaction and MeterValues."""

    SUBPROTOCOL = "ocpp1.6"
    LABELS = {"start": "StartTransaction", "stop": "StopTransaction", "meter": "MeterValues",
              "meter_start": "meterStart", "meter_stop": "meterStop"}

    def __init__(self, station_id: str, ids=None, order=None) -> None:
        super().__init__(station_id, ids, order)
        self.start_ids: dict = {}  # session key -> transaction id
        self.starts: dict = {}  # transaction id -> first StartTransaction payload

    def handlers(self) -> dict:
        return {"StartTransaction": self._on_start, "StopTransaction": self._on_stop,
                "MeterValues": self._on_meter_values}

    def _on_start(self, payload: dict) -> dict:
        key = session_key(payload)
        tid = self.start_ids.get(key)
        if tid is None:
            tid = self.start_ids[key] = next(self.ids)
            self.starts[tid] = payload
        self._add("start", ("start",) + key, payload, tid)
        return {"transactionId": tid, "idTagInfo": {"status": "Accepted"}}

    def _on_stop(self, payload: dict) -> dict:
        tid = payload.get("transactionId")
        self._add("stop", ("stop", tid), payload, tid)
        return {"idTagInfo": {"status": "Accepted"}} if "idTag" in payload else {}

    def _on_meter_values(self, payload: dict) -> dict:
        tid = payload.get("transactionId")
        ident = ("meter", payload.get("connectorId"), tid,
                 json.dumps(payload.get("meterValue"), sort_keys=True, separators=(",", ":")))
        self._add("meter", ident, payload, tid)
        return {}

    def remote_start(self, tag: str, connector_id: int) -> tuple:
        return "RemoteStartTransaction", {"idTag": tag, "connectorId": connector_id}

    def remote_stop(self, transaction_id) -> tuple:
        return "RemoteStopTransaction", {"transactionId": transaction_id}

    # ------------------------------------------------------------------ queries
    def stopped_ids(self) -> set:
        return {m.tid for m in self.messages if m.kind == "stop"}

    def open_ids(self) -> set:
        return set(self.starts) - self.stopped_ids()

    def started_tags(self) -> set:
        return {p.get("idTag") for p in self.starts.values()}

    def analyze(self, seen_tags: set, energy_tags: set) -> dict:
        return analyze16(self, seen_tags, energy_tags)


EVENT_KINDS = {"Started": "start", "Updated": "meter", "Ended": "stop"}  # 2.0.1 eventType -> the ledger's kinds


class Ledger201(BaseLedger):
    """The OCPP 2.0.1 ledger: every TransactionEvent, identified by (transactionId,
    seqNo); kinds "start" (Started), "meter" (Updated) and "stop" (Ended)."""

    SUBPROTOCOL = "ocpp2.0.1"
    LABELS = {"start": "TransactionEvent Started", "stop": "TransactionEvent Ended",
              "meter": "TransactionEvent Updated", "meter_start": "Started register",
              "meter_stop": "Ended register"}

    def handlers(self) -> dict:
        return {"TransactionEvent": self._on_event}

    def _on_event(self, payload: dict) -> dict:
        tid = (payload.get("transactionInfo") or {}).get("transactionId")
        kind = EVENT_KINDS.get(payload.get("eventType"), "meter")
        self._add(kind, ("event", tid, payload.get("seqNo")), payload, tid)
        return {"idTokenInfo": {"status": "Accepted"}} if "idToken" in payload else {}

    def remote_start(self, tag: str, connector_id: int) -> tuple:
        return "RequestStartTransaction", {"idToken": {"idToken": tag, "type": "Central"},
                                           "remoteStartId": next(self.remote_ids), "evseId": connector_id}

    def remote_stop(self, transaction_id) -> tuple:
        return "RequestStopTransaction", {"transactionId": transaction_id}

    # ------------------------------------------------------------------ queries
    def open_ids(self) -> set:
        ended = {m.tid for m in self.messages if m.kind == "stop"}
        return {m.tid for m in self.messages} - ended

    def started_tags(self) -> set:
        """The tags of the transactions (an Ended event's token is the one that stopped it)."""
        return {tag for m in self.messages if m.kind != "stop" for tag in [event_tag(m.payload)] if tag}

    def analyze(self, seen_tags: set, energy_tags: set) -> dict:
        return analyze201(self, seen_tags, energy_tags)


LEDGERS = {"1.6": Ledger, "2.0.1": Ledger201}  # --ocpp -> its ledger class


def event_tag(payload: dict) -> str | None:
    return (payload.get("idToken") or {}).get("idToken")


def parse_time(stamp) -> float | None:
    try:
        return parse_datetime(stamp)
    except ValueError:
        return None


def energy_registers_wh(meter_values) -> list:
    """Every Energy.Active.Import.Register in a MeterValues/transactionData list (1.6) or a
    TransactionEvent's meterValue (2.0.1: unitOfMeasure), in Wh, with its time."""
    out = []
    for mv in meter_values or []:
        t = parse_time(mv.get("timestamp"))
        for sv in mv.get("sampledValue", []):
            if sv.get("measurand", "Energy.Active.Import.Register") != "Energy.Active.Import.Register":
                continue
            try:
                value = float(sv["value"])
            except (KeyError, ValueError):
                continue
            unit = sv.get("unitOfMeasure") or {"unit": sv.get("unit")}
            value *= 10.0 ** unit.get("multiplier", 0)
            out.append((t, value * 1000.0 if unit.get("unit") == "kWh" else value))
    return out


def event_register_wh(payload: dict) -> float | None:
    """A TransactionEvent's register: its latest Energy.Active.Import.Register reading (an
    Ended event also carries the begin's, and the samples kept for the end)."""
    readings = energy_registers_wh(payload.get("meterValue"))
    if not readings:
        return None
    return max(enumerate(readings), key=lambda ir: (ir[1][0] or 0.0, ir[0]))[1][1]


def is_redelivery(messages: list, first: int, again: int) -> bool:
    """True when ``messages[again]`` repeats ``messages[first]`` and the station sent
    no other transaction message over ``first``'s connection in between: the agent
    cannot have recorded the answer to ``first`` (it records before sending on)."""
    m = messages[first]
    for k in range(first + 1, again):
        other = messages[k]
        if other.conn == m.conn and other.ident != m.ident:
            return False
    return True


class Findings:
    """One station's figures and violations, as both versions' checks build them."""

    COUNTS = ("start_messages", "stop_messages", "meter_value_messages", "starts_delivered_late",
              "redelivered_starts", "redelivered_stops", "redelivered_meter_values", "lost", "duplicated",
              "energy_wh", "meter_start_below_previous_stop")
    MESSAGES = {"start": "start_messages", "stop": "stop_messages", "meter": "meter_value_messages"}
    REDELIVERED = {"start": "redelivered_starts", "stop": "redelivered_stops", "meter": "redelivered_meter_values"}

    def __init__(self, station_id: str) -> None:
        self.station_id = station_id
        self.figures = dict.fromkeys(self.COUNTS, 0)
        self.figures["stop_reasons"] = {}
        self.violations: list = []
        self.burst: dict = {}  # connection -> meter values redelivered over it
        self.tids_by_tag: dict = {}
        self.last_stop_by_connector: dict = {}

    def bad(self, kind: str, text: str, count: int = 1) -> None:
        if kind in ("lost", "duplicated"):
            self.figures[kind] += count
        self.violations.append("%s: %s: %s" % (self.station_id, kind, text))

    def arrived(self, m: TxMessage, first_copy: bool) -> None:
        """Count a message; a first Start received long after its timestamp was queued."""
        self.figures[self.MESSAGES[m.kind]] += 1
        if m.kind == "start" and first_copy and m.wall - (parse_time(m.payload.get("timestamp")) or m.wall) > LATE_S:
            self.figures["starts_delivered_late"] += 1

    def redelivered(self, m: TxMessage) -> None:
        self.figures[self.REDELIVERED[m.kind]] += 1
        if m.kind == "meter":
            self.burst[m.conn] = self.burst.get(m.conn, 0) + 1

    def transaction(self, tid, tag, connector, start_wh, stop_wh, reason: str) -> None:
        """A transaction begun and ended: its tag, reason, energy, and the register's
        continuity on its connector (the simulated one rewinds on a kill)."""
        self.tids_by_tag.setdefault(tag, []).append(tid)
        if stop_wh is None:
            return
        self.figures["stop_reasons"][reason] = self.figures["stop_reasons"].get(reason, 0) + 1
        if start_wh is not None and stop_wh >= start_wh:
            self.figures["energy_wh"] += stop_wh - start_wh
        previous = self.last_stop_by_connector.get(connector)
        if previous is not None and start_wh is not None and start_wh < previous:
            self.figures["meter_start_below_previous_stop"] += 1
        self.last_stop_by_connector[connector] = stop_wh

    def result(self, ledger: BaseLedger, seen_tags: set, energy_tags: set, transactions: int) -> dict:
        """The checks on sessions common to both versions, then the figures with ``violations``."""
        for tag, tids in self.tids_by_tag.items():
            if tag is not None and len(tids) > 1:
                self.bad("duplicated", "tag %s (one session) has %d transactions: %s" % (tag, len(tids), tids))
        for tag in sorted(set(seen_tags) - ledger.started_tags()):
            self.bad("lost", "tag %s ran as a local transaction%s but the central system never got its %s"
                     % (tag, " and drew power" if tag in energy_tags else "", ledger.LABELS["start"]))
        errors = ledger.call_errors_sent()
        if errors:
            self.violations.append("%s: central system answered %d CALLERROR(s)" % (self.station_id, errors))
        figures = dict(self.figures, transactions=transactions, energy_wh=round(self.figures["energy_wh"]),
                       max_meter_values_redelivered_at_once=max(self.burst.values(), default=0))
        figures["violations"] = self.violations
        return figures


def analyze(ledger: BaseLedger, seen_tags: set = frozenset(), energy_tags: set = frozenset()) -> dict:
    """Check one station's record (see the module docstring); returns figures and
    ``violations`` (a list of strings, empty when all is well)."""
    return ledger.analyze(seen_tags, energy_tags)


def analyze16(ledger: Ledger, seen_tags: set, energy_tags: set) -> dict:
    """The 1.6 checks: StartTransaction by session key, StopTransaction and MeterValues by transactionId."""
    msgs = ledger.messages
    f = Findings(ledger.station_id)
    bad = f.bad
    last_copy: dict = {}  # ident -> index of its latest copy
    stops: dict = {}  # tid -> first stop payload
    stop_index: dict = {}  # tid -> index of its first stop
    meters_by_tid: dict = {}
    for i, m in enumerate(msgs):
        prev = last_copy.get(m.ident)
        last_copy[m.ident] = i
        f.arrived(m, prev is None)
        if m.kind == "start":
            if prev is not None:
                if is_redelivery(msgs, prev, i):
                    f.redelivered(m)
                else:
                    bad("duplicated", "StartTransaction %s sent again after the agent had moved on (%r, %r)"
                        % (m.ident[1:], msgs[prev], m))
        elif m.kind == "stop":
            if m.tid not in ledger.starts:
                bad("duplicated" if m.tid is not None else "unknown-id",
                    "StopTransaction for transactionId %r the central system never assigned" % (m.tid,))
            if m.tid in stops:
                if m.payload != stops[m.tid]:
                    bad("duplicated", "two different StopTransactions for transaction %r: %r / %r"
                        % (m.tid, stops[m.tid], m.payload))
                elif prev is not None and is_redelivery(msgs, prev, i):
                    f.redelivered(m)
                else:
                    bad("duplicated", "StopTransaction for %r sent again after the agent had moved on" % m.tid)
            else:
                stops[m.tid] = m.payload
                stop_index[m.tid] = i
        else:
            tid = m.tid
            if tid is None or tid == -1 or tid not in ledger.starts:
                bad("meter-values", "MeterValues with transactionId %r (not one assigned to this station): %r"
                    % (tid, m.payload))
                continue
            if prev is not None:
                f.redelivered(m)
            elif tid in stop_index:
                bad("meter-values", "MeterValues for transaction %r after its StopTransaction" % tid)
            meters_by_tid.setdefault(tid, []).append(m.payload)

    for tid in sorted(ledger.starts):
        start = ledger.starts[tid]
        stop = stops.get(tid)
        meter_start = start.get("meterStart")
        f.transaction(tid, start.get("idTag"), start.get("connectorId"), meter_start,
                      None if stop is None else stop.get("meterStop"), (stop or {}).get("reason", "Local"))
        if stop is None:
            bad("lost", "transaction %d (%s on connector %s) never got a StopTransaction"
                % (tid, start.get("idTag"), start.get("connectorId")))
            continue
        meter_stop = stop.get("meterStop")
        if meter_stop < meter_start:
            bad("meter", "transaction %d: meterStop %d < meterStart %d" % (tid, meter_stop, meter_start))
        t_start, t_stop = parse_time(start.get("timestamp")), parse_time(stop.get("timestamp"))
        if t_start is None or t_stop is None or t_stop < t_start - TIME_TOLERANCE_S:
            bad("meter", "transaction %d: stop time %s before start time %s"
                % (tid, stop.get("timestamp"), start.get("timestamp")))
        registers = []
        for p in meters_by_tid.get(tid, []):
            registers += energy_registers_wh(p.get("meterValue"))
        for t, wh in registers:
            if wh > meter_stop + REGISTER_TOLERANCE_WH:
                bad("meter", "transaction %d: meterStop %d below a reported register value %.1f Wh"
                    % (tid, meter_stop, wh))
                break
            if t is not None and t_start is not None and t_stop is not None and not (
                    t_start - TIME_TOLERANCE_S <= t <= t_stop + TIME_TOLERANCE_S):
                bad("meter-values", "transaction %d: meter value at %s outside %s..%s"
                    % (tid, t, start.get("timestamp"), stop.get("timestamp")))
                break
    return f.result(ledger, seen_tags, energy_tags, len(ledger.starts))


def analyze201(ledger: Ledger201, seen_tags: set, energy_tags: set) -> dict:
    """The 2.0.1 checks: TransactionEvents by (transactionId, seqNo) (module docstring)."""
    msgs = ledger.messages
    f = Findings(ledger.station_id)
    last_copy: dict = {}  # ident -> index of its latest copy
    events: dict = {}  # tid -> {seqNo: first copy}
    for i, m in enumerate(msgs):
        prev = last_copy.get(m.ident)
        last_copy[m.ident] = i
        f.arrived(m, prev is None)
        seq_no = m.ident[2]
        first = events.setdefault(m.tid, {}).setdefault(seq_no, m)
        if prev is None:
            continue
        if m.payload != first.payload:
            f.bad("duplicated", "transaction %s: two different events with seqNo %s: %r / %r"
                  % (m.tid, seq_no, first.payload, m.payload))
        elif is_redelivery(msgs, prev, i) or (m.kind == "meter" and ledger.restarted_between(msgs[prev], m)):
            # An Updated's confirmation is journaled with the next write (outbox.NOT_FSYNCED):
            # after a restart it may go out again, as 1.6's MeterValues do
            f.redelivered(m)
        else:
            f.bad("duplicated", "transaction %s: seqNo %s sent again after the agent had moved on (%r, %r)"
                  % (m.tid, seq_no, msgs[prev], m))
    for tid in sorted(events, key=str):
        check_transaction201(f, tid, events[tid])
    return f.result(ledger, seen_tags, energy_tags, len(events))


def check_transaction201(f: Findings, tid, by_seq: dict) -> None:
    """One transaction's events (seqNo -> first copy): Started at 0, Ended once and
    last, no gap, the register never going backwards."""
    started, ended = by_seq.get(0), [by_seq[n] for n in sorted(by_seq) if by_seq[n].kind == "stop"]
    if started is not None and started.kind != "start":
        f.bad("sequence", "transaction %s: seqNo 0 is %s, not Started" % (tid, started.payload.get("eventType")))
        started = None
    if any(m.kind == "start" for n, m in by_seq.items() if n != 0):
        f.bad("duplicated", "transaction %s: a Started event with a seqNo other than 0" % tid)
    tag = next((event_tag(m.payload) for m in by_seq.values() if m.kind != "stop" and event_tag(m.payload)), None)
    evse = ((started or next(iter(by_seq.values()))).payload.get("evse") or {}).get("id")
    if not ended:
        f.bad("lost", "transaction %s (%s on EVSE %s) never got an Ended event (seqNos %s)"
              % (tid, tag, evse, sorted(by_seq)))
    elif len(ended) > 1:
        f.bad("duplicated", "transaction %s ended %d times (seqNos %s)"
              % (tid, len(ended), [m.ident[2] for m in ended]))
    last = ended[0].ident[2] if ended else max(by_seq)
    missing = [n for n in range(last + 1) if n not in by_seq]
    if missing:
        f.bad("lost", "transaction %s: seqNo %s never received (%d events, Ended at %s)"
              % (tid, missing[:10], len(by_seq), last if ended else None), count=len(missing))
    if any(n > last for n in by_seq):
        f.bad("sequence", "transaction %s: events after its Ended: seqNos %s" % (tid, [n for n in by_seq if n > last]))
    start_wh = None if started is None else event_register_wh(started.payload)
    stop_wh = None if not ended else event_register_wh(ended[0].payload)
    reason = None if not ended else (ended[0].payload.get("transactionInfo") or {}).get("stoppedReason", "Local")
    f.transaction(tid, tag, evse, start_wh, stop_wh, reason)
    if started is not None and ended:
        check_register201(f, tid, by_seq, started, ended[0])


def check_register201(f: Findings, tid, by_seq: dict, started: TxMessage, ended: TxMessage) -> None:
    """Ended's register not below Started's, none going backwards in seqNo order, Ended not before Started."""
    t_start, t_stop = parse_time(started.payload.get("timestamp")), parse_time(ended.payload.get("timestamp"))
    if t_start is None or t_stop is None or t_stop < t_start - TIME_TOLERANCE_S:
        f.bad("meter", "transaction %s: Ended at %s before Started at %s"
              % (tid, ended.payload.get("timestamp"), started.payload.get("timestamp")))
    start_wh, stop_wh = event_register_wh(started.payload), event_register_wh(ended.payload)
    if start_wh is None or stop_wh is None or stop_wh < start_wh - REGISTER_TOLERANCE_WH:
        f.bad("meter", "transaction %s: Ended register %s < Started register %s" % (tid, stop_wh, start_wh))
        return
    previous = None  # (seqNo, Wh)
    for n in sorted(by_seq):
        wh = event_register_wh(by_seq[n].payload)
        if wh is None:
            continue
        if previous is not None and wh < previous[1] - REGISTER_TOLERANCE_WH:
            f.bad("meter", "transaction %s: register %.1f Wh at seqNo %d below %.1f Wh at seqNo %d"
                  % (tid, wh, n, previous[1], previous[0]))
            return
        previous = (n, wh)


# --------------------------------------------------------------------------- processes

def _die_with_parent():
    """preexec_fn: SIGKILL the agent when the soak dies, even by SIGKILL (Linux prctl)."""
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return lambda: prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def journal_counts(data_dir: str) -> tuple | None:
    """(queued messages, transactions) in a station's journal, read without writing; None if unreadable."""
    path = os.path.join(data_dir, "journal.sqlite")
    if not os.path.exists(path):
        return 0, 0
    try:
        db = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=1.0)
        try:
            return (db.execute("SELECT COUNT(*) FROM msg").fetchone()[0],
                    db.execute("SELECT COUNT(*) FROM tx").fetchone()[0])
        finally:
            db.close()
    except sqlite3.Error:
        return None


def agent_config(path: str, station_id: str, data_dir: str, url: str, opts) -> None:
    with open(path, "w") as f:
        f.write("""[station]
id = "%s"
data_dir = "%s"
log_level = "INFO"
journal_max_entries = %d

[csms]
url = "%s"%s
connect_timeout_s = 3
response_timeout_s = 5
reconnect_initial_s = 0.1
reconnect_max_s = 1.0

[ocpp]
MeterValueSampleInterval = %d
TransactionMessageRetryInterval = 1
AllowOfflineTxForUnknownId = true
LocalAuthorizeOffline = true

[board.evse]
connectors = %d
speed = %g
""" % (station_id, data_dir, opts.journal_max_entries, url,
       "" if opts.ocpp == "1.6" else '\nocpp_version = "%s"' % opts.ocpp,  # 1.6: auto, as before
       opts.sample_interval, AGENT_CONNECTORS, AGENT_SPEED))


class StationSoak:
    """One agent subprocess, its EV driver and its link flaps."""

    def __init__(self, index: int, opts, cs, ledger: BaseLedger, workdir: str, stats: dict) -> None:
        self.index = index
        self.opts = opts
        self.cs = cs
        self.ledger = ledger
        self.stats = stats
        self.station_id = ledger.station_id
        self.dir = os.path.join(workdir, "s%d" % index)
        self.data_dir = os.path.join(self.dir, "data")
        os.makedirs(self.data_dir, mode=0o700)
        self.config = os.path.join(self.dir, "agent.toml")
        self.sock = os.path.join(self.data_dir, "sim.sock")
        seed = opts.seed
        self.rng_run = random.Random("%s:%d:run" % (seed, index))
        self.rng_ev = random.Random("%s:%d:ev" % (seed, index))
        self.rng_link = random.Random("%s:%d:link" % (seed, index))
        self.proc = None
        self.lives = 0
        self.tags = itertools.count(1)
        self.sessions = 0  # fresh tags presented
        self.seen_tags: set = set()  # tags the sim status showed as a running local transaction
        self.energy_tags: set = set()  # ... while power flowed
        self.violations: list = []
        self.figures = {"runs": 0, "kills": 0, "targeted_kills": 0, "clean_stops": 0, "link_flaps": 0,
                        "swipes": 0, "remote_starts": 0, "remote_stops": 0, "unplugs": 0}

    # ------------------------------------------------------------------ the agent process
    async def spawn(self) -> None:
        self.lives += 1
        self.ledger.new_life()
        log_path = os.path.join(self.dir, "agent-%d.log" % self.lives)
        with open(log_path, "wb") as log_file:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "agent.app.cli", "run", "--config", self.config, cwd=ROOT,
                stdin=asyncio.subprocess.DEVNULL, stdout=log_file, stderr=log_file,
                preexec_fn=_die_with_parent())
        self.proc.log_path = log_path
        deadline = time.monotonic() + START_TIMEOUT_S
        while await self.status() is None:
            if self.proc.returncode is not None:
                raise SoakError("%s: the agent exited with status %s at start; log ends:\n%s"
                                % (self.station_id, self.proc.returncode, self.log_tail()))
            if time.monotonic() > deadline:
                raise SoakError("%s: the agent did not answer on %s within %.0f s; log ends:\n%s"
                                % (self.station_id, self.sock, START_TIMEOUT_S, self.log_tail()))
            await asyncio.sleep(0.02)

    def log_tail(self, lines: int = 20) -> str:
        try:
            with open(self.proc.log_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except (OSError, AttributeError):
            return ""

    async def kill(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.returncode is None:
            try:
                proc.kill()
            except ProcessLookupError:
                pass
        await asyncio.wait_for(proc.wait(), STOP_TIMEOUT_S)

    async def stop_clean(self) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), STOP_TIMEOUT_S)
            except asyncio.TimeoutError:
                self.violations.append("%s: the agent did not stop within %.0f s of SIGTERM"
                                       % (self.station_id, STOP_TIMEOUT_S))
        await self.kill()

    def check_alive(self) -> None:
        proc = self.proc
        if proc is not None and proc.returncode is not None:
            self.violations.append("%s: the agent exited by itself (status %s); log ends:\n%s"
                                   % (self.station_id, proc.returncode, self.log_tail()))
            self.proc = None

    # ------------------------------------------------------------------ sim control
    async def command(self, command: str, *args) -> dict | None:
        from hal.sim_control import send_command

        try:
            reply = await asyncio.wait_for(send_command(self.sock, command, list(args), COMMAND_TIMEOUT_S),
                                           COMMAND_TIMEOUT_S + 1)
        except (ConnectionError, OSError, asyncio.TimeoutError):
            return None
        return reply.get("result") if reply.get("ok") else None

    async def status(self) -> list | None:
        result = await self.command("status")
        if result is None:
            return None
        connectors = result["connectors"]
        for c in connectors:
            tag = c.get("id_tag")
            if tag:
                self.seen_tags.add(tag)
                if c.get("power_w", 0) > 0:
                    self.energy_tags.add(tag)
        return connectors

    def fresh_tag(self) -> str:
        self.sessions += 1
        return "S%dT%06d" % (self.index, next(self.tags))

    # ------------------------------------------------------------------ one run
    async def run_once(self) -> None:
        """Start the agent, play sessions, end with a kill -9 (or a clean stop)."""
        self.figures["runs"] += 1
        length_s = self.rng_run.uniform(self.opts.min_run_s, self.opts.max_run_s)
        r, delay_s = self.rng_run.random(), self.rng_run.uniform(0, 0.02)
        targeted = r < self.opts.targeted
        clean = not targeted and r < self.opts.targeted + self.opts.clean_stops
        t0 = time.monotonic()
        if self.proc is None:
            await self.spawn()
        tasks = [asyncio.create_task(self.drive(t0 + length_s)), asyncio.create_task(self.flap(t0 + length_s))]
        try:
            if targeted:
                hit = await self.wait_tx_event(t0 + length_s)
                if hit:
                    await asyncio.sleep(delay_s)  # inside the confirmation window
                    self.figures["targeted_kills"] += 1
            else:
                await asyncio.sleep(max(0.0, t0 + length_s - time.monotonic()))
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        self.check_alive()
        if clean:
            self.figures["clean_stops"] += 1
            await self.stop_clean()
        else:
            self.figures["kills"] += 1
            await self.kill()

    async def wait_tx_event(self, deadline: float) -> bool:
        """Wait for the central system's next answered Start/Stop of this station; False at the deadline."""
        event = self.ledger.tx_event
        try:
            await asyncio.wait_for(event.wait(), max(0.0, deadline - time.monotonic()))
            return True
        except asyncio.TimeoutError:
            return False

    async def drive(self, until: float) -> None:
        """The EVs: plug, swipe a fresh tag, sometimes remote start/stop, unplug."""
        rng = self.rng_ev
        while time.monotonic() < until:
            pause, pick, r = rng.uniform(0.05, 0.4), rng.randrange(AGENT_CONNECTORS), rng.random()
            await asyncio.sleep(pause)
            connectors = await self.status()
            if connectors is None:
                continue
            c = connectors[pick]
            cid = c["id"]
            if not c["plugged"]:
                if r < 0.5:
                    await self.command("plug", cid)
            elif not c.get("id_tag"):
                if r < 0.45:
                    self.figures["swipes"] += 1
                    await self.command("swipe", self.fresh_tag())
                elif r < 0.55:
                    await self.remote(*self.ledger.remote_start(self.fresh_tag(), cid))
                    self.figures["remote_starts"] += 1
                elif r < 0.65:
                    self.figures["unplugs"] += 1
                    await self.command("unplug", cid)
            elif r < 0.07:
                self.figures["unplugs"] += 1
                await self.command("unplug", cid)
            elif r < 0.10 and c.get("transaction_id") is not None:
                self.figures["remote_stops"] += 1
                await self.remote(*self.ledger.remote_stop(c["transaction_id"]))

    async def remote(self, action: str, payload: dict) -> None:
        handle = self.ledger.handle
        if handle is None or not handle.connected:
            return
        try:
            await asyncio.wait_for(handle.call(action, **payload), COMMAND_TIMEOUT_S)
        except Exception:  # disconnected, killed, timed out: the schedule goes on
            pass

    async def flap(self, until: float) -> None:
        """Link flaps: the central system closes the station's websocket now and then."""
        rng = self.rng_link
        while True:
            wait = rng.uniform(0.3, self.opts.flap_every_s * 2)
            if time.monotonic() + wait >= until:
                return
            await asyncio.sleep(wait)
            handle = self.ledger.handle
            if handle is not None and handle.connected:
                self.figures["link_flaps"] += 1
                try:
                    await handle.disconnect(timeout_s=COMMAND_TIMEOUT_S)
                except Exception:
                    pass

    # ------------------------------------------------------------------ the end
    async def finish(self, timeout_s: float) -> None:
        """Agent up, every EV unplugged, queue drained; then a clean stop and the journal check."""
        deadline = time.monotonic() + timeout_s
        if self.proc is None:
            await self.spawn()
        while time.monotonic() < deadline:
            self.check_alive()
            if self.proc is None:
                await self.spawn()
            connectors = await self.status()
            if connectors is not None:
                for c in connectors:
                    if c["plugged"]:
                        await self.command("unplug", c["id"])
                counts = journal_counts(self.data_dir)
                idle = all(not c["plugged"] and not c.get("id_tag") for c in connectors)
                if idle and counts == (0, 0) and not self.ledger.open_ids() \
                        and self.seen_tags <= self.ledger.started_tags():
                    break
            await asyncio.sleep(0.1)
        else:
            self.violations.append("%s: queue not drained within %.0f s (journal %r, open ids %s)"
                                   % (self.station_id, timeout_s, journal_counts(self.data_dir),
                                      sorted(self.ledger.open_ids())[:20]))
        await self.stop_clean()
        counts = journal_counts(self.data_dir)
        if counts != (0, 0):
            self.violations.append("%s: journal not empty after the final stop: %r (messages, transactions)"
                                   % (self.station_id, counts))


async def outages(cs, port: int, opts, until_event: asyncio.Event, stats: dict) -> None:
    """The central system goes away for a while (server stopped) and comes back on the same port."""
    rng = random.Random("%s:cs" % opts.seed)
    while not until_event.is_set():
        wait, away = rng.uniform(0.5, opts.outage_every_s * 2), rng.uniform(0.3, opts.outage_max_s)
        try:
            await asyncio.wait_for(until_event.wait(), wait)
            return
        except asyncio.TimeoutError:
            pass
        stats["outages"] += 1
        t0 = time.monotonic()
        await cs.stop()
        try:
            await asyncio.wait_for(until_event.wait(), away)
        except asyncio.TimeoutError:
            pass
        finally:
            await restart_cs(cs, port)
            stats["outage_s"] += time.monotonic() - t0


async def restart_cs(cs, port: int) -> None:
    for attempt in range(50):
        try:
            await cs.start(HOST, port)
            return
        except OSError:  # the port is briefly not reusable
            await asyncio.sleep(0.1)
    raise SoakError("cannot listen on %s:%d again" % (HOST, port))


# --------------------------------------------------------------------------- the soak

async def soak(opts, progress=None) -> dict:
    """Run the soak; returns the figures with ``violations`` and ``workdir``."""
    from tools.csms import TestCentralSystem

    t0 = time.monotonic()
    workdir = tempfile.mkdtemp(prefix="ocpp-soak-")
    ledger_class = LEDGERS[opts.ocpp]
    cs = TestCentralSystem(quiet=True, response_timeout_s=5, protocols=(ledger_class.SUBPROTOCOL,))
    await cs.start(HOST, 0)
    port = cs.port
    ids, order = itertools.count(1), itertools.count(1)
    stats = {"outages": 0, "outage_s": 0.0}
    stations = []
    for i in range(1, opts.stations + 1):
        ledger = ledger_class("SOAK%d" % i, ids, order)
        ledger.attach(cs)
        station = StationSoak(i, opts, cs, ledger, workdir, stats)
        agent_config(station.config, ledger.station_id, station.data_dir, cs.url, opts)
        stations.append(station)
    done = asyncio.Event()
    outage_task = asyncio.create_task(outages(cs, port, opts, done, stats)) if opts.outage_every_s > 0 else None
    error = None

    async def play(station: StationSoak) -> None:
        for run in range(opts.runs):
            await station.run_once()
            if progress is not None and (run + 1) % 25 == 0:
                progress("%s: %d/%d runs" % (station.station_id, run + 1, opts.runs))

    try:
        await asyncio.wait_for(asyncio.gather(*(play(s) for s in stations)), opts.timeout_s)
        done.set()
        if outage_task is not None:
            await outage_task
        if cs._server is None:
            await restart_cs(cs, port)
        if progress is not None:
            progress("final restart, unplug and drain")
        await asyncio.gather(*(s.finish(opts.drain_timeout_s) for s in stations))
    except (SoakError, asyncio.TimeoutError) as e:
        error = str(e) or "the soak did not finish within %.0f s" % opts.timeout_s
    finally:
        done.set()
        if outage_task is not None:
            outage_task.cancel()
            await asyncio.gather(outage_task, return_exceptions=True)
        for s in stations:
            try:
                await s.kill()
            except Exception:
                pass
        await cs.stop()

    result = {"seed": opts.seed, "ocpp": opts.ocpp, "stations": opts.stations, "runs": 0, "kills": 0,
              "targeted_kills": 0, "clean_stops": 0, "link_flaps": 0, "outages": stats["outages"],
              "outage_s": round(stats["outage_s"], 1), "sessions": 0, "local_transactions_seen": 0,
              "sessions_drawing_energy": 0, "swipes": 0, "remote_starts": 0, "remote_stops": 0, "unplugs": 0}
    totals: dict = {}
    violations: list = []
    for s in stations:
        for key, value in s.figures.items():
            result[key] += value
        result["sessions"] += s.sessions
        result["local_transactions_seen"] += len(s.seen_tags)
        result["sessions_drawing_energy"] += len(s.energy_tags)
        figures = analyze(s.ledger, s.seen_tags, s.energy_tags)
        violations += s.violations + figures.pop("violations")
        for key, value in figures.items():
            if isinstance(value, dict):
                bucket = totals.setdefault(key, {})
                for k, v in value.items():
                    bucket[k] = bucket.get(k, 0) + v
            elif key.startswith("max_"):
                totals[key] = max(totals.get(key, 0), value)
            else:
                totals[key] = totals.get(key, 0) + value
    result.update(totals)
    if error is not None:
        violations.insert(0, "soak error: %s" % error)
    result["violations"] = violations
    result["error"] = error
    result["elapsed_s"] = round(time.monotonic() - t0, 1)
    if violations or opts.keep:
        for s in stations:
            s.ledger.dump(os.path.join(s.dir, "ledger.jsonl"))
        result["workdir"] = workdir
    else:
        shutil.rmtree(workdir, ignore_errors=True)
        result["workdir"] = None
    return result


def render(r: dict) -> str:
    reasons = ", ".join("%s %d" % kv for kv in sorted(r.get("stop_reasons", {}).items())) or "-"
    names = LEDGERS[r.get("ocpp", "1.6")].LABELS
    lines = [
        "ocpp-agent fault soak, seed %s: OCPP %s, %d station(s), loopback %s"
        % (r["seed"], r.get("ocpp", "1.6"), r["stations"], HOST),
        "  runs              %d  (kill -9: %d, of which %d targeted at a Start/Stop answer; clean stops: %d)"
        % (r["runs"], r["kills"], r["targeted_kills"], r["clean_stops"]),
        "  link flaps        %d;  central system outages %d (%.1f s in all)"
        % (r["link_flaps"], r["outages"], r["outage_s"]),
        "  sessions          %d fresh tags (%d swipes, %d remote starts); %d seen running locally, %d drew power"
        % (r["sessions"], r["swipes"], r["remote_starts"], r["local_transactions_seen"],
           r["sessions_drawing_energy"]),
        "  transactions      %d  (stop reasons: %s); %d Wh reported" % (
            r.get("transactions", 0), reasons, r.get("energy_wh", 0)),
        "                    %d %s first received > %.0f s after its timestamp (queued offline"
        " or across a kill)" % (r.get("starts_delivered_late", 0), names["start"], LATE_S),
        "  messages          %d %s, %d %s, %d %s" % (
            r.get("start_messages", 0), names["start"], r.get("stop_messages", 0), names["stop"],
            r.get("meter_value_messages", 0), names["meter"]),
        "  redelivered       %d Start, %d Stop (kill or flap between answer and record), %d %s"
        " (at most %d after one reconnect)"
        % (r.get("redelivered_starts", 0), r.get("redelivered_stops", 0), r.get("redelivered_meter_values", 0),
           names["meter"], r.get("max_meter_values_redelivered_at_once", 0)),
        "  sim meter         %d %s below the previous %s on the connector (the simulated"
        % (r.get("meter_start_below_previous_stop", 0), names["meter_start"], names["meter_stop"]),
        "                    register is saved every %.0f s, so a kill -9 rewinds it; a real meter does not)"
        % SIM_SAVE_INTERVAL_S,
        "  lost              %d" % r.get("lost", 0),
        "  duplicated        %d" % r.get("duplicated", 0),
        "  violations        %d" % len(r["violations"]),
        "  elapsed           %.1f s" % r["elapsed_s"],
    ]
    for v in r["violations"][:50]:
        lines.append("  ! " + v.replace("\n", "\n    "))
    if len(r["violations"]) > 50:
        lines.append("  ! ... and %d more" % (len(r["violations"]) - 50))
    if r.get("workdir"):
        lines.append("  agent logs and data kept in %s" % r["workdir"])
    return "\n".join(lines)


def parse_args(argv: list | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tools.soak", description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=50, help="agent lives per station, each ended by a kill (default 50)")
    p.add_argument("--seed", default="1", help="the schedule's seed (default 1)")
    p.add_argument("--stations", type=int, default=1, help="agents soaked at once (default 1)")
    p.add_argument("--ocpp", choices=sorted(LEDGERS), default="1.6",
                   help="the OCPP version the central system serves and the agents pin (default 1.6)")
    p.add_argument("--min-run-s", type=float, default=0.3, help="shortest agent life (default 0.3)")
    p.add_argument("--max-run-s", type=float, default=5.0, help="longest agent life (default 5)")
    p.add_argument("--targeted", type=float, default=0.3,
                   help="share of kills aimed right after a Start/Stop answer (default 0.3)")
    p.add_argument("--clean-stops", type=float, default=0.1, help="share of runs ended by SIGTERM (default 0.1)")
    p.add_argument("--flap-every-s", type=float, default=3.0, help="mean time between link flaps (default 3)")
    p.add_argument("--outage-every-s", type=float, default=8.0,
                   help="mean time between central system outages, 0 = none (default 8)")
    p.add_argument("--outage-max-s", type=float, default=3.0, help="longest outage (default 3)")
    p.add_argument("--sample-interval", type=int, default=1, help="MeterValueSampleInterval, s (default 1)")
    p.add_argument("--journal-max-entries", type=int, default=20000)
    p.add_argument("--drain-timeout-s", type=float, default=60.0, help="final drain limit (default 60)")
    p.add_argument("--timeout-s", type=float, help="limit for all runs (default: runs x (max-run-s + 15))")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (always kept on failure)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    opts = p.parse_args(argv)
    if opts.runs < 1 or opts.stations < 1 or not 0 < opts.min_run_s <= opts.max_run_s:
        p.error("--runs and --stations must be >= 1, 0 < --min-run-s <= --max-run-s")
    if opts.timeout_s is None:
        opts.timeout_s = 60 + opts.runs * (opts.max_run_s + 15)
    return opts


def main(argv: list | None = None) -> int:
    import logging

    opts = parse_args(argv)
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("tools.csms").setLevel(logging.CRITICAL)  # stopped mid-call on purpose

    def progress(text: str) -> None:
        print("  " + text, file=sys.stderr, flush=True)

    try:
        result = asyncio.run(soak(opts, progress=None if opts.json else progress))
    except KeyboardInterrupt:
        return 2
    print(json.dumps(result, indent=2) if opts.json else render(result), flush=True)
    if result["error"] is not None:
        return 2
    return 1 if result["violations"] else 0


if __name__ == "__main__":
    sys.exit(main())
