"""The station's neutral words (agent/core/model.py) in OCPP 1.6 spelling, and back.

Every neutral word is the snake_case of its 1.6 name, so the table is built
from the ``ocpp`` library's 1.6 enumerations rather than written out.
"""

from ocpp.v16 import enums

from agent.core.model import REASON_MASTER_PASS, neutral

_ENUMS = (enums.ChargePointStatus, enums.Reason, enums.AuthorizationStatus, enums.AvailabilityType,
          enums.AvailabilityStatus, enums.UnlockStatus, enums.UpdateStatus, enums.UpdateType,
          enums.ChargingProfileStatus, enums.ClearChargingProfileStatus, enums.RemoteStartStopStatus,
          enums.ClearCacheStatus, enums.ConfigurationStatus, enums.ResetType, enums.ChargePointErrorCode)
_TO_16 = {neutral(str(member.value)): str(member.value) for enum in _ENUMS for member in enum}
# Stop reasons only 2.0.1 knows, in the 1.6 word nearest to them (a transaction ended under
# 2.0.1 whose StopTransaction a 1.6 session sends): a master pass is a token presented.
_TO_16[REASON_MASTER_PASS] = "Local"


def to_16(word: str) -> str:
    """The 1.6 spelling of a neutral word (KeyError for a word 1.6 has no name for)."""
    return _TO_16[word]


def from_16(value: str) -> str:
    """The neutral word for a 1.6 value."""
    return neutral(value)
