"""``doctor`` from the page: the hardware loop stopped for the probe, then started again.

The probes (agent/app/doctor.py ``probe_devices``) need the serial ports and GPIO lines the
running agent holds, so the page stops the station's hardware loop (the station's ``stop()``:
no current offered, contactors open), closes the board, probes every device of the board as
the configuration file now describes it (a change made on the setup page is probed before the
restart that applies it), opens the board and starts the station again. Refused while a
session runs (opening a controller stops any charging).

The central system is not probed with a second connection under the station's identity (a
central system may drop the live one for it): its row is the live connection's state. Last,
the file modes of the secrets, as ``ocpp-agent doctor`` reports them.
"""

import logging
import time

log = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 1.0


class ChecksRefused(Exception):
    """The checks cannot run now (a session is running)."""


async def run_checks(agent, admin, *, timeout_s: float = PROBE_TIMEOUT_S) -> dict:
    """{"rows": [Check], "seconds": float, "hardware": "restarted" or the error}; raises ChecksRefused."""
    from agent.app import doctor
    from agent.app.config import load_config
    from boards import read_definition
    from hal.errors import HalConfigurationError
    from hal.runtime.clock import Clock

    station = agent.station
    busy = [c.id for c in station.connectors if c.transaction is not None and not c.transaction.stopped]
    if busy:
        raise ChecksRefused("a session is running on connector %s: the checks open the charge controller, which "
                            "stops charging; run them when no session runs" % ", ".join(map(str, busy)))
    try:
        config = load_config(agent.config.path)
    except Exception as e:  # noqa: BLE001 - a file broken by hand: probe what the agent runs with
        log.warning("checks: %s; probing the running configuration", e)
        config = agent.config
    rows = []
    try:
        definition = read_definition(config.station["board"], config.board)
    except HalConfigurationError as e:
        rows.append(doctor.Check("board %s" % config.station["board"], config.path, doctor.FAIL, str(e)))
        definition = {}
    t0 = time.monotonic()
    log.info("checks from the page: hardware loop stopped for the probe")
    await station.stop()
    hardware = "restarted"
    try:
        try:
            await agent.loaded.board.close()
        except Exception as e:  # noqa: BLE001 - probe anyway; the rows say what answers
            log.warning("checks: closing the board: %s", e)
        rows.extend(await doctor.probe_devices(definition, Clock(), timeout_s))
    finally:
        try:
            await agent.loaded.board.open()
        except Exception as e:  # noqa: BLE001 - the station reports the hardware's faults itself
            hardware = "the board did not open again: %s" % e
            log.error("checks: %s", hardware)
        await station.start()
        log.info("checks from the page: hardware loop running again (%s)", hardware)
    cs = admin.csms_show()
    rows.append(doctor.Check("csms connection", cs["url"], doctor.OK if cs["online"] else doctor.FAIL,
                             cs["connection"] + " (the running connection; not probed again)"))
    rows.append(doctor.check_file_modes(config))
    return {"rows": rows, "seconds": time.monotonic() - t0, "hardware": hardware}
