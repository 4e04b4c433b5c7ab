"""For this repository's CI only: with no --ocpp-csms-url given, the tests run against the
local test central system (tools/csms.py), started in a process of its own on 127.0.0.1 with
the tag BLOCKED refused. A backend team does not need this file: it passes its URL."""

import re
import subprocess
import sys

import pytest


@pytest.fixture(scope="session")
def ocpp_csms_url(pytestconfig):
    given = pytestconfig.getoption("ocpp_csms_url") or pytestconfig.getini("ocpp_csms_url")
    if given:
        yield given
        return
    proc = subprocess.Popen([sys.executable, "-m", "tools.csms", "--port", "0", "--quiet", "--reject-tag", "BLOCKED"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        banner = proc.stdout.readline()  # "OCPP central system (…) on ws://127.0.0.1:PORT/ocpp/<station id> …"
        found = re.search(r"(ws://127\.0\.0\.1:\d+/ocpp)/", banner)
        assert found, "tools.csms did not start: %r" % banner
        yield found.group(1)
    finally:
        proc.terminate()
        proc.wait(10)
