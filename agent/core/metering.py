"""Turning meter readings into sampled values for the configured measurands."""

from agent.core.model import MeterSample, Sample

PHASES = ("L1", "L2", "L3")


def energy_wh_of(reading) -> float | None:
    return None if reading is None else reading.energy_wh


def build_meter_sample(reading, measurands: list, timestamp: float, context: str, connector,
                       register_wh: int | None = None) -> MeterSample:
    """Sampled values for ``measurands``; values the meter did not deliver are left out
    (a missing value is never replaced by a guess). ``register_wh``: the energy register as
    the transaction records it at its start or end (whole Wh, as meterStart/meterStop), so
    that every message of the transaction gives the same number for that moment."""
    samples = []
    phases = connector.hw.phases
    for m in measurands:
        if m == "Current.Offered":
            samples.append(Sample(m, round(connector.offered_current_a, 1), "A", context=context))
            continue
        if reading is None:
            continue
        if m == "Energy.Active.Import.Register" and reading.energy_wh is not None:
            value = register_wh if register_wh is not None else round(reading.energy_wh, 1)
            samples.append(Sample(m, value, "Wh", context=context))
        elif m == "Power.Active.Import" and reading.power_w is not None:
            samples.append(Sample(m, round(reading.power_w, 1), "W", context=context))
        elif m == "Frequency" and reading.frequency_hz is not None:
            samples.append(Sample(m, round(reading.frequency_hz, 2), None, context=context))
        elif m in ("Current.Import", "Voltage"):
            values = reading.current_a if m == "Current.Import" else reading.voltage_v
            unit = "A" if m == "Current.Import" else "V"
            for i, v in enumerate((values or ())[:phases]):
                if v is not None:
                    phase = PHASES[i] if m == "Current.Import" else PHASES[i] + "-N"
                    samples.append(Sample(m, round(v, 2), unit, phase=phase, context=context))
    return MeterSample(timestamp, samples)
