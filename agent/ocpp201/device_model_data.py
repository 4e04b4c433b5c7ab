"""The OCPP 2.0.1 device model of this charging station, as data (read by device_model.py).

One row per variable. Keys of a row:

- ``c``, ``v``: component and variable name; ``ci``, ``vi``: their instances.
- ``scope``: ``station`` (default; no EVSE), ``evse`` (one per EVSE) or ``connector`` (one per
  connector of each EVSE).
- ``type``: the 2.0.1 dataType; ``unit``; ``min``/``max`` (maxLimit of a string: its length);
  ``values``: the valuesList of an OptionList, SequenceList or MemberList; ``min_items``.
- ``mut``: mutability of the Actual attribute (ReadOnly, ReadWrite, WriteOnly).
- Where the value lives, one of:
  ``setting``  a neutral setting of agent/core/settings.py (shared with OCPP 1.6); its limits
               and choices apply too. With ``view``: a read-only mirror of that setting;
  ``default``  kept by the device model (persisted in data_dir/device-model.json when written);
  ``param``    a fact about the station given to ``DeviceModel.for_station`` (phases, power…);
  ``live``     read at run time through ``DeviceModel.attach`` (``default`` until attached).
- ``max_setting``/``max_param``: the maxLimit characteristic from a setting or station fact.
- ``maxset_param``: a read-only MaxSet attribute with that station fact's value.
- ``reboot``: a new value takes effect after a reboot (SetVariables answers RebootRequired).
- ``check``: an extra rule on the value's form (``int_list``: comma-separated integers).
- ``feature``: the row exists only with that feature (``local_list``, ``smart_charging``).
- ``words``: a list setting's items in 2.0.1 words -> the setting's neutral words.
"""

from agent.core.settings import MEASURANDS, RATE_UNITS

RO, RW, WO = "ReadOnly", "ReadWrite", "WriteOnly"
AVAILABILITY_STATES = ("Available", "Occupied", "Reserved", "Unavailable", "Faulted")
# Transaction start/stop points -> the core's words (no bay sensor, no signed data: those two are left out)
TX_POINTS = {"EVConnected": "ev_connected", "Authorized": "authorized", "PowerPathClosed": "power_path_closed",
             "EnergyTransfer": "energy_transfer"}
FILE_TRANSFER_PROTOCOLS = ("FTP", "FTPS", "HTTP", "HTTPS", "SFTP")
TIME_SOURCES = ("Heartbeat",)  # the CSMS's clock, from the Heartbeat and BootNotification responses
REPORT_BYTES = 65536  # well under the websocket's 1 MiB frame limit (agent/link/connection.py)

