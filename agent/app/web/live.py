"""What the station state says about each connector, in words, for the live view.

``connector_view`` reads the station (no I/O of its own: the meter reading is the
caller's) and returns a plain dict: status, pilot state, the offered current and
which limit sets it (the controller's rating, ``[limits] max_current_a``, a charging
profile — which one and until when — or the station's shared budget), power,
energy, phases, the session's tag and duration, and faults in words with what to
check.
"""

from agent.core.isotime import format_datetime
from hal.interfaces import NO_ERROR

PILOT_WORDS = {
    "A": "A: no vehicle",
    "B": "B: vehicle connected, not asking for energy",
    "C": "C: vehicle asking for energy",
    "D": "D: vehicle asking for energy, with ventilation",
    "E": "E: pilot shorted or no pilot (error)",
    "F": "F: charger not available (pilot at -12 V)",
}

# error code -> (what it means, what to check)
FAULT_HELP = {
    "connector_lock_failure": ("the cable lock did not lock or unlock",
                               "the lock actuator and its wiring; a cable stuck in the socket"),
    "ev_communication_error": ("the pilot signal to the vehicle is not right",
                               "the cable and the CP contact; try another vehicle or cable"),
    "ground_failure": ("a ground (residual current) fault was detected",
                       "the RCD / ground monitor, the protective earth; call an electrician"),
    "high_temperature": ("the charger is too hot", "ventilation, the terminals' tightness, the ambient temperature"),
    "internal_error": ("the charge controller reports an internal error",
                       "the controller's own display or log; power-cycle it"),
    "local_list_conflict": ("the local authorization list and the central system disagree about a tag",
                            "the tag's entry in the local list"),
    "other_error": ("the charge controller reports a fault", "the controller's log (the vendor code below)"),
    "over_current_failure": ("the vehicle drew more current than offered",
                             "the vehicle; the current limit; the meter's CT direction and wiring"),
    "power_meter_failure": ("the energy meter does not answer or its readings are not valid",
                            "the meter's bus wiring (A/B), its address and baud rate in [board]; run doctor"),
    "power_switch_failure": ("the contactor did not do what it was told (welded or not closing)",
                             "the contactor, its coil supply and its feedback contact; run doctor"),
    "reader_failure": ("the tag reader does not answer", "the reader's cable and its port in [board]"),
    "reset_failure": ("the last reset failed", "the agent log"),
    "under_voltage": ("the supply voltage is too low", "the supply; the meter's voltage readings"),
    "over_voltage": ("the supply voltage is too high", "the supply; the meter's voltage readings"),
    "weak_signal": ("the network signal is weak", "the antenna or the network connection"),
}


def fault_words(code: str, vendor_code: str = "", info: str = "") -> dict | None:
    """{code, words, check, vendor} for an error code; None for no error."""
    if not code or code == NO_ERROR:
        return None
    words, check = FAULT_HELP.get(code, ("fault: %s" % code, "the agent log"))
    return {"code": code, "words": words, "check": check, "vendor": vendor_code or "", "info": info or ""}


def _profile_name(p: dict) -> str:
    purpose = {"station_max": "station maximum", "tx_default": "default", "tx": "transaction"}.get(
        p.get("purpose"), p.get("purpose") or "")
    return "charging profile %s (%s, stack level %s)" % (p.get("id"), purpose, p.get("stack_level"))


def limit_reasons(station, c) -> dict:
    """The offered current's limits: {limit_a, by, until, parts: [{what, limit_a}]}, from the
    station's own account of them (``limit_sources``, agent/core/limits.py).

    ``by`` says which limit is the lowest (the one in force); ``until`` is when a
    charging profile's limit may next change (ISO time) or None."""
    sources, nxt = station.limit_sources(c, name_profile=True)
    parts = []
    for source, limit_a, about in sources:
        if source == "rating":
            what = "controller rating"
        elif source == "config":
            what = "configuration limit ([limits] max_current_a)"
        elif source == "profile":
            what = _profile_name(about.data) if about is not None else "charging profile"
        else:  # budget: (the station's budget, how many connectors share it)
            what = "share of the station budget (%.1f A among %d connectors)" % about
        parts.append({"what": what, "limit_a": float(limit_a)})
    lowest = min(parts, key=lambda p: p["limit_a"])
    return {"limit_a": lowest["limit_a"], "by": lowest["what"],
            "until": format_datetime(nxt) if nxt is not None else None, "parts": parts}


def connector_view(station, c, reading, now: float) -> dict:
    """The live view of connector ``c`` (``reading``: its latest MeterReading or None)."""
    tx = c.transaction
    faults = []
    main = fault_words(c.effective_error_code, c.effective_vendor_error_code, c.evse.info)
    if main is not None:
        faults.append(main)
    for source, (code, vendor) in sorted(c.faults.items()):
        f = fault_words(code, vendor)
        if f is not None and f["code"] not in [x["code"] for x in faults]:
            f["source"] = source
            faults.append(f)
    if c.evse.cp_state == "E" and not faults:
        faults.append({"code": "pilot_e", "words": "the pilot signal is shorted or missing (state E)",
                       "check": "the cable and the CP contact; the vehicle's inlet", "vendor": "", "info": ""})
    session = None
    if tx is not None:
        energy = reading.energy_wh if reading is not None and reading.energy_wh is not None else tx.last_meter_wh
        session = {"id": tx.id, "backend_id": tx.backend_id, "id_tag": tx.id_tag,
                   "started": format_datetime(tx.start_time), "duration_s": max(0, int(now - tx.start_time)),
                   "energy_wh": max(0.0, float(energy) - tx.meter_start_wh), "backend": tx.backend,
                   "confirmed": tx.backend_id is not None}
    current = list(reading.current_a) if reading is not None and reading.current_a else None
    return {
        "id": c.id, "status": c.status,
        "pilot": c.evse.cp_state or "", "pilot_words": PILOT_WORDS.get(c.evse.cp_state, c.evse.cp_state or "unknown"),
        "offered_current_a": c.offered_current_a, "limits": limit_reasons(station, c),
        "contactor_closed": c.contactor_closed, "phases": c.hw.phases,
        "power_w": reading.power_w if reading is not None else None,
        "energy_wh": reading.energy_wh if reading is not None else None,
        "current_a": current,
        "voltage_v": list(reading.voltage_v) if reading is not None and reading.voltage_v else None,
        "phases_drawing": None if current is None else sum(1 for a in current if a is not None and a > 0.5),
        "session": session, "faults": faults,
    }
