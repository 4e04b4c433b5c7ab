"""hal/runtime/aio.py: a cancellation is never lost, whatever completes in the same loop iteration."""

import asyncio

import pytest

from hal.runtime.aio import cancel_and_wait, wait_for


async def test_wait_for_raises_a_cancellation_that_arrives_with_the_result():
    """The CPython 3.11 race: the awaited thing completes and the caller is cancelled in the same
    iteration. A loop around the wait must stop, not run on with the result."""
    loop_turns = []
    answer = asyncio.Event()

    async def driver_loop():
        while True:  # e.g. a reader polling for cards
            await wait_for(answer.wait(), 5)
            answer.clear()
            loop_turns.append(1)

    task = asyncio.create_task(driver_loop())
    await asyncio.sleep(0)
    answer.set()
    task.cancel()  # the agent stops, just as the answer came
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 1)  # bounded: the old behaviour loops forever
    assert task.cancelled() and loop_turns == []


async def test_wait_for_returns_and_times_out_as_usual():
    done = asyncio.Event()
    done.set()
    assert await wait_for(done.wait(), 1) is True
    with pytest.raises(asyncio.TimeoutError):
        await wait_for(asyncio.Event().wait(), 0.01)


async def test_cleanup_after_a_cancellation_can_still_wait():
    """Waits in the clean-up of a cancelled task (closing a port, a last command) still work:
    only a cancellation that arrives during the wait counts."""
    cleaned = []

    async def worker():
        try:
            await asyncio.sleep(10)
        finally:
            flushed = asyncio.Event()
            flushed.set()
            cleaned.append(await wait_for(flushed.wait(), 1))

    task = asyncio.create_task(worker())
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled() and cleaned == [True]


async def test_cancel_and_wait_ends_the_task_and_passes_on_the_callers_cancellation():
    child_ended = []

    async def child():
        try:
            await asyncio.sleep(10)
        finally:
            await asyncio.sleep(0.05)  # a slow clean-up
            child_ended.append(1)

    await cancel_and_wait(None)
    task = asyncio.create_task(child())
    await asyncio.sleep(0)
    await cancel_and_wait(task)  # the child's own cancellation is expected: not raised
    assert task.cancelled() and child_ended == [1]

    children = []

    async def parent():
        children.append(asyncio.create_task(child()))
        await asyncio.sleep(0)  # the child runs
        await cancel_and_wait(children[0])
        return "went on"

    p = asyncio.create_task(parent())
    await asyncio.sleep(0.01)  # the parent waits for the child's clean-up
    p.cancel()  # the parent's own cancellation: raised, not taken for the child's
    with pytest.raises(asyncio.CancelledError):
        await p
    assert children[0].done()
