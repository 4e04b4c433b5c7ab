"""Is the contactor really open? Two witnesses, checked without any I/O.

A welded contactor keeps the EV connected to the mains after the agent opened
it. Two things give it away:

- the auxiliary contact (``Relay.read_feedback()``) still reads closed;
- the meter still measures current (or power) with the relay open.

``ContactorCheck`` holds the rule for one connector; the station feeds it what
it already has (the commanded state, the feedback, each meter reading) and gets
back a fault to report as power_switch_failure. Portable core: no asyncio, no
I/O, time passed in by the caller (its clock's ``monotonic()``).

Rules:

- nothing is judged during ``grace_s`` after the relay was opened: meters
  average over a second or more and an inductive load takes a moment to decay;
- ``confirmations`` consecutive observations are needed (one noisy reading is
  not a welded contactor);
- a current above ``threshold_a`` on any phase, or, for a meter without
  per-phase currents, a power above ``threshold_w``, is current flowing;
  missing values (None) are no evidence either way;
- the fault latches: a welded contact does not heal when the EV leaves.
  ``reset()`` clears it (after a repair, or a switching cycle whose feedback
  agreed again).

Use (station side)::

    check = ContactorCheck()
    check.switched(closed, clock.monotonic())        # after every set_closed()
    fault = check.observe(closed=c.contactor_closed, now_s=clock.monotonic(),
                          reading=reading, feedback=await relay.read_feedback())
    if fault:  # ("power_switch_failure", "contactor stuck: 15.8 A while open")
        c.error_code, c.vendor_error_code = fault
"""

POWER_SWITCH_FAILURE = "power_switch_failure"


def current_flowing(reading, threshold_a: float = 1.0, threshold_w: float = 200.0) -> str:
    """A description of the current or power ``reading`` shows above the thresholds, or ''.

    ``reading`` is a ``hal.interfaces.MeterReading`` (or None: no evidence).
    """
    if reading is None:
        return ""
    currents = [a for a in (reading.current_a or ()) if a is not None]
    if currents:
        worst = max(currents, key=abs)
        if abs(worst) > threshold_a:
            return "%.1f A" % abs(worst)
        return ""
    if reading.power_w is not None and abs(reading.power_w) > threshold_w:
        return "%.0f W" % abs(reading.power_w)
    return ""


class ContactorCheck:
    """Watches one contactor for a contact that stays closed. See the module doc."""

    def __init__(self, *, threshold_a: float = 1.0, threshold_w: float = 200.0, grace_s: float = 5.0,
                 confirmations: int = 2) -> None:
        if threshold_a <= 0 or threshold_w <= 0 or grace_s < 0 or confirmations < 1:
            raise ValueError("thresholds must be > 0, grace_s >= 0 and confirmations >= 1")
        self.threshold_a = threshold_a
        self.threshold_w = threshold_w
        self.grace_s = grace_s
        self.confirmations = confirmations
        self.fault = None  # (error code, vendor error code) once latched
        self._opened_at = None  # monotonic time of the last opening; None: never switched
        self._closed = False
        self._suspect = 0

    def switched(self, closed: bool, now_s: float) -> None:
        """The relay was commanded ``closed`` at ``now_s``. Repeating the state it
        already has is not a switching (the grace time and confirmations go on)."""
        closed = bool(closed)
        if closed == self._closed and (closed or self._opened_at is not None):
            return
        if not closed:
            self._opened_at = now_s
        self._closed = closed
        self._suspect = 0

    def observe(self, *, closed: bool, now_s: float, reading=None, feedback=None):
        """One observation; returns the latched fault ``(error_code, vendor_error_code)`` or None.

        ``closed``: the commanded state; ``reading``: a meter reading taken now
        (or None); ``feedback``: the auxiliary contact (True closed, None: none).
        """
        if self.fault is not None:
            return self.fault
        if closed != self._closed:
            self.switched(closed, now_s)
        if closed:
            self._suspect = 0
            return None
        if self._opened_at is not None and now_s - self._opened_at < self.grace_s:
            return None
        evidence = []
        if feedback is True:
            evidence.append("feedback closed")
        flowing = current_flowing(reading, self.threshold_a, self.threshold_w)
        if flowing:
            evidence.append("%s while open" % flowing)
        if not evidence:
            self._suspect = 0
            return None
        self._suspect += 1
        if self._suspect < self.confirmations:
            return None
        self.fault = (POWER_SWITCH_FAILURE, ("contactor stuck: " + ", ".join(evidence))[:50])  # CiString50
        return self.fault

    def reset(self) -> None:
        """Clear a latched fault (after a repair)."""
        self.fault = None
        self._suspect = 0
