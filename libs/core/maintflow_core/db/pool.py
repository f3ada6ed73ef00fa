"""A first-come-first-served connection pool for the asyncio engines.

SQLAlchemy's `AsyncAdaptedQueuePool` waits on an `asyncio.Queue`, and a connection returned to
it can be taken by a request that arrives just then, before the waiter that was woken for it
runs; that waiter then queues again at the back. Under saturation a few requests lose that race
again and again and wait seconds while newer ones are served (measured in the API: p99 of
1.9 to 3.6 s at 32 concurrent clients on a pool of 20, with p50 ~60 ms). Here a returned
connection is handed straight to the longest-waiting request, and nobody takes a connection
while others wait."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, TypeVar

from sqlalchemy.pool import AsyncAdaptedQueuePool
from sqlalchemy.util import await_
from sqlalchemy.util.queue import AsyncAdaptedQueue, Empty, Full

T = TypeVar("T")


class FairAsyncQueue(AsyncAdaptedQueue[T]):
    """The pool's queue: items in a deque, waiters served strictly in arrival order."""

    def __init__(self, maxsize: int = 0, use_lifo: bool = False) -> None:
        super().__init__(maxsize, use_lifo)
        self._items: deque[T] = deque()
        self._waiters: deque[asyncio.Future[T]] = deque()

    def empty(self) -> bool:
        return not self._items

    def full(self) -> bool:
        return self.maxsize > 0 and len(self._items) >= self.maxsize

    def qsize(self) -> int:
        return len(self._items)

    def put_nowait(self, item: T) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(item)  # straight to the longest-waiting request
                return
        if self.full():
            raise Full()
        self._items.append(item)

    def put(self, item: T, block: bool = True, timeout: float | None = None) -> None:
        # The pool only puts back what it took, so there is always room.
        self.put_nowait(item)

    def get_nowait(self) -> T:
        if not self._items:
            raise Empty()
        return self._items.pop() if self.use_lifo else self._items.popleft()

    def get(self, block: bool = True, timeout: float | None = None) -> T:
        if self._items:  # items and waiters never coexist: put hands items to waiters first
            return self.get_nowait()
        if not block:
            raise Empty()
        waiter: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            shielded = asyncio.shield(waiter)
            if timeout is None:
                return await_(shielded)
            return await_(asyncio.wait_for(shielded, timeout))
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled():
                # Handed a connection just as the wait ended (timeout or the request was
                # cancelled): pass it on rather than lose it.
                self.put_nowait(waiter.result())
            else:
                waiter.cancel()
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
            if isinstance(exc, asyncio.TimeoutError | TimeoutError):
                raise Empty() from exc
            raise


class FairAsyncQueuePool(AsyncAdaptedQueuePool):
    """`AsyncAdaptedQueuePool` with `FairAsyncQueue`: same sizes, overflow and timeouts."""

    _queue_class: Any = FairAsyncQueue
