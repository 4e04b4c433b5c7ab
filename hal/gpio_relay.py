"""A contactor on a GPIO line, through the libgpiod v2 character-device API.

CPython-only binding: the ``gpiod`` package (libgpiod ≥ 2.0) from PyPI,
installed with the ``gpio`` extra (``pip install 'ocpp-agent[gpio]'``).
RPi.GPIO and pigpio do not work on the Raspberry Pi 5; libgpiod does, on every
Pi and on most Linux boards. The module is passed in (``gpiod=``), as
gpiozero takes its pin factory, so tests run the real driver on a fake chip.

Wiring (one contactor per connector)::

    [contactor]
    driver = "gpio"
    chip = "/dev/gpiochip0"     # Pi 5 header, kernel >= 6.6.45 (gpiochip4 before)
    line = 17                   # offset (GPIO17) or the line's name ("GPIO17")
    active_low = false          # true: the relay driver switches on a low level
    feedback_line = 27          # optional auxiliary contact (input)
    feedback_active_low = true  # contact to ground with a pull-up: closed reads low
    feedback_bias = "pull_up"   # as_is, pull_up, pull_down, disabled
    feedback_settle_s = 0.2     # contactor pull-in/drop-out plus contact bounce

The output is off from the first moment. ``open()`` requests the line as an
output *with* its value inactive in the same request, so the kernel never
drives it active on our behalf; ``close()`` drives it inactive and releases
it. Before the agent first opens the line (boot, a stopped service) the pin is
in its power-on default, and the request is exclusive: a second process cannot
take the line while the agent holds it (``busy``).

What happens when the process dies (crash, ``kill -9``, out of memory): the
kernel closes the request's file descriptor and releases the line. What the
pin does next is the GPIO driver's choice, not ours:

- mainline kernels (pinctrl-bcm2835) turn a released pin back into an input:
  the relay driver's input then follows only its pull resistor;
- Raspberry Pi OS kernels by default *keep* a released output at its last
  level (module parameter ``pinctrl_bcm2835.persist_gpio_outputs``, on by
  default), so a crash while charging leaves the contactor closed. Add
  ``dtparam=strict_gpiod`` to ``/boot/firmware/config.txt`` (or
  ``pinctrl_bcm2835.persist_gpio_outputs=n`` to the kernel command line) to get
  the mainline behaviour.

Either way the contactor needs a hardware default-off: a pull resistor to the
relay driver's off level, and the EVSE controller's own relay in series with
the coil (the controller opens on C→B, unplug and faults by itself, within the
norm's deadlines, whatever the host does). A restarted agent drives the line
off at once in ``open()``.

Feedback: when an auxiliary contact is wired, ``read_feedback()`` waits until
``feedback_settle_s`` after the last switching and reads it (True = contacts
closed). A contact that stays closed after the output was opened (welded) or
that does not close is reported that way, and the station raises
power_switch_failure. Current measured with the relay open is the other half of
that check: see ``hal.contactor_check``.

Errors: ``GpioError`` (a ``CommunicationError``) when the chip is missing, not
accessible or the line is busy; ``HalConfigurationError`` for settings that
cannot work (no such line, the gpiod package missing).
"""

import errno
import logging
import os

from hal.runtime.clock import Clock
from hal.errors import CommunicationError, HalConfigurationError
from hal.interfaces import Relay

log = logging.getLogger(__name__)

BIASES = ("as_is", "pull_up", "pull_down", "disabled")
CONSUMER = "ocpp-agent"


class GpioError(CommunicationError):
    """The GPIO chip or line cannot be used (missing, permission denied, busy)."""


def chip_path(chip) -> str:
    """``/dev/gpiochip0`` from ``"/dev/gpiochip0"``, ``"gpiochip0"`` or ``0``."""
    if isinstance(chip, int) and not isinstance(chip, bool):
        return "/dev/gpiochip%d" % chip
    chip = str(chip)
    return chip if chip.startswith("/") else "/dev/" + chip


def import_gpiod():
    """The ``gpiod`` module (libgpiod v2 bindings), or a clear configuration error."""
    try:
        import gpiod
    except ImportError:
        raise HalConfigurationError(
            "the gpio contactor needs the gpiod package (libgpiod >= 2): "
            "pip install 'ocpp-agent[gpio]'", key="driver") from None
    if not hasattr(gpiod, "request_lines") or not hasattr(gpiod, "LineSettings"):
        raise HalConfigurationError("the installed gpiod package is the libgpiod 1.x API; "
                                    "the gpio contactor needs gpiod >= 2.0", key="driver")
    return gpiod


def _check_line(name: str, value) -> None:
    ok = (isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1024) or \
         (isinstance(value, str) and value != "")
    if not ok:
        raise HalConfigurationError("%s must be a line offset (0, 1, …) or a line name, not %r"
                                    % (name, value), key=name)


