"""Sending webhook deliveries: signed per Standard Webhooks (the `standardwebhooks` package), sent
with httpcore2 (pydantic's maintained fork of httpcore, httpx's engine) over connections whose
every address passed the SSRF check at connect time, and run as tasks on the worker's event
loop, at most `webhook_concurrency` at once, so a slow receiver holds no worker thread (the
actor only claims the attempts and starts the tasks)."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import Any

import httpcore2
import httpx
from standardwebhooks.webhooks import Webhook as Signer

from maintflow_core import ssrf
from maintflow_core.clock import Clock
from maintflow_core.settings import Settings
from maintflow_core.usecases.webhook_delivery import Claimed, Outcome, Policy

log = logging.getLogger("maintflow.webhooks")

# A receiver's answer is read up to this much (only its status matters), then dropped.
MAX_ANSWER_BYTES = 64 * 1024
USER_AGENT = "maintflow-webhooks/1"


class GuardedBackend(httpcore2.AsyncNetworkBackend):
    """httpcore2's network backend, but a TCP connection goes only to an address the SSRF rules
    allow: the host is resolved here, every address it resolves to is checked, and the
    connection is made to a checked address, so DNS answering differently between the check
    and the connection (rebinding) cannot reach anything else. TLS still verifies, and sends
    SNI for, the URL's host name: httpcore2 does that on the stream this returns."""

    def __init__(self, resolver: ssrf.Resolver, *, allow_private: bool) -> None:
        self._inner = httpcore2.AnyIOBackend()
        self._resolver = resolver
        self._allow_private = allow_private

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109  (httpcore2's signature)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        if self._allow_private:
            stream = await self._inner.connect_tcp(
                host, port, timeout, local_address, socket_options
            )
            return stream
        addresses = await ssrf.resolve_checked(host, port, self._resolver)
        error: Exception | None = None
        for address in addresses:
            try:
                stream = await self._inner.connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
            except (httpcore2.ConnectError, httpcore2.ConnectTimeout, OSError) as exc:
                error = exc
            else:
                return stream
        assert error is not None
        raise error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109  (httpcore2's signature)
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        raise ssrf.Refused("webhooks do not connect to Unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def signed_headers(claimed: Claimed, at: datetime) -> dict[str, str]:
    """The Standard Webhooks headers of one attempt made at `at`."""
    return {
        "webhook-id": claimed.message_id,
        "webhook-timestamp": str(math.floor(at.timestamp())),
        "webhook-signature": Signer(claimed.secret).sign(claimed.message_id, at, claimed.body),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }


# What a request that got no answer raises (httpcore2's errors have no common base).
_FAILED_REQUEST = (
    httpcore2.NetworkError,
    httpcore2.TimeoutException,
    httpcore2.ProtocolError,
    httpcore2.UnsupportedProtocol,
    OSError,
)
Recorder = Callable[[Claimed, Outcome], Awaitable[None]]


class WebhookSender:
    """One per worker process, on its event loop."""

    def __init__(
        self, settings: Settings, clock: Clock, resolver: ssrf.Resolver = ssrf.system_resolver
    ) -> None:
        self.policy = Policy.of(settings)
        self.clock = clock
        self.capacity = settings.webhook_concurrency
        # A connection pool used directly: the client layer above it (cookies, auth,
        # redirects, event hooks) is nothing a delivery wants. Redirects are not followed: a
        # 3xx is the attempt's answer. httpcore2 rather than httpcore 1.0, whose pool rescans
        # every connection (polling each socket) for every queued request: at 64 requests in
        # flight that sent 419 requests/s where httpcore2's sends 1,256 (docs/benchmarks.md).
        self._pool = httpcore2.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=self.capacity,
            keepalive_expiry=30,
            network_backend=GuardedBackend(resolver, allow_private=settings.webhook_allow_private),
        )
        self._timeouts = dict.fromkeys(
            ("connect", "read", "write", "pool"), settings.webhook_timeout_s
        )
        self._slots = asyncio.Semaphore(self.capacity)
        self._tasks: set[asyncio.Task[None]] = set()

    async def reserve(self, wanted: int, within: float) -> int:
        """Take up to `wanted` request slots, waiting at most `within` seconds for the first;
        returns how many were taken (0: none came free in time). Slots are handed out in the
        order they were asked for (asyncio's semaphore is fair), so a message waiting for one
        is not overtaken by messages that arrive after it."""
        try:
            async with asyncio.timeout(within):
                await self._slots.acquire()
        except TimeoutError:
            return 0
        taken = 1
        while taken < wanted and not self._slots.locked():
            await self._slots.acquire()  # free: returns at once
            taken += 1
        return taken

    def release(self, slots: int = 1) -> None:
        for _ in range(slots):
            self._slots.release()

    def start(self, claimed: Claimed, record: Recorder) -> None:
        """Send `claimed` in the background and hand its outcome to `record`; the slot it
        was given by `reserve` is given back when both are done."""
        task = asyncio.create_task(self._run(claimed, record))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, claimed: Claimed, record: Recorder) -> None:
        try:
            outcome = await self.send(claimed)
            await record(claimed, outcome)
        except Exception:
            # The attempt stays `delivering`; the leader drives it again once its lease ends.
            log.exception("webhook_record_failed", extra={"delivery_id": str(claimed.delivery_id)})
        finally:
            self.release()

    async def send(self, claimed: Claimed) -> Outcome:
        """One attempt: POST the body, signed, within the timeout; never raises."""
        started_at = self.clock.now()
        began = time.monotonic()
        headers = signed_headers(claimed, started_at)
        status: int | None = None
        error: str | None = None
        try:
            async with asyncio.timeout(self.policy.timeout_s):
                status = await self._post(claimed.url, claimed.body, headers)
        except TimeoutError:
            error = f"timed out after {self.policy.timeout_s:g} s"
        except ssrf.Refused as exc:
            error = f"refused: {exc}"
        except _FAILED_REQUEST as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        duration_ms = (time.monotonic() - began) * 1000
        return Outcome(started_at, duration_ms, status_code=status, error=error)

    async def _post(self, url: str, body: str, headers: dict[str, str]) -> int:
        async with self._pool.stream(
            "POST",
            url,
            headers=list(headers.items()),
            content=body.encode(),
            extensions={"timeout": self._timeouts},
        ) as answer:
            read = 0
            async for chunk in answer.aiter_stream():
                read += len(chunk)
                if read >= MAX_ANSWER_BYTES:
                    break
            return answer.status

    async def drain(self, grace_s: float | None = None) -> None:
        """Wait for the requests in flight (and their records), at most `grace_s` seconds;
        those still running then are cancelled (the leader drives them again)."""
        if not self._tasks:
            return
        _done, pending = await asyncio.wait(set(self._tasks), timeout=grace_s)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)

    async def aclose(self) -> None:
        await self.drain(self.policy.timeout_s + 1)
        await self._pool.aclose()
