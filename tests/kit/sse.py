"""A client of the live notification stream (`GET /v1/notifications/stream`) for tests and
benchmarks: it connects, keeps reading in the background, and collects what it receives.

    async with StreamReader(api.url, token) as reader:      # connected (200) on entry
        ...commit a notification...
        (event,) = await reader.wait_for(1, 5, "the batch.ready")
    # `reader.received`: every message, in order; `received_at`: time.monotonic() of each
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from types import TracebackType
from typing import Any

import httpx
from httpx_sse import ServerSentEvent, aconnect_sse

from tests.kit.poll import poll_until

STREAM = "/v1/notifications/stream"


class StreamReader:
    def __init__(
        self,
        base_url: str,
        token: str,
        last_event_id: str | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.base_url = base_url
        self.headers = {"Authorization": f"Bearer {token}"}
        if last_event_id is not None:
            self.headers["Last-Event-ID"] = last_event_id
        self.received: list[ServerSentEvent] = []
        self.received_at: list[float] = []
        self.ended = False  # the server closed the stream
        self._client = client
        self._task: asyncio.Task[None] | None = None
        self._connected: asyncio.Future[int] | None = None

    async def __aenter__(self) -> StreamReader:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def connect(self, timeout: float = 10.0) -> None:
        """Open the stream; returns once it is answered 200 (AssertionError otherwise)."""
        self._connected = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._read())
        status = await asyncio.wait_for(asyncio.shield(self._connected), timeout)
        assert status == 200, f"stream answered {status}"

    async def _read(self) -> None:
        assert self._connected is not None
        own = self._client is None
        client = self._client or httpx.AsyncClient(base_url=self.base_url)
        try:
            async with aconnect_sse(
                client, "GET", f"{self.base_url}{STREAM}", headers=dict(self.headers), timeout=None
            ) as source:
                self._connected.set_result(source.response.status_code)
                if source.response.status_code != 200:
                    return
                async for event in source.aiter_sse():
                    self.received.append(event)
                    self.received_at.append(time.monotonic())
            self.ended = True
        except Exception as exc:
            if not self._connected.done():
                self._connected.set_exception(exc)
            self.ended = True
        finally:
            if own:
                await client.aclose()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def data(self) -> list[dict[str, Any]]:
        """Each message's `data`, parsed."""
        return [json.loads(e.data) for e in self.received]

    async def wait_for(self, count: int, deadline: float, what: str) -> list[ServerSentEvent]:
        """Until at least `count` messages are in; returns them all."""
        await poll_until(lambda: len(self.received) >= count, deadline, what, every=0.02)
        return list(self.received)


async def stream_status(base_url: str, headers: dict[str, str]) -> httpx.Response:
    """The answer to opening a stream that is refused (401, 403, 503): read in full. For an
    answer of 200 it does not wait: the stream is closed at once."""
    async with (
        httpx.AsyncClient(base_url=base_url) as client,
        client.stream("GET", STREAM, headers=headers) as response,
    ):
        if response.status_code != 200:
            await response.aread()
        return response