VARIABLES = (
    # AlignedDataCtrlr
    {"c": "AlignedDataCtrlr", "v": "Available", "type": "boolean", "mut": RO, "default": True},
    {"c": "AlignedDataCtrlr", "v": "Interval", "type": "integer", "unit": "s", "mut": RW,
     "setting": "aligned_interval_s"},
    {"c": "AlignedDataCtrlr", "v": "Measurands", "type": "MemberList", "mut": RW, "values": MEASURANDS,
     "setting": "aligned_measurands"},
    {"c": "AlignedDataCtrlr", "v": "TxEndedInterval", "type": "integer", "unit": "s", "mut": RW,
     "setting": "aligned_end_interval_s"},
    {"c": "AlignedDataCtrlr", "v": "TxEndedMeasurands", "type": "MemberList", "mut": RW, "values": MEASURANDS,
     "setting": "aligned_end_measurands"},
    {"c": "AlignedDataCtrlr", "v": "SendDuringIdle", "type": "boolean", "mut": RW,
     "setting": "aligned_send_during_idle"},
    # AuthCacheCtrlr
    {"c": "AuthCacheCtrlr", "v": "Available", "type": "boolean", "mut": RO, "default": True},
    {"c": "AuthCacheCtrlr", "v": "Enabled", "type": "boolean", "mut": RW, "setting": "auth_cache_enabled"},
    {"c": "AuthCacheCtrlr", "v": "LifeTime", "type": "integer", "unit": "s", "mut": RW,
     "setting": "auth_cache_lifetime_s"},
    {"c": "AuthCacheCtrlr", "v": "DisablePostAuthorize", "type": "boolean", "mut": RW,
     "setting": "auth_cache_disable_post_authorize"},
    # AuthCtrlr
    {"c": "AuthCtrlr", "v": "Enabled", "type": "boolean", "mut": RO, "default": True},
    {"c": "AuthCtrlr", "v": "AuthorizeRemoteStart", "type": "boolean", "mut": RW,
     "setting": "authorize_remote_start"},
    {"c": "AuthCtrlr", "v": "DisableRemoteAuthorization", "type": "boolean", "mut": RW,
     "setting": "disable_remote_authorization"},
    {"c": "AuthCtrlr", "v": "LocalAuthorizeOffline", "type": "boolean", "mut": RW,
     "setting": "local_authorize_offline"},
    {"c": "AuthCtrlr", "v": "LocalPreAuthorize", "type": "boolean", "mut": RW, "setting": "local_pre_authorize"},
    {"c": "AuthCtrlr", "v": "MasterPassGroupId", "type": "string", "mut": RW, "max": 36,  # an IdToken's length
     "setting": "master_pass_group_id"},
    {"c": "AuthCtrlr", "v": "OfflineTxForUnknownIdEnabled", "type": "boolean", "mut": RW,
     "setting": "offline_start_unknown_id"},
    # ChargingStation
    {"c": "ChargingStation", "v": "AvailabilityState", "type": "OptionList", "mut": RO,
     "values": AVAILABILITY_STATES, "live": True, "default": "Available"},
    {"c": "ChargingStation", "v": "Available", "type": "boolean", "mut": RO, "default": True},
    {"c": "ChargingStation", "v": "SupplyPhases", "type": "integer", "mut": RO, "param": "supply_phases"},
    # ClockCtrlr
    {"c": "ClockCtrlr", "v": "DateTime", "type": "dateTime", "mut": RO, "live": True},
    {"c": "ClockCtrlr", "v": "TimeSource", "type": "SequenceList", "mut": RW, "values": TIME_SOURCES,
     "min_items": 1, "default": ["Heartbeat"]},
    # DeviceDataCtrlr
    {"c": "DeviceDataCtrlr", "v": "ItemsPerMessage", "vi": "GetReport", "type": "integer", "mut": RO,
     "min": 1, "default": 100},
    {"c": "DeviceDataCtrlr", "v": "ItemsPerMessage", "vi": "GetVariables", "type": "integer", "mut": RO,
     "min": 1, "default": 50},
    {"c": "DeviceDataCtrlr", "v": "ItemsPerMessage", "vi": "SetVariables", "type": "integer", "mut": RO,
     "min": 1, "default": 50},
    {"c": "DeviceDataCtrlr", "v": "BytesPerMessage", "vi": "GetReport", "type": "integer", "mut": RO,
     "min": 1024, "default": REPORT_BYTES},
    {"c": "DeviceDataCtrlr", "v": "BytesPerMessage", "vi": "GetVariables", "type": "integer", "mut": RO,
     "min": 1024, "default": REPORT_BYTES},
    {"c": "DeviceDataCtrlr", "v": "BytesPerMessage", "vi": "SetVariables", "type": "integer", "mut": RO,
     "min": 1024, "default": REPORT_BYTES},
    # LocalAuthListCtrlr
    {"c": "LocalAuthListCtrlr", "v": "Available", "type": "boolean", "mut": RO, "default": True,
     "feature": "local_list"},
    {"c": "LocalAuthListCtrlr", "v": "Enabled", "type": "boolean", "mut": RW, "setting": "local_list_enabled",
     "feature": "local_list"},
    {"c": "LocalAuthListCtrlr", "v": "DisablePostAuthorize", "type": "boolean", "mut": RW,
     "setting": "local_list_disable_post_authorize", "feature": "local_list"},
    {"c": "LocalAuthListCtrlr", "v": "Entries", "type": "integer", "mut": RO, "live": True, "default": 0,
     "max_setting": "local_list_max_entries", "feature": "local_list"},
    {"c": "LocalAuthListCtrlr", "v": "ItemsPerMessage", "type": "integer", "mut": RO,
     "setting": "local_list_max_per_message", "feature": "local_list"},
    {"c": "LocalAuthListCtrlr", "v": "BytesPerMessage", "type": "integer", "mut": RO, "min": 1024,
     "default": REPORT_BYTES, "feature": "local_list"},
    # OCPPCommCtrlr
    {"c": "OCPPCommCtrlr", "v": "FileTransferProtocols", "type": "MemberList", "mut": RO,
     "values": FILE_TRANSFER_PROTOCOLS, "default": ["HTTPS", "HTTP", "FTP"]},
    {"c": "OCPPCommCtrlr", "v": "HeartbeatInterval", "type": "integer", "unit": "s", "mut": RW,
     "setting": "heartbeat_interval_s"},
    {"c": "OCPPCommCtrlr", "v": "MessageTimeout", "vi": "Default", "type": "integer", "unit": "s", "mut": RO,
     "param": "message_timeout_s"},
    {"c": "OCPPCommCtrlr", "v": "MessageAttemptInterval", "vi": "TransactionEvent", "type": "integer",
     "unit": "s", "mut": RW, "setting": "tx_message_retry_interval_s"},
    {"c": "OCPPCommCtrlr", "v": "MessageAttempts", "vi": "TransactionEvent", "type": "integer", "mut": RW,
     "setting": "tx_message_attempts"},
    {"c": "OCPPCommCtrlr", "v": "NetworkConfigurationPriority", "type": "string", "mut": RW, "max": 100,
     "check": "int_list", "default": "1", "live": True},
    {"c": "OCPPCommCtrlr", "v": "NetworkProfileConnectionAttempts", "type": "integer", "mut": RW, "min": 1,
     "max": 100, "default": 3},
    {"c": "OCPPCommCtrlr", "v": "OfflineThreshold", "type": "integer", "unit": "s", "mut": RW, "min": 0,
     "max": 86400, "default": 60},
    {"c": "OCPPCommCtrlr", "v": "RetryBackOffRandomRange", "type": "integer", "unit": "s", "mut": RW, "min": 0,
     "max": 3600, "default": 1},
    {"c": "OCPPCommCtrlr", "v": "RetryBackOffRepeatTimes", "type": "integer", "mut": RW, "min": 0, "max": 20,
     "default": 7},
    {"c": "OCPPCommCtrlr", "v": "RetryBackOffWaitMinimum", "type": "integer", "unit": "s", "mut": RW, "min": 0,
     "max": 3600, "default": 1},
    {"c": "OCPPCommCtrlr", "v": "ResetRetries", "type": "integer", "mut": RW, "setting": "reset_retries"},
    {"c": "OCPPCommCtrlr", "v": "UnlockOnEVSideDisconnect", "type": "boolean", "mut": RW,
     "setting": "unlock_on_ev_disconnect"},
    {"c": "OCPPCommCtrlr", "v": "WebSocketPingInterval", "type": "integer", "unit": "s", "mut": RW,
     "setting": "ws_ping_interval_s"},
    # ReservationCtrlr (H01-H04; agent/core/reservations.py)
    {"c": "ReservationCtrlr", "v": "Available", "type": "boolean", "mut": RO, "default": True},
    {"c": "ReservationCtrlr", "v": "Enabled", "type": "boolean", "mut": RW, "setting": "reservations_enabled"},
    {"c": "ReservationCtrlr", "v": "NonEvseSpecific", "type": "boolean", "mut": RW, "setting": "reserve_unspecified"},
    # SampledDataCtrlr
    {"c": "SampledDataCtrlr", "v": "Available", "type": "boolean", "mut": RO, "default": True},
    {"c": "SampledDataCtrlr", "v": "TxEndedInterval", "type": "integer", "unit": "s", "mut": RW,
     "setting": "sample_end_interval_s"},
    {"c": "SampledDataCtrlr", "v": "TxEndedMeasurands", "type": "MemberList", "mut": RW, "values": MEASURANDS,
     "setting": "sampled_end_measurands"},
    {"c": "SampledDataCtrlr", "v": "TxStartedMeasurands", "type": "MemberList", "mut": RW, "values": MEASURANDS,
     "setting": "started_measurands"},
    {"c": "SampledDataCtrlr", "v": "TxUpdatedInterval", "type": "integer", "unit": "s", "mut": RW,
     "setting": "sample_interval_s"},
    {"c": "SampledDataCtrlr", "v": "TxUpdatedMeasurands", "type": "MemberList", "mut": RW, "values": MEASURANDS,
     "setting": "sampled_measurands"},
    # SecurityCtrlr
    {"c": "SecurityCtrlr", "v": "BasicAuthPassword", "type": "string", "mut": WO, "min": 16, "max": 40,
     "live": True},
    {"c": "SecurityCtrlr", "v": "AdditionalRootCertificateCheck", "type": "boolean", "mut": RO, "default": False},
    {"c": "SecurityCtrlr", "v": "AllowSecurityProfileDowngrade", "type": "boolean", "mut": RW,
     "setting": "allow_security_profile_downgrade"},  # 2.0.1 errata 2025-01: 3 -> 2 only
    {"c": "SecurityCtrlr", "v": "CertificateEntries", "type": "integer", "mut": RO, "live": True, "default": 0},
    {"c": "SecurityCtrlr", "v": "CertSigningRepeatTimes", "type": "integer", "mut": RW,
     "setting": "cert_signing_repeat_times"},
    {"c": "SecurityCtrlr", "v": "CertSigningWaitMinimum", "type": "integer", "unit": "s", "mut": RW,
     "setting": "cert_signing_wait_minimum_s"},
    {"c": "SecurityCtrlr", "v": "MaxCertificateChainSize", "type": "integer", "mut": RO, "default": 10000},
    {"c": "SecurityCtrlr", "v": "OrganizationName", "type": "string", "mut": RW, "max": 64,
     "setting": "organization_name"},
    {"c": "SecurityCtrlr", "v": "SecurityProfile", "type": "integer", "mut": RO, "min": 1, "max": 3,
     "live": True, "default": 1},
    # SmartChargingCtrlr
    {"c": "SmartChargingCtrlr", "v": "Available", "type": "boolean", "mut": RO, "default": True,
     "feature": "smart_charging"},
    {"c": "SmartChargingCtrlr", "v": "Enabled", "type": "boolean", "mut": RO, "default": True,
     "feature": "smart_charging"},
    {"c": "SmartChargingCtrlr", "v": "Entries", "vi": "ChargingProfiles", "type": "integer", "mut": RO,
     "live": True, "default": 0, "max_setting": "profile_max_installed", "feature": "smart_charging"},
    {"c": "SmartChargingCtrlr", "v": "LimitChangeSignificance", "type": "decimal", "unit": "Percent", "mut": RW,
     "min": 0, "max": 100, "default": 1.0, "feature": "smart_charging"},
    {"c": "SmartChargingCtrlr", "v": "PeriodsPerSchedule", "type": "integer", "mut": RO,
     "setting": "profile_max_periods", "feature": "smart_charging"},
    {"c": "SmartChargingCtrlr", "v": "ProfileStackLevel", "type": "integer", "mut": RO,
     "setting": "profile_max_stack_level", "feature": "smart_charging"},
    {"c": "SmartChargingCtrlr", "v": "RateUnit", "type": "MemberList", "mut": RO, "values": RATE_UNITS,
     "min_items": 1, "setting": "profile_rate_units", "feature": "smart_charging"},
    # TxCtrlr
    {"c": "TxCtrlr", "v": "EVConnectionTimeOut", "type": "integer", "unit": "s", "mut": RW,
     "setting": "ev_connect_timeout_s"},
    {"c": "TxCtrlr", "v": "MaxEnergyOnInvalidId", "type": "integer", "unit": "Wh", "mut": RW,
     "setting": "max_energy_on_invalid_id_wh"},
    {"c": "TxCtrlr", "v": "StopTxOnEVSideDisconnect", "type": "boolean", "mut": RW,
     "setting": "stop_on_ev_disconnect"},
    {"c": "TxCtrlr", "v": "StopTxOnInvalidId", "type": "boolean", "mut": RW, "setting": "stop_on_invalid_id"},
    {"c": "TxCtrlr", "v": "TxStartPoint", "type": "MemberList", "mut": RW, "values": tuple(TX_POINTS),
     "min_items": 1, "setting": "tx_start_points", "words": TX_POINTS},
    {"c": "TxCtrlr", "v": "TxStopPoint", "type": "MemberList", "mut": RW, "values": tuple(TX_POINTS),
     "min_items": 1, "setting": "tx_stop_points", "words": TX_POINTS},
    # EVSE, one per connector of the board (evse id = connector number)
    {"c": "EVSE", "scope": "evse", "v": "AvailabilityState", "type": "OptionList", "mut": RO,
     "values": AVAILABILITY_STATES, "live": True, "default": "Available"},
    {"c": "EVSE", "scope": "evse", "v": "Available", "type": "boolean", "mut": RO, "default": True},
    {"c": "EVSE", "scope": "evse", "v": "Power", "type": "decimal", "unit": "W", "mut": RO, "live": True,
     "default": 0.0, "max_param": "max_power_w", "maxset_param": "max_power_w"},
    {"c": "EVSE", "scope": "evse", "v": "SupplyPhases", "type": "integer", "mut": RO, "param": "supply_phases"},
    # Connector: connectorId 1 of each EVSE
    {"c": "Connector", "scope": "connector", "v": "AvailabilityState", "type": "OptionList", "mut": RO,
     "values": AVAILABILITY_STATES, "live": True, "default": "Available"},
    {"c": "Connector", "scope": "connector", "v": "Available", "type": "boolean", "mut": RO, "default": True},
    {"c": "Connector", "scope": "connector", "v": "ConnectorType", "type": "string", "mut": RO,
     "param": "connector_type"},
    {"c": "Connector", "scope": "connector", "v": "SupplyPhases", "type": "integer", "mut": RO,
     "param": "supply_phases"},
)
