"""The station core speaks its own vocabulary: no OCPP 1.6 configuration key names,
message names or status strings in its code (docstrings may cite the spec).

Each adapter maps the core's words to its protocol (agent/ocpp16/vocabulary.py,
agent/ocpp16/config_keys.py); a literal of a 1.6 name in agent/core would be the
core taking one protocol's side.
"""

import ast
import pathlib

from ocpp.v16 import enums

from agent.ocpp16.config_keys import FEATURE_PROFILES, core_keys

CORE = pathlib.Path(__file__).resolve().parents[2] / "agent" / "core"

# 1.6 enumerations whose values are protocol words (not shared physics: measurands,
# units, phases, reading contexts and locations are the same words in every version).
STATUS_ENUMS = (enums.ChargePointStatus, enums.Reason, enums.AuthorizationStatus, enums.AvailabilityType,
                enums.AvailabilityStatus, enums.UnlockStatus, enums.UpdateStatus, enums.UpdateType,
                enums.ChargingProfileStatus, enums.ClearChargingProfileStatus, enums.RemoteStartStopStatus,
                enums.ClearCacheStatus, enums.ConfigurationStatus, enums.ResetType, enums.ResetStatus,
                enums.ChargingProfilePurposeType, enums.ChargingProfileKindType, enums.RecurrencyKind,
                enums.TriggerMessageStatus, enums.MessageTrigger, enums.RegistrationStatus,
                enums.DataTransferStatus, enums.GetCompositeScheduleStatus, enums.CancelReservationStatus,
                enums.ReservationStatus, enums.ChargePointErrorCode)


def forbidden_words() -> set:
    words = {str(a.value) for a in enums.Action}
    words |= {d.name for d in core_keys(2, FEATURE_PROFILES)} | {"CentralSystemUrl", "AuthorizationKey"}
    for enum in STATUS_ENUMS:
        words |= {str(m.value) for m in enum}
    return words


def _docstrings(tree) -> set:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
    return ids


def protocol_literals(source: str, words: set) -> list:
    """(line, text) of every string literal in ``source`` (docstrings aside) that is, or
    contains as a word, one of ``words``."""
    tree = ast.parse(source)
    skip = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            tokens = set(node.value.replace(".", " ").replace(",", " ").replace(":", " ").split())
            if node.value in words or tokens & words:
                found.append((node.lineno, node.value))
    return found


def test_no_1_6_words_in_the_core():
    words = forbidden_words()
    found = {}
    for path in sorted(CORE.glob("*.py")):
        hits = protocol_literals(path.read_text(), words)
        if hits:
            found[path.name] = hits
    assert found == {}


def test_the_check_finds_what_it_looks_for():
    words = forbidden_words()
    assert {"StartTransaction", "MeterValueSampleInterval", "SuspendedEVSE", "TxProfile", "Accepted"} <= words
    source = '"""Sends StartTransaction."""\nstatus = "Accepted"\nkey = "MeterValueSampleInterval"\nok = "charging"\n'
    assert protocol_literals(source, words) == [(2, "Accepted"), (3, "MeterValueSampleInterval")]
