"""pytest plugin for backend test benches: simulated chargers against your central system.

Loaded through the package's ``pytest11`` entry point once ocpp-agent is installed.
Fixtures: ``ocpp_charger`` (one started charger, online), ``ocpp_charger_factory``
(start more, each ``factory(station_id=None, **options)``), ``ocpp_csms_url`` (the
backend URL; override it in a conftest.py to start a backend yourself). Every
charger runs in its own temporary data_dir and is stopped after the test.

Options (command line, or the ini key in brackets): ``--ocpp-csms-url``
[ocpp_csms_url], ``--ocpp-version`` auto|1.6|2.0.1 [ocpp_version],
``--ocpp-station-id`` [ocpp_station_id], ``--ocpp-password`` [ocpp_password],
``--ocpp-boot-timeout`` seconds [ocpp_boot_timeout].

The chargers run in threads of their own, so tests may be sync or async under any
asyncio runner (pytest-asyncio, anyio on asyncio); without one, mark async tests
``@pytest.mark.ocpp_bench`` and the plugin runs them with ``asyncio.run``.
Guide: docs/pytest-plugin.md.
"""

import asyncio
import inspect
import itertools
import os
import re
import shutil
import tempfile

import pytest

MARKER = "ocpp_bench"
DEFAULT_STATION_ID = "PYTEST-CP"
# The agent's unix sockets (control.sock, sim.sock) live in data_dir; a socket path holds 107 bytes.
MAX_DATA_DIR_BYTES = 90

# (option, ini name = dest, default, help)
_OPTIONS = (
    ("--ocpp-csms-url", "ocpp_csms_url", "",
     "central system URL the chargers connect to, without the station id (ws:// or wss://)"),
    ("--ocpp-version", "ocpp_version", "auto", "OCPP version the chargers offer: auto, 1.6 or 2.0.1"),
    ("--ocpp-station-id", "ocpp_station_id", DEFAULT_STATION_ID,
     "id of the ocpp_charger fixture's charger; the factory's default ids are <id>-1, <id>-2…"),
    ("--ocpp-password", "ocpp_password", "", "HTTP Basic auth password of the chargers (security profile 1/2)"),
    ("--ocpp-boot-timeout", "ocpp_boot_timeout", "30",
     "seconds a charger has to get its BootNotification accepted"),
)


def pytest_addoption(parser) -> None:
    group = parser.getgroup("ocpp", "simulated OCPP chargers (ocpp-agent)")
    for option, name, default, help_text in _OPTIONS:
        group.addoption(option, dest=name, default=None, help="%s (default: %s)" % (help_text, default or "none"))
        parser.addini(name, help_text, default=default)


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "%s: run this async test with asyncio.run (only needed without "
                                       "pytest-asyncio or anyio)" % MARKER)


def pytest_pyfunc_call(pyfuncitem):
    # Only a coroutine nobody else ran: pytest-asyncio and anyio wrap or run theirs first.
    if pyfuncitem.get_closest_marker(MARKER) is None or not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    kwargs = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    asyncio.run(pyfuncitem.obj(**kwargs))
    return True


def setting(config, name: str) -> str:
    """An option's value: the command line's, else the ini file's (else its default)."""
    value = config.getoption(name)
    return str(value if value is not None else config.getini(name))


@pytest.fixture(scope="session")
def ocpp_csms_url(pytestconfig) -> str:
    """The central system's URL (``--ocpp-csms-url`` or ini ``ocpp_csms_url``)."""
    url = setting(pytestconfig, "ocpp_csms_url")
    if not url:
        pytest.fail("no central system to test: give --ocpp-csms-url ws://host:port/path "
                    "(or ocpp_csms_url in the ini file)", pytrace=False)
    return url


@pytest.fixture
def ocpp_charger_factory(pytestconfig, ocpp_csms_url, tmp_path_factory):
    """``factory(station_id=None, *, wait_online=True, **options)`` starts a charger and returns
    its ``BenchCharger``; options: ocpp_version, password, board, ocpp, ocpp201, config,
    csms_url. All are stopped after the test."""
    from agent.app.bench_charger import BenchCharger  # the agent loads only for tests that use it

    started = []
    made = []  # data_dirs outside pytest's tmp directory, removed after the test
    numbers = itertools.count(1)
    boot_timeout_s = float(setting(pytestconfig, "ocpp_boot_timeout"))
    base_id = setting(pytestconfig, "ocpp_station_id")

    def factory(station_id: str | None = None, *, wait_online: bool = True, **options) -> BenchCharger:
        station_id = station_id or "%s-%d" % (base_id, next(numbers))
        if any(c.station_id == station_id for c in started):
            raise ValueError("station id %r is already used in this test" % station_id)
        options.setdefault("csms_url", ocpp_csms_url)
        options.setdefault("ocpp_version", setting(pytestconfig, "ocpp_version"))
        options.setdefault("password", setting(pytestconfig, "ocpp_password"))
        name = "ocpp-" + re.sub(r"[^A-Za-z0-9_-]", "_", station_id)[:20]
        data_dir = str(tmp_path_factory.mktemp(name))
        if len(os.fsencode(data_dir)) > MAX_DATA_DIR_BYTES:  # a deep --basetemp: the sockets would not fit
            os.rmdir(data_dir)
            data_dir = tempfile.mkdtemp(prefix=name + "-")
            made.append(data_dir)
        charger = BenchCharger(station_id=station_id, data_dir=data_dir, **options)
        started.append(charger)
        problem = ""
        try:
            charger.start(wait_online=wait_online, timeout_s=boot_timeout_s)
        except AssertionError as e:  # not online: the backend's or the setup's problem, not the test's
            problem = str(e)
        if problem:
            pytest.fail(problem, pytrace=False)
        return charger

    yield factory
    try:
        for charger in reversed(started):
            charger.stop()
    finally:
        for path in made:
            shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def ocpp_charger(pytestconfig, ocpp_charger_factory):
    """One charger (``--ocpp-station-id``, default PYTEST-CP), online."""
    return ocpp_charger_factory(setting(pytestconfig, "ocpp_station_id"))
