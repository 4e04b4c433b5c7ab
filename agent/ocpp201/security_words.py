"""Security event kinds (agent/security/events.py) in OCPP 2.0.1 words, and which are critical.

From Part 2 Appendix 1 "Security Events" (edition 3): every implemented event is
stored in the security log, the critical ones are also pushed to the CSMS with
SecurityEventNotificationRequest.
"""

from agent.security import events as ev

EVENT_TYPE = {
    ev.FIRMWARE_UPDATED: "FirmwareUpdated",
    ev.FAILED_TO_AUTHENTICATE_AT_CSMS: "FailedToAuthenticateAtCsms",
    ev.CSMS_FAILED_TO_AUTHENTICATE: "CsmsFailedToAuthenticate",
    ev.SETTING_SYSTEM_TIME: "SettingSystemTime",
    ev.STARTUP: "StartupOfTheDevice",
    ev.RESET: "ResetOrReboot",
    ev.SECURITY_LOG_CLEARED: "SecurityLogWasCleared",
    ev.RECONFIGURATION_OF_SECURITY_PARAMETERS: "ReconfigurationOfSecurityParameters",
    ev.MEMORY_EXHAUSTION: "MemoryExhaustion",
    ev.INVALID_MESSAGES: "InvalidMessages",
    ev.ATTEMPTED_REPLAY_ATTACKS: "AttemptedReplayAttacks",
    ev.TAMPER_DETECTION_ACTIVATED: "TamperDetectionActivated",
    ev.INVALID_FIRMWARE_SIGNATURE: "InvalidFirmwareSignature",
    ev.INVALID_FIRMWARE_SIGNING_CERTIFICATE: "InvalidFirmwareSigningCertificate",
    ev.INVALID_CSMS_CERTIFICATE: "InvalidCsmsCertificate",
    ev.INVALID_CHARGING_STATION_CERTIFICATE: "InvalidChargingStationCertificate",
    ev.INVALID_TLS_VERSION: "InvalidTLSVersion",
    ev.INVALID_TLS_CIPHER_SUITE: "InvalidTLSCipherSuite",
    ev.MAINTENANCE_LOGIN_ACCEPTED: "MaintenanceLoginAccepted",
    ev.MAINTENANCE_LOGIN_FAILED: "MaintenanceLoginFailed",
}

# The appendix's "Critical: Yes" rows. Unlike 1.6, the firmware, certificate and TLS
# failures are critical here.
CRITICAL = frozenset((
    ev.FIRMWARE_UPDATED, ev.SETTING_SYSTEM_TIME, ev.STARTUP, ev.RESET, ev.SECURITY_LOG_CLEARED,
    ev.MEMORY_EXHAUSTION, ev.TAMPER_DETECTION_ACTIVATED, ev.INVALID_FIRMWARE_SIGNATURE,
    ev.INVALID_FIRMWARE_SIGNING_CERTIFICATE, ev.INVALID_CSMS_CERTIFICATE,
    ev.INVALID_CHARGING_STATION_CERTIFICATE, ev.INVALID_TLS_VERSION, ev.INVALID_TLS_CIPHER_SUITE,
    ev.MAINTENANCE_LOGIN_ACCEPTED, ev.MAINTENANCE_LOGIN_FAILED,
))


def is_critical(kind: str) -> bool:
    """Whether an event of ``kind`` is pushed to the CSMS (not only stored)."""
    return kind in CRITICAL


def event_type(kind: str) -> str:
    """The SecurityEventNotificationRequest type of ``kind`` (a kind without a 2.0.1 name as it is)."""
    return EVENT_TYPE.get(kind, kind)
