"""Readiness: is the database reachable, and the shape of a `/readyz` answer. The broker's check
is in `maintflow_broker.health`, which adds it to this; every process's `/readyz` (the API's
route, the scheduler's and the workers' ops ports) answers with `verdict`."""

from __future__ import annotations

import asyncio
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from maintflow_core import metrics

# A probe never waits longer than this for one dependency: an orchestrator's probe times out
# after a few seconds, and a hung dependency must read as "not ready", not as a hung process.
PROBE_TIMEOUT_S = 2.0


def failure(exc: BaseException) -> str:
    return f"unreachable: {type(exc).__name__}"


async def database(engine: AsyncEngine) -> str:
    """ "ok", or why the database cannot be reached within PROBE_TIMEOUT_S."""
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_S):
            async with engine.connect() as conn:
                await conn.execute(sa.text("SELECT 1"))
        return "ok"
    except Exception as exc:
        return failure(exc)


def verdict(checks: dict[str, str]) -> tuple[int, dict[str, Any]]:
    """HTTP status and body of `/readyz` for these checks (each "ok…" or a reason)."""
    metrics.readiness_observed(checks)
    ok = all(v.startswith("ok") for v in checks.values())
    return (200 if ok else 503), {"status": "ok" if ok else "unavailable", **checks}
