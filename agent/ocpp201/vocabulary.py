"""The station's neutral words (agent/core/model.py, hal/interfaces.py) in OCPP 2.0.1 spelling, and back.

Unlike 1.6 (whose names the neutral words were made from, agent/ocpp16/vocabulary.py),
2.0.1 names things differently and often more coarsely or more finely than the core,
so every table here is written out, with the reason wherever a mapping is not one to
one. tests/ocpp201/test_events.py checks that each table covers every neutral word it
maps and that every 2.0.1 value is a member of the ``ocpp`` library's 2.0.1 enumeration.
Values are plain strings, ready for JSON.
"""

from agent.core import model
from agent.core.auth import DIFFERENTIAL, FULL, UPDATE_FAILED, UPDATE_VERSION_MISMATCH
from agent.core.outbox import METER, START, STOP
from agent.core.smart_charging import UNKNOWN
from hal.interfaces import NO_ERROR
from hal.runtime.words import neutral

# ---------------------------------------------------------------- connector status (G01)
# ConnectorStatusEnumType has no Preparing/Charging/Suspended*/Finishing: a connector with a
# plug in it is Occupied, whatever the transaction does (that goes in TransactionEvent's
# chargingState). The core's "preparing" also covers an authorization waiting for the plug
# (no EV yet), which 2.0.1 reports as Available (errata 6.2.28 removed the Occupied status
# the Authorized reusable state expected after a remote start): see connector_status().
CONNECTOR_STATUS = {
    model.AVAILABLE: "Available",
    model.PREPARING: "Occupied",
    model.CHARGING: "Occupied",
    model.SUSPENDED_EV: "Occupied",
    model.SUSPENDED_EVSE: "Occupied",
    model.FINISHING: "Occupied",
    model.RESERVED: "Reserved",  # also with an EV plugged in (errata 2.21, G01.FR.09)
    model.UNAVAILABLE: "Unavailable",
    model.FAULTED: "Faulted",
}


def connector_status(state: str, ev_connected: bool = True) -> str:
    """The ConnectorStatusEnumType of a neutral connector state: Occupied only while a
    plug is in the connector (a transaction whose EV left, or an authorization waiting
    for the plug, leaves the connector Available)."""
    status = CONNECTOR_STATUS[state]
    return "Available" if status == "Occupied" and not ev_connected else status


# ---------------------------------------------------------------- charging state (E01-E10)
# TransactionEvent's transactionInfo.chargingState, with an EV connected. Without one it is
# always Idle (OCTT TC_E_14/TC_E_20: chargingState Idle after the EV left). "preparing"
# and "finishing" with the EV connected are EVConnected (TC_E_09; errata 2.20: the end
# of a locally stopped transaction reports EVConnected). Unavailable or faulted with an
# EV connected means the charger offers no energy: SuspendedEVSE.
CHARGING_STATE_WITH_EV = {
    model.AVAILABLE: "EVConnected",  # not derived by the core with an EV present; listed for totality
    model.PREPARING: "EVConnected",
    model.CHARGING: "Charging",
    model.SUSPENDED_EV: "SuspendedEV",
    model.SUSPENDED_EVSE: "SuspendedEVSE",
    model.FINISHING: "EVConnected",
    model.RESERVED: "EVConnected",
    model.UNAVAILABLE: "SuspendedEVSE",
    model.FAULTED: "SuspendedEVSE",
}
IDLE = "Idle"


def charging_state(state: str, ev_connected: bool) -> str:
    """The ChargingStateEnumType of a connector in neutral ``state``."""
    return CHARGING_STATE_WITH_EV[state] if ev_connected else IDLE


# ---------------------------------------------------------------- why a transaction ended
# transactionInfo.stoppedReason of the Ended event (ReasonEnumType), and the triggerReason
# that goes with it when the end is what triggered the event.
STOPPED_REASON = {
    model.REASON_LOCAL: "Local",
    model.REASON_REMOTE: "Remote",
    model.REASON_EV_DISCONNECTED: "EVDisconnected",
    # 2.0.1 has one immediate reset (ResetEnumType Immediate, B12.FR.04: ImmediateReset);
    # OnIdle never ends a transaction. Hard and soft are 1.6 kinds of the same immediate reset.
    model.REASON_HARD_RESET: "ImmediateReset",
    model.REASON_SOFT_RESET: "ImmediateReset",
    model.REASON_POWER_LOSS: "PowerLoss",
    model.REASON_REBOOT: "Reboot",
    model.REASON_DEAUTHORIZED: "DeAuthorized",
    # ReasonEnumType has no UnlockCommand (2.0.1 answers an unlock during an authorized
    # transaction OngoingAuthorizedTransaction instead, F05.FR.02): a transaction the core
    # still ends for an unlock was ended by the central system's command, i.e. Remote.
    model.REASON_UNLOCK: "Remote",
    model.REASON_EMERGENCY: "EmergencyStop",
    model.REASON_OTHER: "Other",
    model.REASON_TIMEOUT: "Timeout",  # E03.FR.05: no EV within EVConnectionTimeOut (TC_E_05, TC_E_39)
    model.REASON_STOPPED_BY_EV: "StoppedByEV",  # TxStopPoint EnergyTransfer, the EV suspended (TC_E_22)
    model.REASON_MASTER_PASS: "MasterPass",  # C16.FR.07 (errata 2025-01)
}

