"""Protocol-neutral data of the station model.

The core's own vocabulary: connector states, authorization outcomes, stop
reasons, availability and the answers to requests are lowercase words; each
protocol adapter maps them to and from its own (agent/ocpp16/vocabulary.py).
Every value is the snake_case form of the OCPP 1.6 name it was spelled as in
releases before 0.2, so ``neutral()`` reads values persisted by those.
"""

from hal.runtime.words import neutral  # reads the 1.6 spellings persisted before 0.2

# Connector states.
AVAILABLE = "available"
PREPARING = "preparing"
CHARGING = "charging"
SUSPENDED_EV = "suspended_ev"
SUSPENDED_EVSE = "suspended_evse"
FINISHING = "finishing"
RESERVED = "reserved"
UNAVAILABLE = "unavailable"
FAULTED = "faulted"

# Authorization outcomes.
AUTH_ACCEPTED = "accepted"
AUTH_BLOCKED = "blocked"
AUTH_EXPIRED = "expired"
AUTH_INVALID = "invalid"
AUTH_CONCURRENT = "concurrent_tx"

# Why a transaction ended.
REASON_LOCAL = "local"
REASON_REMOTE = "remote"
REASON_EV_DISCONNECTED = "ev_disconnected"
REASON_HARD_RESET = "hard_reset"
REASON_SOFT_RESET = "soft_reset"
REASON_POWER_LOSS = "power_loss"
REASON_REBOOT = "reboot"
REASON_DEAUTHORIZED = "de_authorized"
REASON_UNLOCK = "unlock_command"
REASON_EMERGENCY = "emergency_stop"
REASON_OTHER = "other"
REASON_MASTER_PASS = "master_pass"  # an identifier of the master pass group ended it (2.0.1 C16)
REASON_TIMEOUT = "timeout"  # no EV plugged in within ev_connect_timeout_s of a transaction's start
REASON_STOPPED_BY_EV = "stopped_by_ev"  # the EV stopped taking energy (stop point energy_transfer)

OPERATIVE = "operative"
INOPERATIVE = "inoperative"

# Answers to requests.
ACCEPTED = "accepted"
REJECTED = "rejected"
SCHEDULED = "scheduled"
NOT_SUPPORTED = "not_supported"
UNLOCKED = "unlocked"
UNLOCK_FAILED = "unlock_failed"
ONGOING_TRANSACTION = "ongoing_transaction"  # an unlock refused while a transaction runs

# What an identifier is (as the reader or the request says).
TOKEN_ISO14443 = "iso14443"  # RFID cards: the UID in hex (the PN532's)
TOKEN_ISO15693 = "iso15693"
TOKEN_CENTRAL = "central"  # made up by the central system (a remote start)
TOKEN_LOCAL = "local"
TOKEN_KEY_CODE = "key_code"
TOKEN_EMAID = "emaid"
TOKEN_MAC_ADDRESS = "mac_address"
TOKEN_NO_AUTHORIZATION = "no_authorization"

# What came last when a transaction began.
START_AUTHORIZED = "authorized"  # the identifier, with the EV already plugged in
START_CABLE_PLUGGED_IN = "cable_plugged_in"  # the EV, after the identifier
START_REMOTE = "remote_start"  # a remote start, with the EV already plugged in
START_EV_CONNECTED = "ev_connected"  # the EV alone (start point ev_connected): the identifier comes later
START_ENERGY_TRANSFER = "energy_transfer"  # energy began to flow (start point energy_transfer alone)

# Why a running transaction's state was reported (an outbox update entry).
CAUSE_CHARGING_STATE = "charging_state_changed"  # charging, suspended by the EV or by the charger
CAUSE_EV_DEPARTED = "ev_departed"  # the EV was unplugged; the transaction goes on
CAUSE_CABLE_PLUGGED_IN = "cable_plugged_in"  # an EV was plugged in again during the transaction
CAUSE_AUTHORIZED = "authorized"  # an identifier authorized a transaction that began without one
CAUSE_REMOTE_START = "remote_start"  # ... a remote start's identifier
CAUSE_STOP_AUTHORIZED = "stop_authorized"  # the authorization ended (the identifier presented again)
CAUSE_REMOTE_STOP = "remote_stop"  # ... the central system's stop
CAUSE_DEAUTHORIZED = "deauthorized"  # ... the central system refused the identifier

# Restarting: now (ending transactions) or once no transaction runs.
RESET_NOW = "now"
RESET_ON_IDLE = "on_idle"

# Why the agent last went down on purpose (kept over the restart; reported at the next boot).
RESTART_RESET = "reset"  # a reset carried out at once
RESTART_SCHEDULED_RESET = "scheduled_reset"  # a reset that waited for the running transactions to end


class IdTagInfo:
    """The answer to an authorization: status, optional expiry and parent tag."""

    __slots__ = ("status", "expiry_date", "parent_id_tag")

    def __init__(self, status: str, expiry_date: str | None = None, parent_id_tag: str | None = None) -> None:
        self.status = status
        self.expiry_date = expiry_date
        self.parent_id_tag = parent_id_tag

    @property
    def accepted(self) -> bool:
        return self.status == AUTH_ACCEPTED

    def __repr__(self) -> str:
        return "IdTagInfo(%r, parent=%r)" % (self.status, self.parent_id_tag)


class Sample:
    """One sampled value: measurand, value in ``unit``, optional phase."""

    __slots__ = ("measurand", "value", "unit", "phase", "context", "location")

    def __init__(self, measurand: str, value: float, unit: str, phase: str | None = None,
                 context: str = "Sample.Periodic", location: str = "Outlet") -> None:
        self.measurand = measurand
        self.value = value
        self.unit = unit
        self.phase = phase
        self.context = context
        self.location = location


