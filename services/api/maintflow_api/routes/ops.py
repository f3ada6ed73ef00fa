from __future__ import annotations

import asyncio

import sqlalchemy as sa
from fastapi import APIRouter, HTTPException, Response
from redis.exceptions import RedisError

from maintflow_api.deps import DB, State, Viewer
from maintflow_api.responses import AUTHED, errors, serialized
from maintflow_broker.queues import queue_stats
from maintflow_core import due
from maintflow_core.schemas.ops import Health, QueueStats, Readiness, SchedulerStatus
from maintflow_core.usecases import lease

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=Health, operation_id="ops_health", summary="Process up")
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={
        503: {
            "model": Readiness,
            "description": "Not ready: the body names the unreachable dependency.",
        }
    },
    operation_id="ops_ready",
    summary="Database and broker reachable",
)
async def readyz(state: State) -> Response:
    checks: dict[str, str] = {}
    try:
        async with state.engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"unreachable: {type(exc).__name__}"
    if state.settings.redis_url:
        import redis.asyncio as aioredis

        client = aioredis.from_url(state.settings.redis_url, socket_timeout=2)
        try:
            await client.ping()
            checks["broker"] = "ok"
        except Exception as exc:
            checks["broker"] = f"unreachable: {type(exc).__name__}"
        finally:
            await client.aclose()
    else:
        checks["broker"] = "ok (in-memory)"
    ok = all(v.startswith("ok") for v in checks.values())
    readiness = Readiness(status="ok" if ok else "unavailable", **checks)
    return serialized(readiness, 200 if ok else 503)


@router.get(
    "/v1/ops/queues",
    response_model=list[QueueStats],
    responses={**AUTHED, **errors(503)},
    operation_id="ops_queues",
    summary="Queue depths",
)
async def queues(state: State, principal: Viewer) -> list[QueueStats]:
    """Per queue: messages waiting, delayed (retries), and dead-lettered."""
    try:
        # Off the event loop: the broker's Redis client is synchronous.
        stats = await asyncio.to_thread(queue_stats, state.broker)
        return [QueueStats(**queue) for queue in stats]
    except (RedisError, OSError) as exc:
        raise HTTPException(503, f"broker unreachable: {type(exc).__name__}") from exc


@router.get(
    "/v1/ops/scheduler",
    response_model=SchedulerStatus,
    responses=AUTHED,
    operation_id="ops_scheduler",
    summary="The scheduler's leader and backlog",
)
async def scheduler_status(db: DB, state: State, principal: Viewer) -> SchedulerStatus:
    current = await lease.current(db)
    now = state.clock.now()
    backlog = await due.backlog(db, due.sources(state.store, state.settings), now)
    live = current is not None and current.expires_at >= now
    return SchedulerStatus(
        leader_id=current.holder if live and current else None,
        leader_since=current.acquired_at if live and current else None,
        last_tick_at=current.last_tick_at if current else None,
        due_backlog=backlog,
    )
