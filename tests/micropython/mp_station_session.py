"""A charging session of the portable core, run under MicroPython by tools/micropython/run.mjs
(which awaits ``main()``), and on CPython as ``python mp_station_session.py DATA_DIR``.

The simulated board and a Station with a VirtualClock, a 16 A supply limit,
its state in a data directory (argv[1]) and no central system (the default
link is offline; unknown identifiers may start offline). Plug in, badge,
charge for half an hour of virtual time, badge again, unplug. Asserts that
energy flowed at the limit, meter samples were taken, the transaction ended
and the state files were written, then prints one ``RESULT`` line for
tests/micropython/test_micropython_core.py.
"""

import asyncio
import gc
import os
import sys

from agent.core import model
from agent.core.auth import AuthorizationCache, LocalAuthList
from agent.core.outbox import METER, START, STOP
from agent.core.settings import SETTINGS_FILE, Settings, station_settings
from agent.core.station import Station
from hal.runtime.clock import VirtualClock
from hal.runtime.storage import read_json
from hal.sim import STATE_FILE, build_sim_board

DATA = sys.argv[1]  # a directory that does not exist yet
TAG = "TAG-1"
SAMPLE_INTERVAL_S = 60
CHARGE_S = 1800
LIMIT_A = 16.0  # below the EV's and the sim controller's 32 A: the station's limit is what flows


def path(name):
    return DATA + "/" + name


async def run(clock, seconds, step_s=10):
    for _ in range(int(seconds // step_s)):
        await clock.advance(step_s)


async def main():
    os.mkdir(DATA)
    clock = VirtualClock()
    board, sim = build_sim_board({"connectors": 1}, DATA, clock)
    settings = Settings(station_settings(), path(SETTINGS_FILE), initial={"offline_start_unknown_id": True})
    settings.set("sample_interval_s", SAMPLE_INTERVAL_S)  # persisted
    station = Station(board, settings, clock, max_current_a=LIMIT_A,
                      auth_cache=AuthorizationCache(path("auth-cache.json")),
                      local_list=LocalAuthList(path("local-list.json")),
                      charging_profiles_path=path("charging-profiles.json"))
    await board.open()
    await station.start()
    try:
        await run(clock, 10)
        assert station.status_of(1)[0] == model.AVAILABLE, station.status_of(1)
        sim.plug(1)
        sim.swipe(TAG)
        await run(clock, 10)
        c = station.connector(1)
        tx = c.transaction
        assert tx is not None and tx.id_tag == TAG, "no transaction started"
        assert station.status_of(1)[0] == model.CHARGING, station.status_of(1)
        assert board.connectors[0].evse.current_limit_a == LIMIT_A, board.connectors[0].evse.current_limit_a
        await run(clock, CHARGE_S)
        gc.collect()
        mem_alloc = getattr(gc, "mem_alloc", None)  # MicroPython's; CPython has none
        heap_kb = mem_alloc() // 1024 if mem_alloc else -1  # live objects while charging
        sim.swipe(TAG)  # the same tag again stops the transaction
        await run(clock, 10)
        assert c.transaction is None, "the transaction did not end"
        sim.unplug(1)
        await run(clock, 10)
        assert station.status_of(1)[0] == model.AVAILABLE, station.status_of(1)
    finally:
        await station.stop()
        await board.close()

    kinds = [e.kind for e in station.outbox.entries()]
    assert kinds[0] == START and kinds[-1] == STOP, kinds
    meters = kinds.count(METER)
    assert meters >= CHARGE_S // SAMPLE_INTERVAL_S - 1, kinds
    assert tx.stopped and tx.stop_reason == model.REASON_LOCAL, (tx.stop_time, tx.stop_reason)
    energy_wh = tx.meter_stop_wh - tx.meter_start_wh
    expected_wh = LIMIT_A * 3 * 230 * CHARGE_S / 3600  # three phases at the limit for the half hour
    assert expected_wh * 0.95 < energy_wh < expected_wh * 1.05, (energy_wh, expected_wh)
    assert read_json(path(SETTINGS_FILE), None) == {"sample_interval_s": SAMPLE_INTERVAL_S}
    assert read_json(path(STATE_FILE), {}).get("connectors"), "the sim state was not saved"
    print("RESULT ok implementation=%s energy_wh=%d meter_values=%d stop_reason=%s heap_kb=%d"
          % (sys.implementation.name, energy_wh, meters, tx.stop_reason, heap_kb))


if hasattr(asyncio, "run"):  # CPython; the WebAssembly port has none, run.mjs awaits main()
    asyncio.run(main())
