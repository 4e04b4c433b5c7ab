"""When does a meter that stops answering become a power_meter_failure?

One failed read (a timeout, a CRC error from noise on the RS-485 line) is not
a fault: that reading is missing, nothing more. ``failures_to_fault``
consecutive failures make the meter faulted (OCPP power_meter_failure); the
first good reading afterwards clears it (no_error). Portable core, no I/O.

Use (station side)::

    health = MeterHealth()
    try:
        reading = await meter.read()
    except HalError as e:
        reading = None                       # missing, never the last value again
        change = health.failed(str(e))
    else:
        change = health.succeeded()
    if change is not None:                   # the connector's error code changed
        c.error_code, c.vendor_error_code = change
        # then re-evaluate the connector: StatusNotification Faulted/power_meter_failure,
        # or back to no_error
"""

from hal.interfaces import NO_ERROR

POWER_METER_FAILURE = "power_meter_failure"


class MeterHealth:
    """Counts consecutive meter failures of one connector. See the module doc."""

    def __init__(self, failures_to_fault: int = 3) -> None:
        if failures_to_fault < 1:
            raise ValueError("failures_to_fault must be >= 1")
        self.failures_to_fault = failures_to_fault
        self.consecutive_failures = 0
        self.total_failures = 0
        self.faulted = False
        self.last_error = ""

    @property
    def error_code(self) -> str:
        return POWER_METER_FAILURE if self.faulted else NO_ERROR

    def failed(self, reason: str = ""):
        """A read failed. Returns ``(power_meter_failure, vendor text)`` when the
        meter just became faulted, else None."""
        self.consecutive_failures += 1
        self.total_failures += 1
        self.last_error = reason
        if not self.faulted and self.consecutive_failures >= self.failures_to_fault:
            self.faulted = True
            return POWER_METER_FAILURE, ("meter: %d reads failed" % self.consecutive_failures)[:50]
        return None

    def succeeded(self):
        """A read worked. Returns ``(no_error, "")`` when that ends a fault, else None."""
        self.consecutive_failures = 0
        if self.faulted:
            self.faulted = False
            return NO_ERROR, ""
        return None
