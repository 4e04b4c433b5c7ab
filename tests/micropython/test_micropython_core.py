"""The portable core runs under MicroPython, not only within the subset's AST check.

MicroPython 1.27 compiled to WebAssembly (the npm package
``@micropython/micropython-webassembly-pyscript``, pinned in
``tools/micropython``) runs under Node.js; ``tools/micropython/run.mjs`` copies
``agent/core`` and ``hal`` into its filesystem and runs a script there:

- every module of ``agent/core``, ``hal`` and ``hal/runtime`` imports, except
  those in ``EXEMPT`` (each with the reason);
- a charging session of a ``Station`` on the simulated board in virtual time,
  offline, with its state files (``mp_station_session.py``), delivers the same
  energy and meter values as the same script on CPython.

Without Node.js (or npm, while ``tools/micropython/node_modules`` is missing)
the tests skip; in CI (``OCPP_AGENT_CI=1``) they fail instead.
"""

import os
import re
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HERE = os.path.dirname(os.path.abspath(__file__))
NODE_PROJECT = os.path.join(ROOT, "tools", "micropython")
RUNNER = os.path.join(NODE_PROJECT, "run.mjs")
PACKAGE = os.path.join(NODE_PROJECT, "node_modules", "@micropython", "micropython-webassembly-pyscript")
PORTABLE = ("agent/core", "agent/security", "hal")  # with hal/runtime
RUN_TIMEOUT_S = 60

# Modules that do not run on MicroPython, with the reason (the way tests/arch/test_asyncio_subset.py
# lists its exemptions). Their work is the CPython runtime's; a port brings its own.
EXEMPT = {
    "hal/serial_port.py": "pyserial wrapper: the loop's add_reader/add_writer on the tty's file descriptor",
    "hal/modbus.py": "Modbus RTU/TCP through pymodbus (a CPython library) and its asyncio transports",
    "hal/sim_control.py": "unix-socket control server of the simulator (start_unix_server is CPython only)",
    "hal/runtime/jsonline.py": "unix-socket JSON-line servers and their client (socket, stat: CPython only)",
    "hal/gpio_fake.py": "a stand-in for the gpiod library in tests and benches (enum, dataclasses: CPython only)",
    "hal/data_file.py": "reads board files and meter maps with tomllib (CPython >= 3.11); a port passes dicts",
    "agent/security/certificates.py": "X.509 parsing, hashing and signature checks with cryptography (CPython)",
    "agent/security/identity.py": "key pairs and CSRs with cryptography (CPython); a port brings a TLS stack's own",
    "agent/security/tls.py": "builds ssl.SSLContext objects and reads ssl error reasons (CPython's ssl module)",
}


def _missing() -> str:
    """Why the MicroPython runs cannot happen here ('' when they can)."""
    if shutil.which("node") is None:
        return "node not found (apt-get install nodejs npm)"
    if not os.path.isdir(PACKAGE) and shutil.which("npm") is None:
        return "npm not found to install tools/micropython (apt-get install npm)"
    return ""


needs_node = pytest.mark.skipif(bool(_missing()) and not os.environ.get("OCPP_AGENT_CI"),
                                reason="MicroPython under Node.js: %s (CI fails instead of skipping)" % _missing())


@pytest.fixture(scope="module")
def micropython():
    """Install the pinned MicroPython package when it is missing; return a function that runs
    a script under it: ``run(script, *args) -> CompletedProcess``."""
    problem = _missing()
    assert not problem, problem
    if not os.path.isdir(PACKAGE):
        subprocess.run(["npm", "ci", "--silent", "--no-audit", "--no-fund", "--prefix", NODE_PROJECT],
                       check=True, timeout=300)

    def run(script: str, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["node", RUNNER, os.path.join(HERE, script), *args], cwd=ROOT,
                              capture_output=True, text=True, timeout=RUN_TIMEOUT_S + 10)

    return run


def portable_modules() -> list:
    """Module names of every .py under PORTABLE (package __init__ files left out)."""
    out = []
    for package in PORTABLE:
        for dirpath, dirnames, filenames in os.walk(os.path.join(ROOT, package)):
            dirnames[:] = [d for d in dirnames if d != "__pycache__"]
            for f in filenames:
                if f.endswith(".py") and f != "__init__.py":
                    out.append(os.path.relpath(os.path.join(dirpath, f), ROOT).replace(os.sep, "/"))
    return sorted(out)


def _module_name(rel: str) -> str:
    return rel[:-3].replace("/", ".")


def _result(proc: subprocess.CompletedProcess) -> dict:
    """The fields of the script's RESULT line; fails with the run's output when there is none."""
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, "exit status %d\nstdout:\n%s\nstderr:\n%s" % (
        proc.returncode, proc.stdout, proc.stderr)
    return dict(re.findall(r"(\w+)=(\S+)", lines[-1]))


def test_every_exemption_names_an_existing_module_with_a_reason():
    modules = portable_modules()
    assert "agent/core/station.py" in modules and "hal/sim.py" in modules  # the walk sees the core
    for rel, reason in EXEMPT.items():
        assert rel in modules, "stale exemption: %s does not exist" % rel
        assert len(reason) > 20


@needs_node
def test_portable_modules_import_under_micropython(micropython):
    names = [_module_name(rel) for rel in portable_modules() if rel not in EXEMPT]
    proc = micropython("mp_import_modules.py", *names)
    result = _result(proc)
    assert result == {"imported": str(len(names)), "failed": "0"}, proc.stdout + proc.stderr
    assert sorted(line.split()[1] for line in proc.stdout.splitlines() if line.startswith("IMPORTED ")) == names


@needs_node
def test_a_station_session_runs_under_micropython(micropython, tmp_path):
    result = _result(micropython("mp_station_session.py", "/tmp/station"))  # MicroPython's own filesystem
    assert result["implementation"] == "micropython"
    assert int(result["energy_wh"]) > 0 and int(result["meter_values"]) > 0
    assert result["stop_reason"] == "local"

    # The same script on CPython: the same charging, to the watt-hour.
    env = dict(os.environ, PYTHONPATH=ROOT)
    cpython = _result(subprocess.run([sys.executable, os.path.join(HERE, "mp_station_session.py"),
                                      str(tmp_path / "station")], cwd=ROOT, env=env, capture_output=True,
                                     text=True, timeout=RUN_TIMEOUT_S))
    assert cpython["implementation"] == "cpython"
    for key in ("energy_wh", "meter_values", "stop_reason"):
        assert result[key] == cpython[key], (key, result, cpython)
