"""Sending webhook deliveries: signed per Standard Webhooks (the `standardwebhooks` package), sent
with httpx over connections whose every address passed the SSRF check at connect time, and run
as tasks on the worker's event loop, at most `webhook_concurrency` at once, so a slow receiver
holds no worker thread (the actor only claims the attempt and starts the task)."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import Any

import httpcore
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


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, but a TCP connection goes only to an address the SSRF rules
    allow: the host is resolved here, every address it resolves to is checked, and the
    connection is made to a checked address, so DNS answering differently between the check
    and the connection (rebinding) cannot reach anything else. TLS still verifies, and sends
    SNI for, the URL's host name: httpcore does that on the stream this returns."""

    def __init__(self, resolver: ssrf.Resolver, *, allow_private: bool) -> None:
        self._inner = httpcore.AnyIOBackend()
        self._resolver = resolver
        self._allow_private = allow_private

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109  (httpcore's signature)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        if self._allow_private:
            return await self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        addresses = await ssrf.resolve_checked(host, port, self._resolver)
        error: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout, OSError) as exc:
                error = exc
        assert error is not None
        raise error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109  (httpcore's signature)
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise ssrf.Refused("webhooks do not connect to Unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _Answer(httpx.AsyncByteStream):
    def __init__(self, stream: Any) -> None:
        self._stream = stream

    async def __aiter__(self) -> Any:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        await self._stream.aclose()


class GuardedTransport(httpx.AsyncBaseTransport):
    """An httpx transport over an httpcore pool that connects through `GuardedBackend` (httpx's
    own transport does not take a network backend)."""

    def __init__(self, backend: httpcore.AsyncNetworkBackend, max_connections: int) -> None:
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=max_connections,
            keepalive_expiry=30,
            network_backend=backend,
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        answer = await self._pool.handle_async_request(
            httpcore.Request(
                method=request.method,
                url=httpcore.URL(
                    scheme=request.url.raw_scheme,
                    host=request.url.raw_host,
                    port=request.url.port,
                    target=request.url.raw_path,
                ),
                headers=request.headers.raw,
                content=request.stream,
                extensions=request.extensions,
            )
        )
        return httpx.Response(
            status_code=answer.status,
            headers=answer.headers,
            stream=_Answer(answer.stream),
            extensions=answer.extensions,
        )

    async def aclose(self) -> None:
        await self._pool.aclose()


def signed_headers(claimed: Claimed, at: datetime) -> dict[str, str]:
    """The Standard Webhooks headers of one attempt made at `at`."""
    return {
        "webhook-id": claimed.message_id,
        "webhook-timestamp": str(math.floor(at.timestamp())),
        "webhook-signature": Signer(claimed.secret).sign(claimed.message_id, at, claimed.body),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }


Recorder = Callable[[Claimed, Outcome], Awaitable[None]]


class WebhookSender:
    """One per worker process, on its event loop."""

    def __init__(
        self, settings: Settings, clock: Clock, resolver: ssrf.Resolver = ssrf.system_resolver
    ) -> None:
        self.policy = Policy.of(settings)
        self.clock = clock
        # httpx logs every request's URL at INFO: receivers' URLs may carry their tokens, and
        # every attempt is recorded in the database anyway.
        logging.getLogger("httpx").setLevel(logging.WARNING)
        self.capacity = settings.webhook_concurrency
        backend = GuardedBackend(resolver, allow_private=settings.webhook_allow_private)
        self._client = httpx.AsyncClient(
            transport=GuardedTransport(backend, self.capacity),
            follow_redirects=False,
            timeout=settings.webhook_timeout_s,
        )
        self._reserved = 0
        self._tasks: set[asyncio.Task[None]] = set()

    def reserve(self) -> bool:
        """Take a slot for one request (no await in between: the check and the count are one
        step on the event loop); False when all are taken."""
        if self._reserved >= self.capacity:
            return False
        self._reserved += 1
        return True

    def release(self) -> None:
        self._reserved -= 1

    def start(self, claimed: Claimed, record: Recorder) -> None:
        """Send `claimed` in the background and hand its outcome to `record`; the slot taken
        by `reserve` is given back when both are done."""
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
        except (httpx.HTTPError, httpcore.NetworkError, httpcore.TimeoutException, OSError) as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        duration_ms = (time.monotonic() - began) * 1000
        return Outcome(started_at, duration_ms, status_code=status, error=error)

    async def _post(self, url: str, body: str, headers: dict[str, str]) -> int:
        async with self._client.stream("POST", url, content=body, headers=headers) as answer:
            read = 0
            async for chunk in answer.aiter_raw():
                read += len(chunk)
                if read >= MAX_ANSWER_BYTES:
                    break
            return answer.status_code

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
        await self._client.aclose()
