"""A data_dir left by release 0.1 (before the neutral core) is picked up with nothing lost.

The fixture tests/fixtures/data_dir_0_1 was written by the 0.1 code (commit d933947) with
tests/fixtures/make_data_dir_0_1.py: configuration keys changed over OCPP, a local list,
an authorization cache entry, two charging profiles, and a transaction (id 4711 from the
central system) whose agent was killed while offline with three MeterValues queued.
"""

import json
import shutil

from tests.harness import AgentHarness, get_key, keys, until
from tools.csms import TestCentralSystem

FIXTURE = __import__("pathlib").Path(__file__).resolve().parents[1] / "fixtures" / "data_dir_0_1"
PORT = 29161  # the fixture's central system address (endpoint.json, the journal's backend key)


async def test_a_0_1_data_dir_is_picked_up_with_nothing_lost(tmp_path):
    data = tmp_path / "data"
    shutil.copytree(FIXTURE, data)
    server = TestCentralSystem(quiet=True, protocols=("ocpp1.6",))
    await server.start(port=PORT)
    async with AgentHarness(tmp_path, ocpp=keys(MeterValueSampleInterval=60), csms=server) as h:
        # The transaction left open by the kill: its queued meter values, then its stop (PowerLoss).
        stop = await h.cs.wait_for("StopTransaction")
        meters = h.received("MeterValues")
        assert [m["transactionId"] for m in meters] == [4711, 4711, 4711]
        assert [m["meterValue"][0]["sampledValue"][0]["value"] for m in meters] == ["66.1", "99.2", "132.2"]
        assert stop["transactionId"] == 4711 and stop["reason"] == "PowerLoss" and stop["meterStop"] >= 132
        await until(lambda: len(h.station.outbox) == 0, what="the journal delivered")
        assert h.station.outbox.held() == {}  # nothing waits for another backend: the same central system

        # Configuration keys changed over OCPP: bound ones now live in settings.json.
        assert await get_key(h, "MeterValueSampleInterval") == "17"
        assert await get_key(h, "LocalPreAuthorize") == "true"
        assert await get_key(h, "StopTxnSampledData") == "Energy.Active.Import.Register"
        assert await get_key(h, "ConnectorPhaseRotation") == "0.RST,1.RTS"  # 1.6-only: stays in ocpp-config.json
        settings = json.loads((data / "settings.json").read_text())
        assert settings["sample_interval_s"] == 17 and settings["local_pre_authorize"] is True
        assert "MeterValueSampleInterval" not in json.loads((data / "ocpp-config.json").read_text())
        assert h.station.settings.get("sample_interval_s") == 17

        # Authorization: the local list and the cache, in the neutral words.
        assert (await h.cs.call("GetLocalListVersion")) == {"listVersion": 3}
        assert h.station.local_list.get("LIST-1").status == "accepted"
        blocked = h.station.local_list.get("LIST-2")
        assert blocked.status == "blocked" and blocked.parent_id_tag == "GROUP"
        assert h.station.auth_cache.get("TAG-1").status == "accepted"

        # Charging profiles: both still installed and in force.
        assert sorted(p["id"] if isinstance(p, dict) else p.id for p in h.station.charging_profiles.profiles()) \
            == [11, 12]
        composite = await h.cs.call("GetCompositeSchedule", connectorId=1, duration=3600, chargingRateUnit="A")
        assert composite["status"] == "Accepted"
        assert composite["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"] <= 30.0

        # The backend and availability are as they were.
        assert h.agent.endpoint.state.current.url == "ws://127.0.0.1:%d/ocpp" % PORT
        assert h.station.connector(1).availability == "operative"