STOP_TRIGGER = {
    model.REASON_LOCAL: "stop_authorized",  # E07, TC_E_15: the token presented again
    model.REASON_REMOTE: "remote_stop",  # F03, TC_E_21
    model.REASON_EV_DISCONNECTED: "ev_communication_lost",  # E06(S2), TC_E_14/TC_E_20
    model.REASON_HARD_RESET: "reset_command",  # B12.FR.04
    model.REASON_SOFT_RESET: "reset_command",
    # No command caused these: the station found an abnormal condition (the supply failed,
    # or the agent restarted with the transaction open).
    model.REASON_POWER_LOSS: "abnormal_condition",
    model.REASON_REBOOT: "abnormal_condition",
    model.REASON_DEAUTHORIZED: "deauthorized",  # E06(S3), TC_E_16
    model.REASON_UNLOCK: "unlock_command",
    model.REASON_EMERGENCY: "abnormal_condition",
    model.REASON_OTHER: "abnormal_condition",
    model.REASON_TIMEOUT: "ev_connect_timeout",  # TC_E_05, TC_E_39
    model.REASON_STOPPED_BY_EV: "charging_state_changed",  # TC_E_22 (chargingState EVConnected)
    model.REASON_MASTER_PASS: "stop_authorized",  # a token presented: E07 (C16.FR.07, TC_C_14)
}

# The triggerReason of a Started event, by what came last at the start (Transaction.start_cause).
# Authorization first, then the EV: CablePluggedIn (errata 2025-01 figure E01 S5; TC_E_04 through
# EnergyTransferStarted part 1); a start on the energy flowing: ChargingStateChanged (TC_E_02).
# A remote start is RemoteStart whatever came last (OCTT general rules).
START_TRIGGER = {
    model.START_AUTHORIZED: "authorized",
    model.START_CABLE_PLUGGED_IN: "cable_plugged_in",
    model.START_REMOTE: "remote_start",
    model.START_EV_CONNECTED: "cable_plugged_in",  # TC_E_09
    model.START_ENERGY_TRANSFER: "charging_state_changed",
}

# ---------------------------------------------------------------- trigger reasons
# The adapter's words for TriggerReasonEnumType: the snake_case of each name, one to one
# (the core does not name causes; the 2.0.1 adapter picks them from what happened).
TRIGGER_REASON_VALUES = (
    "Authorized", "CablePluggedIn", "ChargingRateChanged", "ChargingStateChanged", "Deauthorized",
    "EnergyLimitReached", "EVCommunicationLost", "EVConnectTimeout", "MeterValueClock",
    "MeterValuePeriodic", "TimeLimitReached", "Trigger", "UnlockCommand", "StopAuthorized",
    "EVDeparted", "EVDetected", "RemoteStop", "RemoteStart", "AbnormalCondition",
    "SignedDataReceived", "ResetCommand",
)
TRIGGER_REASON = {neutral(v): v for v in TRIGGER_REASON_VALUES}
AUTHORIZED = "authorized"
REMOTE_START = "remote_start"
CHARGING_STATE_CHANGED = "charging_state_changed"

# The trigger of an Updated event carrying meter values, by the samples' reading context.
METER_TRIGGER = {
    "Sample.Periodic": "meter_value_periodic",
    "Sample.Clock": "meter_value_clock",
    "Trigger": "trigger",  # a TriggerMessage for MeterValues/TransactionEvent (F06)
}

# ---------------------------------------------------------------- transaction event types
# The core's outbox kinds (agent/core/outbox.py): UPDATE is its kind for a change of a running
# transaction's state (rendered as an Updated event that is not about meter values).
UPDATE = "update"
EVENT_TYPE = {START: "Started", METER: "Updated", UPDATE: "Updated", STOP: "Ended"}

