"""The engines' connection pool queue serves waiters first come, first served, and loses no
connection when a wait ends (timeout or cancellation) just as one is handed over."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.util import greenlet_spawn
from sqlalchemy.util.queue import Empty

from maintflow_core.db.pool import FairAsyncQueue


async def take(queue: FairAsyncQueue[str], timeout: float | None = None) -> str:
    return await greenlet_spawn(queue.get, True, timeout)


async def test_a_returned_item_goes_to_the_longest_waiter_not_to_a_newcomer() -> None:
    queue: FairAsyncQueue[str] = FairAsyncQueue(maxsize=2)
    served: list[str] = []

    async def waiter(name: str) -> None:
        served.append(f"{name}:{await take(queue)}")

    first = asyncio.create_task(waiter("first"))
    await asyncio.sleep(0)
    second = asyncio.create_task(waiter("second"))
    await asyncio.sleep(0)
    queue.put_nowait("conn-a")
    # conn-a went to the first waiter, not into the queue, where a request arriving before
    # that waiter runs again (here: right now) could take it.
    assert queue.empty()
    with pytest.raises(Empty):
        queue.get_nowait()
    newcomer = asyncio.create_task(waiter("newcomer"))
    queue.put_nowait("conn-b")
    queue.put_nowait("conn-c")
    await asyncio.gather(first, second, newcomer)
    assert sorted(served) == ["first:conn-a", "newcomer:conn-c", "second:conn-b"]
    assert queue.empty()


async def test_items_waiting_are_taken_without_waiting() -> None:
    queue: FairAsyncQueue[str] = FairAsyncQueue(maxsize=2)
    queue.put_nowait("a")
    queue.put_nowait("b")
    assert queue.full()
    assert [await take(queue), await take(queue)] == ["a", "b"]
    with pytest.raises(Empty):
        queue.get_nowait()


async def test_a_timed_out_wait_raises_empty_and_leaves_no_waiter_behind() -> None:
    queue: FairAsyncQueue[str] = FairAsyncQueue(maxsize=1)
    with pytest.raises(Empty):
        await take(queue, timeout=0.01)
    queue.put_nowait("a")  # would be lost if the timed-out waiter were still registered
    assert await take(queue) == "a"


async def test_an_item_handed_to_a_cancelled_waiter_is_passed_on() -> None:
    queue: FairAsyncQueue[str] = FairAsyncQueue(maxsize=1)
    doomed = asyncio.create_task(take(queue))
    await asyncio.sleep(0)
    queue.put_nowait("a")  # handed to the waiter ...
    doomed.cancel()  # ... which is cancelled before it runs (a client went away)
    with pytest.raises(asyncio.CancelledError):
        await doomed
    assert await take(queue, timeout=1) == "a"
