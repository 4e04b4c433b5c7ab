"""One connector's state and the rule that derives its status (in the core's words,
which each protocol adapter names in its own).

The status is never set by hand: it is derived from what the hardware
reports (pilot state, faults), from authorization and from the transaction,
so it cannot drift from reality.
"""

from agent.core import model
from hal.contactor_check import ContactorCheck
from hal.interfaces import NO_ERROR, ConnectorHardware, EvseStatus
from hal.meter_health import MeterHealth


class Connector:
    """State of one connector (numbered from 1)."""

    def __init__(self, connector_id: int, hw: ConnectorHardware) -> None:
        self.id = connector_id
        self.hw = hw
        self.evse = EvseStatus()
        self.availability = model.OPERATIVE
        self.scheduled_availability: str | None = None  # applied when the transaction ends
        self.error_code = NO_ERROR  # from devices other than the controller (meter, contactor)
        self.vendor_error_code = ""
        self.faults: dict = {}  # source ("contactor", "command", "lock", "meter") -> (error code, vendor code)
        self.meter_health = MeterHealth()  # power_meter_failure after repeated failed reads
        self.contactor_check = ContactorCheck()  # current or feedback with the contactor open
        self.command_failures = 0  # hardware commands failed in a row (backoff of the retries)
        self.command_retry_at = 0.0  # monotonic time from which a failed command may be retried
        self.info = ""
        self.pending_auth: dict | None = None  # authorized, waiting for the EV to be plugged in
        # the identifier whose cable stays locked after its EV left (unlock_on_ev_disconnect false):
        # presenting it again unlocks the cable (2.0.1 E09.FR.03), as does an unlock request
        self.locked_for: str | None = None
        self.transaction: model.Transaction | None = None
        self.finishing = False  # a transaction ended with the EV still plugged in
        self.reserved = False  # held by a reservation (agent/core/reservations.py), set by the station
        self.offered_current_a = 0.0
        self.contactor_closed = False
        self.open_deadline: float | None = None  # contactor opens by then once the offer is withdrawn
        self.status = model.AVAILABLE
        self.status_error_code = NO_ERROR
        self.last_reading = None  # the last good MeterReading (with an energy value)

    @property
    def effective_error_code(self) -> str:
        if self.evse.error_code != NO_ERROR:
            return self.evse.error_code
        return self.error_code

    @property
    def effective_vendor_error_code(self) -> str:
        """The vendorErrorCode that goes with ``effective_error_code``."""
        if self.evse.error_code != NO_ERROR:
            return self.evse.vendor_error_code
        return self.vendor_error_code

    @property
    def faulted(self) -> bool:
        """A fault that forbids charging: any device error, or pilot state E (short/error)."""
        return self.effective_error_code != NO_ERROR or self.evse.cp_state == "E"

    @property
    def ev_connected(self) -> bool:
        return self.evse.ev_connected

    def derive_status(self, charger_fault: bool, min_current_a: float) -> str:
        """The status that describes this connector now (agent/core/model.py)."""
        if self.faulted or charger_fault:
            return model.FAULTED
        tx = self.transaction
        if tx is not None:
            if tx.awaiting_auth:  # no identifier authorizes it (yet, or any more): no energy offered
                return model.RESERVED if self.reserved else model.PREPARING  # begun on the EV, its holder not come
            if self.offered_current_a < min_current_a:
                return model.SUSPENDED_EVSE  # the charger offers no energy (e.g. tag not accepted)
            if self.evse.cp_state in ("C", "D") and self.contactor_closed:
                return model.CHARGING
            return model.SUSPENDED_EV  # offered, but the EV does not take it (or left)
        if self.availability == model.INOPERATIVE:
            return model.UNAVAILABLE
        if self.finishing and self.ev_connected:
            return model.FINISHING
        if self.pending_auth is not None:
            return model.PREPARING
        if self.reserved:  # an EV plugged in does not take a reserved connector: its holder's identifier does
            return model.RESERVED
        if self.ev_connected:
            return model.PREPARING
        return model.AVAILABLE
