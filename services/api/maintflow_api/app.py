"""`create_app(settings)`: the FastAPI application, its routes and error handlers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI
from fastapi_offline import FastAPIOffline

from maintflow_api import errors, observe
from maintflow_api.deps import AppState
from maintflow_api.limits import BodySizeLimit
from maintflow_api.query import known_query_only
from maintflow_api.ratelimit import RequestLimits, per_token
from maintflow_api.routes import (
    flows,
    notifications,
    ops,
    schedules,
    sessions,
    system_jobs,
    target_lists,
    users,
    webhooks,
    windows,
)
from maintflow_api.streams import StreamHub
from maintflow_broker.brokers import new_broker
from maintflow_core import metrics
from maintflow_core.clock import Clock, SystemClock
from maintflow_core.db.session import create_engine, create_sessionmaker
from maintflow_core.db.store import Store, open_store
from maintflow_core.settings import Settings

Hook = Callable[[AppState], Awaitable[None]]

TAGS: list[dict[str, Any]] = [
    {"name": "users", "description": "The team's users and their roles and tokens."},
    {
        "name": "flows",
        "description": "Ordered steps an engineer works through; maintenance flows run as "
        "batches and on schedules.",
    },
    {
        "name": "target lists",
        "description": "Saved lists of targets (servers, sites) that batches and schedules "
        "work on; JSON or CSV.",
    },
    {
        "name": "sessions and batches",
        "description": "A batch is one run of a flow over targets: one session per target, "
        "moved on by engineers.",
    },
    {
        "name": "maintenance schedules",
        "description": "Cron or recurrence rules in an IANA timezone that launch batches.",
    },
    {
        "name": "maintenance windows",
        "description": "Announced spans of planned work on a team's targets, with an update "
        "history; the scheduler starts and completes them on time.",
    },
    {
        "name": "system jobs",
        "description": "The deployment's housekeeping jobs (retention cleanup) and their runs; "
        "admins only.",
    },
    {
        "name": "notifications",
        "description": "The team's notifications, newest first, and a live stream of them.",
    },
    {
        "name": "webhooks",
        "description": "HTTP receivers of the team's events, signed per Standard Webhooks; "
        "admins only.",
    },
    {"name": "operations", "description": "Health, readiness, queues and the scheduler."},
]


def create_app(
    settings: Settings,
    clock: Clock | None = None,
    *,
    store: Store | None = None,
    on_startup: Hook | None = None,
    on_shutdown: Hook | None = None,
    metric_roles: tuple[str, ...] = ("api",),
) -> FastAPI:
    """The API. `store`: the one the process chose (default: the settings' database's).
    `on_startup`/`on_shutdown` let the embedded mode run its scheduler and workers inside the
    same lifespan, and export every role's metrics (`metric_roles`)."""
    chosen = store or open_store(settings)
    metrics.configure(settings.metrics_enabled)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # No pre-ping: it costs a round trip per request. A connection broken by a database
        # restart fails one request with 503 (see errors.py) and invalidates the whole pool.
        engine = create_engine(settings, pool_pre_ping=False)
        state = AppState(
            settings, clock or SystemClock(), chosen, engine, create_sessionmaker(engine)
        )
        # GET requests only read: the store may spare them their BEGIN/ROLLBACK round trips.
        state.open_read_db = chosen.read_sessionmaker(engine)
        state.metric_roles = metric_roles
        if settings.redis_url:
            # Only read (queue depths): a short timeout, so a hung Redis fails the request.
            state.broker = new_broker(settings, socket_timeout=2, socket_connect_timeout=2)
        state.limits = RequestLimits(settings)
        state.streams = StreamHub(
            state.open_read_db or state.open_db,
            chosen,
            settings.sse_max_streams,
            settings.sse_poll_s,
        )
        await state.streams.start()
        app.state.maintflow = state
        if on_startup:
            await on_startup(state)
        try:
            yield
        finally:
            await state.streams.stop()
            if on_shutdown:
                await on_shutdown(state)
            if settings.redis_url and state.broker is not None:
                state.broker.close()
            await engine.dispose()

    # /docs and /redoc load Swagger UI and ReDoc from assets shipped in fastapi-offline, not from
    # a CDN: they work on a network without internet access.
    app = FastAPIOffline(
        title="maintflow",
        version="0.1.0",
        description="Scheduled maintenance for managed-service teams.",
        openapi_tags=TAGS,
        lifespan=lifespan,
        dependencies=[Depends(known_query_only), Depends(per_token)],
    )
    errors.install(app)
    for module in (
        users,
        flows,
        target_lists,
        sessions,
        schedules,
        windows,
        system_jobs,
        notifications,
        webhooks,
        ops,
    ):
        app.include_router(module.router)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    observe.install(app)
    return app
