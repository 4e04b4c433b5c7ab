"""The portable core uses only the MicroPython asyncio subset (STYLE.md).

An AST scan of every module in ``agent/``, ``hal/`` and ``boards/``. Allowed:
``run, sleep, create_task, current_task, gather, wait_for, Event, Lock,
CancelledError, TimeoutError, open_connection, start_server, StreamReader,
StreamWriter, Task.cancel()/done()``. Anything else from ``asyncio`` is
flagged (``Queue``, ``wait``, ``get_running_loop``…), and so are the task and
loop methods MicroPython lacks (``.result()``, ``.add_done_callback()``,
``.call_later()``…), keyword arguments to ``create_task``/``run``/``sleep``,
async generators and async comprehensions. Modules that wrap CPython-only
libraries are listed in ``EXEMPT`` with the reason.
"""

import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PACKAGES = ("agent", "hal", "boards")

# STYLE.md, "MicroPython-compatible asyncio: the subset".
ALLOWED = frozenset((
    "run", "sleep", "create_task", "current_task", "gather", "wait_for", "Event", "Lock",
    "CancelledError", "TimeoutError", "open_connection", "start_server", "StreamReader",
    "StreamWriter", "Task",
))
# Methods of tasks and loops that MicroPython lacks (Task.cancel()/done() are fine).
FORBIDDEN_METHODS = frozenset((
    "result", "add_done_callback", "get_name", "call_soon", "call_later", "call_at",
    "run_in_executor", "create_future", "add_reader", "ensure_future",
))
NO_KEYWORDS = frozenset(("create_task", "run", "sleep"))

# Modules that wrap CPython-only libraries or OS facilities, with the reason.
EXEMPT = {
    "agent/ocppj/link.py": "the adapters' link plumbing: waits on tasks with add_done_callback (the ocpp library's sessions)",
    "agent/ocpp16/session.py": "wraps the ocpp library (its ChargePoint uses asyncio.Queue and Futures)",
    "agent/ocpp16/client.py": "drives the ocpp library's ChargePoint (its calls are Futures)",
    "agent/ocpp16/codec.py": "the ocpp library's schemas and errors",
    "agent/ocpp201/session.py": "wraps the ocpp library's v201 ChargePoint (asyncio.Queue and Futures) and schemas",
    "agent/ocpp201/client.py": "drives the ocpp library's v201 ChargePoint (its calls are Futures; done callbacks)",
    "agent/link/connection.py": "wraps websockets and ssl; the websocket is owned here",
    "agent/app/cli.py": "command line: argparse, signal handlers on the running loop, subprocess re-exec",
    "hal/sim_control.py": "unix-socket control server of the simulator (start_unix_server is CPython only)",
    "hal/serial_port.py": "pyserial wrapper: the loop's add_reader/add_writer on the tty's file descriptor",
    "hal/runtime/jsonline.py": "unix-socket JSON-line servers and their client (start_unix_server is CPython only)",
    "agent/link/switch.py": "endpoint switching: drives CsmsConnection (websockets) and the ocpp library's ChargePoint",
    "agent/link/drain.py": "drain connections: CsmsConnection (websockets) and an ocpp library ChargePoint",
    "agent/app/status_page.py": "the local status page is served with h11 (a CPython library) over asyncio.start_server",
    "agent/app/config_file.py": "edits the TOML configuration file with tomlkit (CLI and running agent)",
    "agent/app/diagnostics.py": "the diagnostics archive: reads logs and zips in a worker thread (to_thread), tomlkit",
    "agent/app/fleet_view.py": "the fleet command: signal handlers on the running loop, the rich live view",
    "agent/app/bench_charger.py": "test benches (pytest plugin): runs an agent in a thread of its own, on its own loop",
    "agent/transfer/upload.py": "file uploads with urllib and ftplib (blocking clients) in a worker thread (to_thread)",
    "agent/transfer/download.py": "downloads with urllib and ftplib (blocking, CPython) in a worker thread",
    "agent/update/installer.py": "installs run python -m venv and pip (blocking subprocesses) in a worker thread (to_thread)",
}


