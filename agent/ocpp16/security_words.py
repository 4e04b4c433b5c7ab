"""Security event kinds (agent/security/events.py) in OCPP 1.6 words, and which are critical.

From the 1.6 security whitepaper (edition 3), §8 "Security Events": critical events
are pushed to the Central System with SecurityEventNotification, the others only
stored. 1.6 has no maintenance login events; its type is a free string, so the
2.0.1 names are used for them, critical as in 2.0.1.
"""

from agent.security import events as ev

EVENT_TYPE = {
    ev.FIRMWARE_UPDATED: "FirmwareUpdated",
    ev.FAILED_TO_AUTHENTICATE_AT_CSMS: "FailedToAuthenticateAtCentralSystem",
    ev.CSMS_FAILED_TO_AUTHENTICATE: "CentralSystemFailedToAuthenticate",
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
    ev.INVALID_CSMS_CERTIFICATE: "InvalidCentralSystemCertificate",
    ev.INVALID_CHARGING_STATION_CERTIFICATE: "InvalidChargePointCertificate",
    ev.INVALID_TLS_VERSION: "InvalidTLSVersion",
    ev.INVALID_TLS_CIPHER_SUITE: "InvalidTLSCipherSuite",
    ev.MAINTENANCE_LOGIN_ACCEPTED: "MaintenanceLoginAccepted",  # 2.0.1 name (not in 1.6)
    ev.MAINTENANCE_LOGIN_FAILED: "MaintenanceLoginFailed",  # 2.0.1 name (not in 1.6)
}

# The whitepaper's "Critical: Yes" rows, the maintenance logins (critical in 2.0.1), and the
# invalid certificates the central system sent: its use cases require that notification
# (M05 InstallCertificate, A02 CertificateSigned; OCTT TC_077 and TC_078), as 2.0.1 does;
# so does the secure firmware update for an invalid signing certificate or signature
# (L01.FR.02, L01.FR.03), although the table says "No" for them.
CRITICAL = frozenset((
    ev.FIRMWARE_UPDATED, ev.SETTING_SYSTEM_TIME, ev.STARTUP, ev.RESET, ev.SECURITY_LOG_CLEARED,
    ev.MEMORY_EXHAUSTION, ev.TAMPER_DETECTION_ACTIVATED,
    ev.MAINTENANCE_LOGIN_ACCEPTED, ev.MAINTENANCE_LOGIN_FAILED,
    ev.INVALID_CSMS_CERTIFICATE, ev.INVALID_CHARGING_STATION_CERTIFICATE,
    ev.INVALID_FIRMWARE_SIGNATURE, ev.INVALID_FIRMWARE_SIGNING_CERTIFICATE,
))


def is_critical(kind: str) -> bool:
    """Whether an event of ``kind`` is pushed to the Central System (not only stored)."""
    return kind in CRITICAL


def event_type(kind: str) -> str:
    """The SecurityEventNotification type of ``kind`` (a kind without a 1.6 name as it is)."""
    return EVENT_TYPE.get(kind, kind)
