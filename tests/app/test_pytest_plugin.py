"""The pytest plugin for backend benches (agent/app/pytest_plugin.py, agent/app/bench_charger.py).

The example a backend team copies (examples/pytest-bench) runs as a user runs it: a pytest
process of its own, the plugin loaded through the package's entry point, against tools/csms.py
on 127.0.0.1, once per OCPP version. The charger handle's own logic (frames, status words, the
restart after a Reset, secrets hidden) is checked in process against the test central system."""

import asyncio
import importlib.metadata
import json
import os
import shutil

import pytest

from agent.app.bench_charger import BenchCharger, status_words
from tests.harness import until
from tools.csms import TestCentralSystem

pytest_plugins = ("pytester",)

EXAMPLE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                       "examples", "pytest-bench")


def test_the_plugin_is_registered_through_the_entry_point():
    found = [e for e in importlib.metadata.entry_points(group="pytest11") if e.name == "ocpp_agent"]
    assert [e.value for e in found] == ["agent.app.pytest_plugin"]


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_the_example_passes_against_the_local_central_system(pytester, version):
    for name in os.listdir(EXAMPLE):
        if name.endswith(".py"):
            shutil.copy(os.path.join(EXAMPLE, name), pytester.path / name)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--ocpp-version", version, timeout=60)
    result.assert_outcomes(passed=5)


def test_without_a_url_the_fixture_says_what_to_give(pytester):
    pytester.makepyfile("def test_one(ocpp_charger):\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=60)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*no central system to test: give --ocpp-csms-url*"])


def test_status_words_take_neutral_16_and_201_spellings():
    assert status_words("charging") == status_words("Charging") == {"charging"}
    assert status_words("SuspendedEV") == {"suspended_ev"}
    assert "charging" in status_words("Occupied") and "available" not in status_words("Occupied")
    with pytest.raises(ValueError, match="unknown connector status"):
        status_words("Sleeping")


async def test_frames_are_parsed_secrets_hidden_and_a_reset_restarts_the_agent(tmp_path):
    async with TestCentralSystem(quiet=True, protocols=("ocpp1.6",)) as cs:
        cp = BenchCharger(csms_url=cs.url, station_id="CP-PLUGIN", data_dir=str(tmp_path / "data"),
                          ocpp={"WebSocketPingInterval": 0})
        # start() and stop() block: in a thread, as the central system runs on this test's loop.
        await asyncio.to_thread(cp.start, timeout_s=10)
        try:
            assert cp.ocpp_version == "1.6"
            boot = await cp.wait_frame("BootNotification", kind="result", direction="in")
            assert boot.payload["status"] == "Accepted" and boot.unique_id
            station = await cs.wait_for_station("CP-PLUGIN")

            assert await station.call("ChangeConfiguration", key="AuthorizationKey",
                                      value="0123456789abcdef0123") == {"status": "Accepted"}
            change = await cp.wait_frame("ChangeConfiguration", direction="in")
            assert change.payload["value"] == "(hidden)" and "0123456789abcdef" not in change.text
            answer = await cp.wait_frame("ChangeConfiguration", kind="result", direction="out")
            assert answer.payload == {"status": "Accepted"}
            # A new AuthorizationKey is used from a new connection: the agent reconnects with it.
            await until(lambda: station.connections == 2 and station.connected and cp.online,
                        timeout_s=10, what="the reconnection with the new key")

            mark = cp.mark()
            assert await station.call("Reset", type="Soft") == {"status": "Accepted"}
            await cp.wait_frame("BootNotification", kind="result", since=mark, timeout_s=10)
            await cp.wait_online(timeout_s=10)
            assert cp.restarts == 1
            cp.plug(1)
            await cp.wait_status(1, "Preparing")
            assert cp.hardware(1)["plugged"] and cp.meter_wh(1) == 0
            assert all(json.loads(f.text) for f in cp.frames)

            await asyncio.to_thread(cp.restart)  # a power cycle: the EV is still plugged in
            assert cp.online and cp.restarts == 1
            await cp.wait_status(1, "occupied")
        finally:
            await asyncio.to_thread(cp.stop)
