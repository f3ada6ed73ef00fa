from __future__ import annotations

import asyncio

from fastapi import APIRouter, HTTPException, Response
from prometheus_client import CONTENT_TYPE_LATEST
from redis.exceptions import RedisError

from maintflow_api.deps import DB, State, Viewer
from maintflow_api.responses import AUTHED, errors, serialized
from maintflow_broker.health import readiness
from maintflow_broker.queues import queue_stats
from maintflow_core import due
from maintflow_core.opsserver import exposition
from maintflow_core.schemas.ops import Health, QueueStats, Readiness, SchedulerStatus
from maintflow_core.usecases import lease

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=Health, operation_id="ops_health", summary="Process up")
async def healthz() -> Health:
    return Health(status="ok")


@router.get("/metrics", include_in_schema=False)
async def prometheus_metrics(state: State) -> Response:
    return Response(exposition(state.metric_roles), media_type=CONTENT_TYPE_LATEST)


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
    status, body = await readiness(state.settings, state.engine)
    return serialized(Readiness(**body), status)


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