def describe_os_error(e: OSError, chip: str, lines) -> str:
    """What an OSError from a line request means, in words an installer can act on."""
    what = "%s line %s" % (chip, "/".join(str(x) for x in lines))
    if e.errno == errno.ENOENT:
        return "%s: no such GPIO chip (Pi 5 header: /dev/gpiochip0 since kernel 6.6.45, " \
               "/dev/gpiochip4 before; list them with gpiodetect)" % chip
    if e.errno in (errno.EACCES, errno.EPERM):
        return "%s: permission denied (add the user to the gpio group)" % chip
    if e.errno == errno.EBUSY:
        return "%s: busy (another process or a kernel driver holds it; is the agent already running?)" % what
    if e.errno == errno.EINVAL:
        return "%s: invalid request (no such line on this chip?)" % what
    return "%s: %s" % (what, e.strerror or e)


class GpioContactor(Relay):
    """A contactor driven by one GPIO output, with an optional feedback input.

    Keyword-only: ``chip``, ``line`` (offset or name), ``active_low``,
    ``feedback_line``, ``feedback_chip`` (default: ``chip``),
    ``feedback_active_low``, ``feedback_bias``, ``feedback_settle_s``,
    ``consumer`` (shown by ``gpioinfo``), ``gpiod`` (the module; imported on
    ``open()`` when not given) and ``clock`` (anything with ``monotonic()``
    and ``async sleep()``; default: real time). No I/O until ``open()``.
    """

    def __init__(self, *, line, chip="/dev/gpiochip0", active_low: bool = False, feedback_line=None,
                 feedback_chip=None, feedback_active_low: bool = False, feedback_bias: str = "as_is",
                 feedback_settle_s: float = 0.2, consumer: str = CONSUMER, gpiod=None, clock=None) -> None:
        super().__init__()
        _check_line("line", line)
        if feedback_line is not None:
            _check_line("feedback_line", feedback_line)
        if feedback_bias not in BIASES:
            raise HalConfigurationError("feedback_bias must be one of %s, not %r" % (", ".join(BIASES), feedback_bias),
                                        key="feedback_bias")
        if not (isinstance(feedback_settle_s, (int, float)) and 0 <= feedback_settle_s <= 5):
            raise HalConfigurationError("feedback_settle_s must be 0..5 s, not %r" % (feedback_settle_s,),
                                        key="feedback_settle_s")
        self.chip = chip_path(chip)
        self.line = line
        self.active_low = bool(active_low)
        self.feedback_chip = chip_path(feedback_chip) if feedback_chip is not None else self.chip
        self.feedback_line = feedback_line
        self.feedback_active_low = bool(feedback_active_low)
        self.feedback_bias = feedback_bias
        self.feedback_settle_s = float(feedback_settle_s)
        self.has_feedback = feedback_line is not None
        if self.has_feedback and self.feedback_chip == self.chip and feedback_line == line:
            raise HalConfigurationError("feedback_line must not be the output line (%r)" % (line,),
                                        key="feedback_line")
        self.consumer = consumer
        self.clock = clock or Clock()
        self._gpiod = gpiod
        self._out = None  # the LineRequest holding the output (and the feedback, on the same chip)
        self._fb = None  # the LineRequest holding the feedback line (== _out on the same chip)
        self._switched_at = None

    def describe(self) -> str:
        out = "%s line %s%s" % (self.chip, self.line, " (active low)" if self.active_low else "")
        if self.has_feedback:
            where = "" if self.feedback_chip == self.chip else self.feedback_chip + " "
            out += ", feedback %sline %s" % (where, self.feedback_line)
        return out

    def __repr__(self) -> str:
        return "GpioContactor(%s)" % self.describe()

    # -- lifetime -------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self._out is not None

    def _settings(self, gpiod):
        line = gpiod.line
        out = gpiod.LineSettings(direction=line.Direction.OUTPUT, output_value=line.Value.INACTIVE,
                                 active_low=self.active_low)
        bias = {"as_is": line.Bias.AS_IS, "pull_up": line.Bias.PULL_UP, "pull_down": line.Bias.PULL_DOWN,
                "disabled": line.Bias.DISABLED}[self.feedback_bias]
        fb = gpiod.LineSettings(direction=line.Direction.INPUT, active_low=self.feedback_active_low, bias=bias)
        return out, fb

    def _request(self, gpiod, chip: str, config: dict):
        try:
            return gpiod.request_lines(chip, consumer=self.consumer, config=config)
        except OSError as e:
            raise GpioError(describe_os_error(e, chip, list(config))) from None
        except ValueError as e:  # a line name or offset the chip does not have
            raise HalConfigurationError("%s: %s (list the lines with gpioinfo)" % (chip, e),
                                        key="line") from None

    async def open(self) -> None:
        """Request the output (driven inactive from the first moment) and the feedback input."""
        if self._out is not None:
            return
        gpiod = self._gpiod or import_gpiod()
        self._gpiod = gpiod
        out_settings, fb_settings = self._settings(gpiod)
        if self.has_feedback and self.feedback_chip == self.chip:
            self._out = self._request(gpiod, self.chip, {self.line: out_settings, self.feedback_line: fb_settings})
            self._fb = self._out
        else:
            self._out = self._request(gpiod, self.chip, {self.line: out_settings})
            if self.has_feedback:
                try:
                    self._fb = self._request(gpiod, self.feedback_chip, {self.feedback_line: fb_settings})
                except BaseException:
                    self._release()
                    raise
        self.is_closed = False
        self._switched_at = self.clock.monotonic()
        log.info("contactor: %s requested, output off", self.describe())

    async def close(self) -> None:
        """Drive the output off and release the lines. Safe to call twice."""
        if self._out is None:
            return
        try:
            self._write(False)
        except GpioError as e:
            log.error("contactor: cannot drive %s off before releasing it: %s", self.describe(), e)
        self._release()

    def _release(self) -> None:
        for req in {id(r): r for r in (self._fb, self._out) if r is not None}.values():
            try:
                req.release()
            except Exception as e:  # releasing must reach every request
                log.warning("contactor: releasing a GPIO request failed: %s", e)
        self._out = self._fb = None
        self.is_closed = False

    # -- switching and feedback -------------------------------------------------------

    def _write(self, closed: bool) -> None:
        value = self._gpiod.line.Value.ACTIVE if closed else self._gpiod.line.Value.INACTIVE
        try:
            self._out.set_value(self.line, value)
        except OSError as e:
            raise GpioError("%s: cannot set the output: %s" % (self.describe(), e.strerror or e)) from None

    async def set_closed(self, closed: bool) -> None:
        if self._out is None:
            raise GpioError("%s: not open" % self.describe())
        closed = bool(closed)
        self._write(closed)
        if closed != self.is_closed:
            self._switched_at = self.clock.monotonic()
        self.is_closed = closed

    async def read_feedback(self) -> bool | None:
        """True when the auxiliary contact reads closed; None without feedback.
        Waits until ``feedback_settle_s`` after the last switching."""
        if not self.has_feedback:
            return None
        if self._fb is None:
            raise GpioError("%s: not open" % self.describe())
        if self._switched_at is not None:
            wait = self._switched_at + self.feedback_settle_s - self.clock.monotonic()
            if wait > 0:
                await self.clock.sleep(wait)
        return self.read_feedback_now()

    def read_feedback_now(self) -> bool | None:
        """The feedback contact as it reads at this instant (no settling wait)."""
        if not self.has_feedback:
            return None
        if self._fb is None:
            raise GpioError("%s: not open" % self.describe())
        try:
            value = self._fb.get_value(self.feedback_line)
        except OSError as e:
            raise GpioError("%s: cannot read the feedback: %s" % (self.describe(), e.strerror or e)) from None
        return value == self._gpiod.line.Value.ACTIVE


