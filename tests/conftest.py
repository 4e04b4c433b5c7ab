"""Test plumbing: run ``async def`` tests in a fresh event loop, fail any test
that leaves tasks running (a leaked task is a bug: loops must stop), and fail a
test that hangs (wall-clock limit; the stacks of all tasks are printed)."""

import asyncio
import inspect
import io

import pytest

TEST_TIMEOUT_S = 20


def _task_stacks() -> str:
    out = io.StringIO()
    for t in asyncio.all_tasks():
        t.print_stack(file=out)
    return out.getvalue()


def pytest_pyfunc_call(pyfuncitem):
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    kwargs = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}

    marker = pyfuncitem.get_closest_marker("timeout_s")  # a test that runs real installs says how long
    timeout_s = marker.args[0] if marker else TEST_TIMEOUT_S

    async def run_and_check_leaks():
        test = asyncio.create_task(pyfuncitem.obj(**kwargs))
        done, _ = await asyncio.wait([test], timeout=timeout_s)
        if not done:
            stacks = _task_stacks()
            test.cancel()
            await asyncio.wait([test], timeout=5)
            pytest.fail("test did not finish in %d s; tasks:\n%s" % (timeout_s, stacks))
        test.result()
        await asyncio.sleep(0)
        me = asyncio.current_task()
        leaked = [t for t in asyncio.all_tasks() if t is not me and not t.done()]
        if leaked:
            names = ", ".join(repr(t.get_coro()) for t in leaked)
            for t in leaked:
                t.cancel()
            await asyncio.wait(leaked, timeout=5)
            pytest.fail("test leaked %d task(s): %s" % (len(leaked), names))

    asyncio.run(run_and_check_leaks())
    return True