# ---------------------------------------------------------------- authorization (C01-C15)
AUTHORIZATION_STATUS = {
    model.AUTH_ACCEPTED: "Accepted",
    model.AUTH_BLOCKED: "Blocked",
    model.AUTH_CONCURRENT: "ConcurrentTx",
    model.AUTH_EXPIRED: "Expired",
    model.AUTH_INVALID: "Invalid",
}
# From the central system: the five shared statuses, and 2.0.1's finer refusals read as the
# core's invalid - a token that may not charge here and now. The core then refuses it like
# an invalid one (and caches it so); what it loses is only why.
AUTHORIZATION_FROM_201 = dict({v: k for k, v in AUTHORIZATION_STATUS.items()}, **{
    "NoCredit": model.AUTH_INVALID,
    "NotAllowedTypeEVSE": model.AUTH_INVALID,
    "NotAtThisLocation": model.AUTH_INVALID,
    "NotAtThisTime": model.AUTH_INVALID,
    "Unknown": model.AUTH_INVALID,  # the central system does not know the token (1.6: Invalid)
})

# ---------------------------------------------------------------- id token types (C01-C04)
# What kind of identifier a token is. The core keeps only the identifier; the reader (or
# the remote start that brought it) knows its kind. Neutral words: the snake_case names.
TOKEN_KINDS = {
    "iso14443": "ISO14443",  # RFID UIDs as the PN532 reads them (MIFARE, NFC type A): the default
    "iso15693": "ISO15693",
    "central": "Central",  # made up by the central system (remote starts)
    "local": "Local",
    "key_code": "KeyCode",
    "emaid": "eMAID",
    "mac_address": "MacAddress",
    "no_authorization": "NoAuthorization",  # idToken "" (OCTT's general rules)
}
TOKEN_KIND_FROM_201 = {v: k for k, v in TOKEN_KINDS.items()}
DEFAULT_TOKEN_KIND = "iso14443"

# ---------------------------------------------------------------- answers to requests
# Per 2.0.1 request, the status its response gives for each of the core's answers.
ANSWERS = {
    "ChangeAvailability": {model.ACCEPTED: "Accepted", model.REJECTED: "Rejected", model.SCHEDULED: "Scheduled"},
    "Reset": {model.ACCEPTED: "Accepted", model.REJECTED: "Rejected", model.SCHEDULED: "Scheduled"},
    "RequestStartTransaction": {model.ACCEPTED: "Accepted", model.REJECTED: "Rejected"},
    "RequestStopTransaction": {model.ACCEPTED: "Accepted", model.REJECTED: "Rejected"},
    # The core answers not_supported for a connector it does not have (and for one without a
    # lock, which it cannot tell apart); 2.0.1's nearest is UnknownConnector. Asked not to stop a
    # running transaction (F05.FR.02), it answers ongoing_transaction.
    "UnlockConnector": {model.UNLOCKED: "Unlocked", model.UNLOCK_FAILED: "UnlockFailed",
                        model.NOT_SUPPORTED: "UnknownConnector",
                        model.ONGOING_TRANSACTION: "OngoingAuthorizedTransaction"},
    # 2.0.1 has no NotSupported here: a disabled local list cannot take an update, Failed.
    "SendLocalList": {model.ACCEPTED: "Accepted", UPDATE_FAILED: "Failed",
                      UPDATE_VERSION_MISMATCH: "VersionMismatch", model.NOT_SUPPORTED: "Failed"},
    "SetChargingProfile": {model.ACCEPTED: "Accepted", model.REJECTED: "Rejected"},
    "ClearChargingProfile": {model.ACCEPTED: "Accepted", UNKNOWN: "Unknown"},
    "GetCompositeSchedule": {model.ACCEPTED: "Accepted", model.REJECTED: "Rejected"},
    "ClearCache": {model.ACCEPTED: "Accepted", model.REJECTED: "Rejected"},
    "TriggerMessage": {model.ACCEPTED: "Accepted", model.REJECTED: "Rejected",
                       model.NOT_SUPPORTED: "NotImplemented"},
}


def answer(action: str, word: str) -> str:
    """The status of ``action``'s response for the core's answer ``word`` (KeyError when
    the response has no status for it)."""
    return ANSWERS[action][word]


