"""What the API shows of itself: `/metrics` (prometheus-fastapi-instrumentator: requests by route
template, method and status class, latency histograms by route template), a request id on every
request (asgi-correlation-id: an `X-Request-ID` sent by the client is kept, else one is made; it
is returned on every response) and one `http_request` log line per request carrying it."""

from __future__ import annotations

import logging
import time

from asgi_correlation_id import CorrelationIdMiddleware, correlation_id
from fastapi import FastAPI
from prometheus_fastapi_instrumentator import Instrumentator
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from maintflow_core.logging import bind_log_fields
from maintflow_core.settings import Settings

log = logging.getLogger("maintflow.api")

REQUEST_ID_HEADER = "X-Request-ID"
MAX_REQUEST_ID = 128
# Probes and scrapes every few seconds: counted in the metrics, not worth a log line each.
QUIET_PATHS = frozenset({"/metrics", "/healthz", "/readyz"})
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


def acceptable_request_id(value: str) -> bool:
    return 0 < len(value) <= MAX_REQUEST_ID and value.isprintable()


class RequestLog:
    """One `http_request` line per request (method, route template, status, duration), and the
    request id bound to every line logged while it is served."""

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
                if scope["path"] not in QUIET_PATHS and log.isEnabledFor(logging.INFO):
                    route = scope.get("route")
                    log.info(
                        "http_request",
                        extra={
                            "method": scope["method"],
                            "route": getattr(route, "path", None) or "(unmatched)",
                            "status": status,
                            "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                        },
                    )


def install(app: FastAPI, settings: Settings) -> None:
    """Add the metrics, the request log and the request id (outermost, so every answer — a
    rejected body, a 404 — carries it). Call after every other middleware is added."""
    instrumentator = Instrumentator(
        should_group_status_codes=True,  # status="2xx": a bounded label
        should_group_untemplated=True,  # no route: handler="none", not the raw path
        excluded_handlers=["/metrics"],
    )
    if settings.metrics_enabled:
        instrumentator.instrument(
            app,
            metric_namespace="maintflow",
            metric_subsystem="api",
            latency_lowr_buckets=LATENCY_BUCKETS,
        )
    # Served also with metrics off: what is not observed per request (the process's own).
    instrumentator.expose(app, endpoint="/metrics", include_in_schema=False)
    app.add_middleware(RequestLog)
    app.add_middleware(
        CorrelationIdMiddleware,
        header_name=REQUEST_ID_HEADER,
        validator=acceptable_request_id,
    )