def _asyncio_names(tree: ast.AST) -> tuple[set, dict]:
    """(module aliases of asyncio, {local name: asyncio name} from ``from asyncio import``)."""
    modules, names = set(), {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "asyncio":
                    modules.add(alias.asname or "asyncio")
        elif isinstance(node, ast.ImportFrom) and node.module == "asyncio":
            for alias in node.names:
                names[alias.asname or alias.name] = alias.name
    return modules, names


def check_source(source: str, filename: str = "<string>") -> list[str]:
    """Return the violations of the MicroPython asyncio subset in ``source``."""
    tree = ast.parse(source, filename)
    modules, imported = _asyncio_names(tree)
    problems = []

    def report(node: ast.AST, what: str) -> None:
        problems.append("%s:%d: %s" % (filename, getattr(node, "lineno", 0), what))

    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "asyncio":
            for alias in node.names:
                if alias.name not in ALLOWED:
                    report(node, "from asyncio import %s" % alias.name)
        elif isinstance(node, ast.Attribute):
            if isinstance(node.value, ast.Name) and node.value.id in modules:
                if node.attr not in ALLOWED:
                    report(node, "asyncio.%s" % node.attr)
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr in FORBIDDEN_METHODS and not (
                    isinstance(func.value, ast.Name) and func.value.id in modules):
                report(node, ".%s()" % func.attr)
            name = None
            if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id in modules:
                name = func.attr
            elif isinstance(func, ast.Name) and func.id in imported:
                name = imported[func.id]
            if name in NO_KEYWORDS and node.keywords:
                report(node, "keyword argument to asyncio.%s" % name)
        elif isinstance(node, ast.AsyncFunctionDef):
            for inner in _own_nodes(node):
                if isinstance(inner, (ast.Yield, ast.YieldFrom)):
                    report(node, "async generator %s" % node.name)
                    break
        elif isinstance(node, ast.comprehension) and node.is_async:
            report(node.iter, "async comprehension")
        elif isinstance(node, (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
            if any(isinstance(n, ast.Await) for n in ast.walk(node)):
                report(node, "await inside a comprehension")
    return problems


def _own_nodes(func: ast.AST):
    """Nodes of ``func``'s body, not descending into nested functions or classes."""
    stack = list(ast.iter_child_nodes(func))
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            continue
        yield node
        stack.extend(ast.iter_child_nodes(node))


def portable_modules() -> list[str]:
    out = []
    for package in PACKAGES:
        for dirpath, dirnames, filenames in os.walk(os.path.join(ROOT, package)):
            dirnames[:] = [d for d in dirnames if d != "__pycache__"]
            for f in sorted(filenames):
                if f.endswith(".py"):
                    out.append(os.path.relpath(os.path.join(dirpath, f), ROOT).replace(os.sep, "/"))
    return sorted(out)


def test_portable_modules_use_only_the_micropython_asyncio_subset():
    modules = portable_modules()
    assert "agent/core/station.py" in modules and "hal/sim.py" in modules  # the scan sees the core
    problems = []
    for rel in modules:
        if rel in EXEMPT:
            continue
        with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
            problems += check_source(f.read(), rel)
    assert not problems, "outside the MicroPython asyncio subset (STYLE.md):\n" + "\n".join(problems)


def test_every_exemption_names_an_existing_module_with_a_reason():
    modules = portable_modules()
    for rel, reason in EXEMPT.items():
        assert rel in modules, "stale exemption: %s does not exist" % rel
        assert len(reason) > 20


@pytest.mark.parametrize("snippet, expected", [
    ("import asyncio\nq = asyncio.Queue()\n", "asyncio.Queue"),
    ("import asyncio\nasync def f():\n    async with asyncio.TaskGroup() as tg:\n        pass\n", "asyncio.TaskGroup"),
    ("import asyncio\nasync def f(g):\n    await asyncio.to_thread(g)\n", "asyncio.to_thread"),
    ("import asyncio as aio\nasync def f():\n    await aio.wait([])\n", "asyncio.wait"),
    ("from asyncio import Semaphore\n", "from asyncio import Semaphore"),
    ("from asyncio import shield as s\n", "from asyncio import shield"),
    ("import asyncio\nloop = asyncio.get_running_loop()\n", "asyncio.get_running_loop"),
    ("def f(loop, cb):\n    loop.call_later(1, cb)\n", ".call_later()"),
    ("def f(loop, g):\n    return loop.run_in_executor(None, g)\n", ".run_in_executor()"),
    ("import asyncio\nf = asyncio.Future()\n", "asyncio.Future"),
    ("def f(task):\n    return task.result()\n", ".result()"),
    ("def f(task, cb):\n    task.add_done_callback(cb)\n", ".add_done_callback()"),
    ("def f(task):\n    return task.get_name()\n", ".get_name()"),
    ("import asyncio\nasync def f(c):\n    asyncio.create_task(c, name='x')\n", "keyword argument to asyncio.create_task"),
    ("from asyncio import sleep\nasync def f():\n    await sleep(1, result=2)\n", "keyword argument to asyncio.sleep"),
    ("async def gen():\n    yield 1\n", "async generator gen"),
    ("async def f(it):\n    return [x async for x in it]\n", "async comprehension"),
    ("async def f(cs):\n    return [await c for c in cs]\n", "await inside a comprehension"),
])
def test_checker_flags_forbidden_constructs(snippet, expected):
    problems = check_source(snippet)
    assert any(expected in p for p in problems), problems


def test_checker_accepts_the_subset():
    snippet = (
        "import asyncio\n"
        "from asyncio import Event, Lock\n"
        "async def main(coro):\n"
        "    t = asyncio.create_task(coro)\n"
        "    ev, lock = Event(), asyncio.Lock()\n"
        "    async with lock:\n"
        "        await asyncio.sleep(0.1)\n"
        "    try:\n"
        "        await asyncio.wait_for(ev.wait(), 1)\n"
        "    except asyncio.TimeoutError:\n"
        "        pass\n"
        "    t.cancel()\n"
        "    done = t.done()\n"
        "    await asyncio.gather(t, return_exceptions=True)\n"
        "    def inner():\n"
        "        yield 1\n"
        "    return [x for x in inner()], asyncio.current_task(), done\n"
        "asyncio.run(main(None))\n"
    )
    assert check_source(snippet) == []
