"""What the API shows of itself: per request, the metrics (requests by route template, method
and status class; latency by route template: `maintflow_core.metrics`), a request id
(asgi-correlation-id: an `X-Request-ID` sent by the client is kept, else one is made, and it is
returned on every response) and one `http_request` log line carrying it.

The route template is the matched route's path, which Starlette leaves in the ASGI scope, so label
values are bounded by the routes. (prometheus-fastapi-instrumentator 7.1 was tried first: it fails
every request on FastAPI 0.163, whose included routers have no `path`.)"""

from __future__ import annotations

import logging
import time

from asgi_correlation_id import CorrelationIdMiddleware, correlation_id
from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from maintflow_core import metrics
from maintflow_core.logging import bind_log_fields

log = logging.getLogger("maintflow.api")

REQUEST_ID_HEADER = "X-Request-ID"
MAX_REQUEST_ID = 128
UNMATCHED = "(unmatched)"
# Probes and scrapes every few seconds: counted in the metrics, not worth a log line each.
QUIET_PATHS = frozenset({"/metrics", "/healthz", "/readyz"})


def acceptable_request_id(value: str) -> bool:
    return 0 < len(value) <= MAX_REQUEST_ID and value.isprintable()


class RequestObserver:
    """Counts and times every request by its route template, logs one `http_request` line for
    it (with the ids its path names: `schedule_id`, `batch_id`, …), and binds its request id to
    every line logged while it is served."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        with bind_log_fields(request_id=correlation_id.get()):
            try:
                await self.app(scope, receive, sending)
            finally:
                seconds = time.perf_counter() - started
                route = getattr(scope.get("route"), "path", None) or UNMATCHED
                metrics.http_request(route, scope["method"], status, seconds)
                if scope["path"] not in QUIET_PATHS and log.isEnabledFor(logging.INFO):
                    # The ids in the path (schedule_id, batch_id, …), known once routed.
                    path_ids = {
                        k: v for k, v in scope.get("path_params", {}).items() if k.endswith("_id")
                    }
                    log.info(
                        "http_request",
                        extra={
                            "method": scope["method"],
                            "route": route,
                            "status": status,
                            "duration_ms": round(seconds * 1000, 2),
                            **path_ids,
                        },
                    )


def install(app: FastAPI) -> None:
    """Add the observer and the request id (outermost, so that every answer — a rejected body, a
    404 — carries it). Call after every other middleware is added."""
    app.add_middleware(RequestObserver)
    app.add_middleware(
        CorrelationIdMiddleware,
        header_name=REQUEST_ID_HEADER,
        validator=acceptable_request_id,
    )
