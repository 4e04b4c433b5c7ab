"""The station core speaks its own vocabulary: no OCPP 1.6 configuration key names,
message names or status strings in its code, and no 1.6 key or message names in its
docstrings and comments either (status words such as "Available" or "Local" are
plain English there).

Each adapter maps the core's words to its protocol (agent/ocpp16/vocabulary.py,
agent/ocpp16/config_keys.py); a literal of a 1.6 name in agent/core would be the
core taking one protocol's side.
"""

import ast
import io
import pathlib
import re
import tokenize

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


def protocol_names() -> set:
    """1.6 message and configuration key names."""
    return ({str(a.value) for a in enums.Action} | {d.name for d in core_keys(2, FEATURE_PROFILES)}
            | {"CentralSystemUrl", "AuthorizationKey"})


def forbidden_words() -> set:
    words = protocol_names()
    for enum in STATUS_ENUMS:
        words |= {str(m.value) for m in enum}
    return words


def _words(text: str) -> set:
    return set(re.findall(r"[A-Za-z][A-Za-z0-9]*", text))


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
            if node.value in words or _words(node.value) & words:
                found.append((node.lineno, node.value))
    return found


def protocol_names_in_prose(source: str, names: set) -> list:
    """(line, name) of 1.6 message or key names in the docstrings and comments of ``source``."""
    tree = ast.parse(source)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and id(node) in _docstrings(tree):
            for offset, line in enumerate(node.value.splitlines()):
                found += [(node.lineno + offset, n) for n in sorted(_words(line) & names)]
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            found += [(tok.start[0], n) for n in sorted(_words(tok.string) & names)]
    return sorted(found)


def test_no_1_6_words_in_the_core():
    words = forbidden_words()
    found = {}
    for path in sorted(CORE.glob("*.py")):
        hits = protocol_literals(path.read_text(), words)
        if hits:
            found[path.name] = hits
    assert found == {}


def test_no_1_6_message_or_key_names_in_the_core_prose():
    names = protocol_names()
    found = {}
    for path in sorted(CORE.glob("*.py")):
        hits = protocol_names_in_prose(path.read_text(), names)
        if hits:
            found[path.name] = hits
    assert found == {}


def test_the_check_finds_what_it_looks_for():
    words = forbidden_words()
    assert {"StartTransaction", "MeterValueSampleInterval", "SuspendedEVSE", "TxProfile", "Accepted"} <= words
    source = '"""Sends StartTransaction."""\nstatus = "Accepted"\nkey = "MeterValueSampleInterval"\nok = "charging"\n'
    assert protocol_literals(source, words) == [(2, "Accepted"), (3, "MeterValueSampleInterval")]
    assert protocol_literals('log("no EV within ConnectionTimeOut;")', words) == [(1, "no EV within ConnectionTimeOut;")]
    prose = '"""Sends StartTransaction; Available is English."""\nx = 1  # see MaxEnergyOnInvalidId\n'
    assert protocol_names_in_prose(prose, protocol_names()) == [(1, "StartTransaction"), (2, "MaxEnergyOnInvalidId")]