# Words of the central system's requests, read into the core's.
OPERATIONAL_STATUS = {"Operative": model.OPERATIVE, "Inoperative": model.INOPERATIVE}  # ChangeAvailability
RESET_TYPE = {"Immediate": model.RESET_NOW, "OnIdle": model.RESET_ON_IDLE}  # Reset
UPDATE_TYPE = {"Full": FULL, "Differential": DIFFERENTIAL}  # SendLocalList
# BootNotification reason from why the last run went down (Station.boot_cause): a reset
# carried out at once is RemoteReset (TC_B_22/23), one that waited for transactions ScheduledReset
# (TC_B_21/41); anything else is a power-up.
# SetNetworkProfile: connectionData -> the neutral network profile (agent/link/network_profiles.py)
OCPP_VERSIONS = {"OCPP12": "1.2", "OCPP15": "1.5", "OCPP16": "1.6", "OCPP20": "2.0.1"}


def network_profile(data: dict) -> dict:
    return {"url": data["ocppCsmsUrl"], "security_profile": data["securityProfile"],
            "ocpp_version": OCPP_VERSIONS.get(data["ocppVersion"], data["ocppVersion"]),
            "transport": data["ocppTransport"], "message_timeout_s": data["messageTimeout"],
            "interface": data["ocppInterface"]}


BOOT_REASON = {None: "PowerUp", model.RESTART_RESET: "RemoteReset",
               model.RESTART_SCHEDULED_RESET: "ScheduledReset"}

# ---------------------------------------------------------------- faults (NotifyEvent, N07/G05)
# A fault word of hal/interfaces.py -> (component, variable) of the standardized device model
# (part 2, appendix 3) whose boolean turns "true" while the fault lasts; the word itself
# goes in techCode. Each pair is the component the appendix describes for that hardware,
# with the variable it names for that condition.
FAULTS = {
    # "Problem: Locking Failed"; OCTT TC_G_20 expects exactly this pair.
    "connector_lock_failure": ("ConnectorPlugRetentionLock", "Problem"),
    # The control pilot (IEC 61851-1) is how the station talks to the EV: pilot short, diode
    # fault, state E. "Problem" includes faults propagated from a connected component (the EV).
    "ev_communication_error": ("CPPWMController", "Problem"),
    # The RCD (US: ground fault breaker) opened: "Tripped: breaker opened (manual reset required)".
    "ground_failure": ("RCD", "Tripped"),
    # TemperatureSensor "Active: high temperature (over MaxSet)"; its Problem is a sensor fault.
    "high_temperature": ("TemperatureSensor", "Active"),
    # A controller that does not answer or reports a device failure: "Problem: controller fault".
    "internal_error": ("Controller", "Problem"),
    # No device model place exists for a local list conflict; 1.6 reported it as the whole
    # station's (connector 0) status, so the station's component, as a problem.
    "local_list_conflict": ("ChargingStation", "Problem"),
    # Anything else: "Problem: some problem/fault exists" of the EVSE (the station without one).
    "other_error": ("EVSE", "Problem"),
    # The over-current protection disconnected the supply: its "Active: tripped".
    "over_current_failure": ("OverCurrentProtection", "Active"),
    # The meter that bills (meterStart/Stop): FiscalMetering "Problem: metering fault (e.g. read error)".
    "power_meter_failure": ("FiscalMetering", "Problem"),
    # Contactor stuck or failing to close: PowerContactor "Problem: Close/Open failed".
    "power_switch_failure": ("PowerContactor", "Problem"),
    "reader_failure": ("TokenReader", "Problem"),  # "Problem: token reader fault"
    # The station could not restart: its controller's fault.
    "reset_failure": ("Controller", "Problem"),
    # The supply voltage out of range: the ElectricalFeed's problem (the station's feed).
    "under_voltage": ("ElectricalFeed", "Problem"),
    "over_voltage": ("ElectricalFeed", "Problem"),
    # The wireless link's signal is weak: DataLink "Problem: communications module or link fault".
    "weak_signal": ("DataLink", "Problem"),
}
NOT_A_FAULT = NO_ERROR
# Components of a connector (their ComponentType.evse names the connector too).
CONNECTOR_COMPONENTS = ("ConnectorPlugRetentionLock", "Connector")


def fault_component(word: str, evse_id: int | None) -> tuple:
    """(component, variable) reporting fault ``word`` (ValueError for no_error or an
    unknown word); the generic EVSE component is the ChargingStation's without an EVSE."""
    if word not in FAULTS:
        raise ValueError("not a fault word: %r" % (word,))
    component, variable = FAULTS[word]
    if component == "EVSE" and not evse_id:
        component = "ChargingStation"
    return component, variable
