"""One error tree for all hardware.

``HalError`` is the base. Drivers raise ``CommunicationError`` when a device
cannot be reached or its answer is garbled (timeout, CRC, checksum), and
``DeviceFaultError`` when the device answers and reports a fault. A fault
carries the OCPP ChargePointErrorCode that describes it, so the station can
report it without knowing the driver.
"""


class HalError(Exception):
    """Base class of every hardware error."""


class CommunicationError(HalError):
    """The device did not answer, or its answer was not understood."""


class DeviceFaultError(HalError):
    """The device answered and reports a fault."""

    def __init__(self, message: str, error_code: str = "other_error", vendor_error_code: str = "") -> None:
        super().__init__(message)
        self.error_code = error_code
        self.vendor_error_code = vendor_error_code


class HalConfigurationError(HalError):
    """A board or driver was configured with values it cannot use.

    Not also a ``ValueError``: MicroPython cannot derive a class from two
    built-in exceptions ("multiple bases have instance lay-out conflict").
    Catch it by name, or as a ``HalError``.

    ``key`` names the setting at fault when one does: a driver gives the key of
    its section (``port``), the board loader makes it the station config's
    dotted name (``board.meter.port``) so the CLI can name it.
    """

    def __init__(self, message: str, key: str = "") -> None:
        super().__init__(message)
        self.key = key
