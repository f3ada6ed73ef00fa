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


def _check(deadline: float) -> None:
    if deadline < 0:
        raise ValueError(f"deadline is a number of seconds to wait, not {deadline!r}")


def _timeout(what: str, deadline: float, last: Any, detail: Callable[[], str] | None) -> str:
    extra = f"\n{detail()}" if detail is not None else ""
    return f"{what}: not within {deadline:g} s (last seen: {last!r}){extra}"


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
    _check(deadline)
    ends = time.monotonic() + deadline
    last: Any = None
    while True:
        try:
            last = predicate()
            if inspect.isawaitable(last):
                last = await last
        except ignore as exc:
            last = exc
        else:
            if last:
                return last
        if time.monotonic() >= ends:
            raise AssertionError(_timeout(what, deadline, last, detail))
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
    _check(deadline)
    ends = time.monotonic() + deadline
    last: Any = None
    while True:
        try:
            last = predicate()
        except ignore as exc:
            last = exc
        else:
            if last:
                return last
        if time.monotonic() >= ends:
            raise AssertionError(_timeout(what, deadline, last, detail))
        time.sleep(every)
