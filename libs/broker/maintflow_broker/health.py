"""Readiness of a process: the database (`maintflow_core.health`) and the broker's Redis, each
within a short timeout."""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aioredis
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from maintflow_core import health
from maintflow_core.settings import Settings


async def broker(settings: Settings) -> str:
    if not settings.redis_url:
        return "ok (in-memory)"
    client = aioredis.from_url(
        settings.redis_url,
        socket_timeout=health.PROBE_TIMEOUT_S,
        socket_connect_timeout=health.PROBE_TIMEOUT_S,
    )
    try:
        async with asyncio.timeout(health.PROBE_TIMEOUT_S):
            await client.ping()
        return "ok"
    except Exception as exc:
        return health.failure(exc)
    finally:
        await client.aclose()


async def readiness(
    settings: Settings, engine: AsyncEngine | None = None
) -> tuple[int, dict[str, Any]]:
    """`/readyz`: both checks at once. `engine`: the process's own (the API's pool); without one,
    a connection of its own, opened and closed for this probe (the scheduler's and workers' ops
    ports answer from a thread of their own, off the process's event loop)."""
    own = engine is None
    if engine is None:
        engine = create_async_engine(settings.database_url, poolclass=NullPool)
    try:
        db, brk = await asyncio.gather(health.database(engine), broker(settings))
    finally:
        if own:
            await engine.dispose()
    return health.verdict({"database": db, "broker": brk})
