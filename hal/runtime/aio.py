"""Waiting with a timeout, and cancelling a task, without ever losing a cancellation.

CPython 3.11's ``asyncio.wait_for`` returns the awaited result when it
completes in the same loop iteration as a cancellation of the caller
(CPython issue gh-86296, fixed in 3.12): the ``CancelledError`` is lost. A
driver loop around it (poll a reader, wait for a reply) then runs on, and
whoever cancelled it — the agent stopping — waits forever. ``wait_for`` and
``cancel_and_wait`` here raise that cancellation again. They notice it by
``Task.cancelling()`` (CPython ≥ 3.11); where it does not exist (MicroPython)
they are the plain operations.

Portable core: the MicroPython asyncio subset.
"""

import asyncio


def _cancel_requests() -> int:
    """How many cancellations of the current task are pending (0 where unknown)."""
    task = asyncio.current_task()
    cancelling = getattr(task, "cancelling", None)
    return cancelling() if cancelling is not None else 0


async def wait_for(awaitable, timeout_s: float):
    """``asyncio.wait_for(awaitable, timeout_s)`` that never swallows the caller's cancellation."""
    before = _cancel_requests()
    result = await asyncio.wait_for(awaitable, timeout_s)
    if _cancel_requests() > before:
        raise asyncio.CancelledError
    return result


async def cancel_and_wait(task) -> None:
    """Cancel ``task`` (None: nothing to do) and wait for it to end. A cancellation of the
    caller that arrives meanwhile is raised, not taken for the task's own."""
    if task is None:
        return
    before = _cancel_requests()
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        if _cancel_requests() > before:
            raise


async def sleep_or_event(clock, event: asyncio.Event, seconds: float) -> None:
    """Until ``event`` is set or ``seconds`` passed on ``clock``, whichever comes first."""
    done = asyncio.Event()

    async def until(awaitable) -> None:
        try:
            await awaitable
        finally:
            done.set()

    tasks = (asyncio.create_task(until(clock.sleep(seconds))), asyncio.create_task(until(event.wait())))
    try:
        await done.wait()
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
