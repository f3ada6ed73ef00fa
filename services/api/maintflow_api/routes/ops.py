from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, HTTPException, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST
from redis.exceptions import RedisError

from maintflow_api.deps import DB, State, Viewer
from maintflow_api.responses import errors
from maintflow_broker.health import readiness
from maintflow_broker.queues import queue_stats
from maintflow_core import due
from maintflow_core.opsserver import exposition
from maintflow_core.usecases import lease

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/metrics", include_in_schema=False)
async def prometheus_metrics(state: State) -> Response:
    return Response(exposition(state.metric_roles), media_type=CONTENT_TYPE_LATEST)


@router.get(
    "/readyz",
    responses={503: {"description": "Not ready: the body names the unreachable dependency."}},
)
async def readyz(state: State) -> Response:
    status, body = await readiness(state.settings, state.engine)
    return JSONResponse(status_code=status, content=body)


@router.get("/v1/ops/queues", responses=errors(401, 503))
async def queues(state: State, principal: Viewer) -> list[dict[str, Any]]:
    """Per queue: messages waiting, delayed (retries), and dead-lettered."""
    try:
        # Off the event loop: the broker's Redis client is synchronous.
        return await asyncio.to_thread(queue_stats, state.broker)
    except (RedisError, OSError) as exc:
        raise HTTPException(503, f"broker unreachable: {type(exc).__name__}") from exc


@router.get("/v1/ops/scheduler", responses=errors(401))
async def scheduler_status(db: DB, state: State, principal: Viewer) -> dict[str, Any]:
    current = await lease.current(db)
    now = state.clock.now()
    backlog = await due.backlog(db, due.sources(state.store, state.settings), now)
    live = current is not None and current.expires_at >= now
    return {
        "leader_id": current.holder if live and current else None,
        "leader_since": current.acquired_at if live and current else None,
        "last_tick_at": current.last_tick_at if current else None,
        "due_backlog": backlog,
    }