CONTACTOR_KEYS = ("driver", "chip", "line", "active_low", "feedback_line", "feedback_chip",
                  "feedback_active_low", "feedback_bias", "feedback_settle_s", "consumer")


def build_contactor(section: dict, clock=None, gpiod=None) -> GpioContactor:
    """A ``GpioContactor`` from a board ``[contactor]`` section (``driver = "gpio"``).
    ``clock`` is accepted for symmetry with the other builders and not used: the
    feedback settle time is physical, so it runs on real time.
    The gpiod module is imported here, so a missing package is a configuration
    error when the board is loaded, not a surprise at the first switching."""
    for k in section:
        if k not in CONTACTOR_KEYS:
            raise HalConfigurationError("unknown key %r in [contactor] (known: %s)" % (k, ", ".join(CONTACTOR_KEYS)),
                                        key=k)
    if "line" not in section:
        raise HalConfigurationError("[contactor] needs line (the GPIO offset driving the relay, e.g. 17)",
                                    key="line")
    if gpiod is None:
        gpiod = import_gpiod()
    params = {k: v for k, v in section.items() if k != "driver"}
    # The settle time is physical: it runs on real time, not on the station's (maybe virtual) clock.
    return GpioContactor(gpiod=gpiod, **params)


def gpio_chip_problem(chip) -> str:
    """A description of why ``chip`` cannot be opened, or '' (for ``doctor``)."""
    path = chip_path(chip)
    if not os.path.exists(path):
        return describe_os_error(OSError(errno.ENOENT, "No such file"), path, [])
    if not os.access(path, os.R_OK | os.W_OK):
        return describe_os_error(OSError(errno.EACCES, "Permission denied"), path, [])
    return ""