class MeterSample:
    """Sampled values taken at one moment (an OCPP MeterValue)."""

    __slots__ = ("timestamp", "samples")

    def __init__(self, timestamp: float, samples: list) -> None:
        self.timestamp = timestamp
        self.samples = samples


class Transaction:
    """A charging transaction on one connector.

    ``id`` is the station's own identifier, a string made at the start (what a
    2.0.1 central system knows it by); ``local_id`` is its sequence number in the
    journal; ``backend_id`` is an identifier the central system assigned, if its
    protocol has one (1.6: the transactionId it answers a transaction's start with; None until
    confirmed, e.g. while offline).
    """

    def __init__(self, local_id: int, connector_id: int, id_tag: str, meter_start_wh: int,
                 start_time: float, parent_id_tag: str | None = None, reservation_id: int | None = None,
                 tx_id: str | None = None) -> None:
        self.local_id = local_id
        self.id = tx_id or transaction_id_for(local_id, start_time)
        self.connector_id = connector_id
        self.id_tag = id_tag
        self.parent_id_tag = parent_id_tag
        self.meter_start_wh = meter_start_wh
        self.start_time = start_time
        self.reservation_id = reservation_id
        self.backend_id = None  # the central system's identifier (1.6: an integer)
        self.authorized = True  # False after the answer to its start said the tag is not valid
        self.stop_data: list = []  # MeterSample list sent with the transaction's end
        # MeterSamples measured at its start (started_measurands), for its start's report; not
        # journaled here: the start's outbox entry carries them
        self.start_samples: list = []
        self.meter_stop_wh: int | None = None
        self.stop_time: float | None = None
        self.stop_reason: str | None = None
        self.stop_id_tag: str | None = None
        self.last_meter_wh: int = meter_start_wh  # the latest reading, kept for power-loss recovery
        self.last_meter_time: float = start_time
        self.backend = ""  # key of the central system it belongs to (agent/link/endpoint.py), set when queued
        self.token_kind = TOKEN_ISO14443  # what the identifier is (TOKEN_*)
        self.remote_start_id = None  # the remote start's id, when one started it (2.0.1)
        self.start_cause = None  # what came last at the start (START_*)
        self.event_count = 0  # events queued for it so far: the next one's sequence number
        # (state, EV connected) its last queued event reported (the start's: preparing with the EV);
        # not journaled: a transaction never outlives the agent's run (recovery ends it)
        self.reported_state = None
        self.awaiting_auth = False  # no identifier authorizes it (yet, or any more): no energy
        self.ev_seen = False  # an EV was plugged in during it
        self.start_deferred = False  # its start is reported once energy flows (START_ENERGY_TRANSFER)
        self.stop_cause = None  # what made the end happen when not its reason itself (CAUSE_*)
        self.energy_seen = False  # energy flowed during it (stop point energy_transfer); not journaled

    @property
    def stopped(self) -> bool:
        return self.stop_time is not None

    def __repr__(self) -> str:
        return "Transaction(%s, backend id=%r, connector=%d, tag=%r)" % (
            self.id, self.backend_id, self.connector_id, self.id_tag)


def sample_to_dict(s: MeterSample) -> dict:
    return {"t": s.timestamp, "v": [[x.measurand, x.value, x.unit, x.phase, x.context, x.location]
                                    for x in s.samples]}


def sample_from_dict(d: dict) -> MeterSample:
    return MeterSample(d["t"], [Sample(m, v, u, p, c, loc) for m, v, u, p, c, loc in d["v"]])


def transaction_id_for(local_id: int, start_time: float) -> str:
    """The station's identifier of a transaction: its start (epoch seconds) and journal
    sequence number, unique on this charger (at most 36 characters, as 2.0.1 allows)."""
    return "%d-%d" % (int(start_time), local_id)


_TX_FIELDS = ("local_id", "connector_id", "id_tag", "parent_id_tag", "meter_start_wh", "start_time",
              "reservation_id", "backend_id", "authorized", "meter_stop_wh", "stop_time", "stop_reason",
              "stop_id_tag", "last_meter_wh", "last_meter_time", "backend", "token_kind", "remote_start_id",
              "start_cause", "event_count", "awaiting_auth", "ev_seen", "start_deferred", "stop_cause")


def transaction_to_dict(tx: Transaction) -> dict:
    """A Transaction as plain data for the journal."""
    d = {name: getattr(tx, name) for name in _TX_FIELDS}
    d["id"] = tx.id
    d["stop_data"] = [sample_to_dict(s) for s in tx.stop_data]
    return d


def transaction_from_dict(d: dict) -> Transaction:
    """A journaled Transaction; rows of releases before 0.2 carry the central system's
    id as ``transaction_id`` and no ``id`` (made the same way as at the start)."""
    if "backend_id" not in d and "transaction_id" in d:
        d = dict(d, backend_id=d["transaction_id"])
    tx = Transaction(d["local_id"], d["connector_id"], d["id_tag"], d["meter_start_wh"], d["start_time"],
                     parent_id_tag=d.get("parent_id_tag"), reservation_id=d.get("reservation_id"),
                     tx_id=d.get("id"))
    for name in _TX_FIELDS[7:]:
        if name in d:
            setattr(tx, name, d[name])
    tx.stop_reason = neutral(tx.stop_reason)  # 1.6 spelling before 0.2
    tx.stop_data = [sample_from_dict(s) for s in d.get("stop_data", [])]
    return tx
