"""Waiting for something to become true, with a deadline, instead of sleeping a guessed time.

    batch = await poll_until(lambda: ready_batch(db, batch_id), 30, "batch ready")

`predicate` is called (and awaited if it returns an awaitable) every `every` seconds until it
returns something truthy, which is returned. `deadline` is how many seconds to wait; after it an
AssertionError names `what`, the last value seen and, if given, `detail()` (process logs, say).
An exception raised by the predicate propagates, unless its type is listed in `ignore` (a
server that is still starting refuses connections)."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from typing import Any


class _Attempts:
    """The bookkeeping both pollers share: the deadline, the last value seen, the failure."""

    def __init__(self, deadline: float, what: str, detail: Callable[[], str] | None) -> None:
        if deadline < 0:
            raise ValueError(f"deadline is a number of seconds to wait, not {deadline!r}")
        self.deadline, self.what, self.detail = deadline, what, detail
        self.ends = time.monotonic() + deadline
        self.last: Any = None

    def answered(self, value: Any) -> bool:
        """Record one attempt's value (or the ignored exception it raised): True if it is the
        answer; AssertionError once the deadline has passed."""
        self.last = value
        if value and not isinstance(value, BaseException):
            return True
        if time.monotonic() >= self.ends:
            extra = f"\n{self.detail()}" if self.detail is not None else ""
            raise AssertionError(
                f"{self.what}: not within {self.deadline:g} s (last seen: {value!r}){extra}"
            )
        return False


async def poll_until(
    predicate: Callable[[], Any],
    deadline: float,
    what: str,
    *,
    every: float = 0.1,
    ignore: tuple[type[BaseException], ...] = (),
    detail: Callable[[], str] | None = None,
) -> Any:
    """Await `predicate()` until it is truthy and return it; AssertionError after `deadline` s."""
    attempts = _Attempts(deadline, what, detail)
    while True:
        try:
            value = predicate()
            if inspect.isawaitable(value):
                value = await value
        except ignore as exc:
            value = exc
        if attempts.answered(value):
            return value
        await asyncio.sleep(every)


def poll_until_sync(
    predicate: Callable[[], Any],
    deadline: float,
    what: str,
    *,
    every: float = 0.1,
    ignore: tuple[type[BaseException], ...] = (),
    detail: Callable[[], str] | None = None,
) -> Any:
    """`poll_until` for code without an event loop."""
    attempts = _Attempts(deadline, what, detail)
    while True:
        try:
            value = predicate()
        except ignore as exc:
            value = exc
        if attempts.answered(value):
            return value
        time.sleep(every)
