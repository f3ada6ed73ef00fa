"""Shared setup for scheduling tests: a flow, a target list and a schedule through the API, and a
scheduler service on a fake clock with an in-memory broker."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from maintflow_core.clock import FakeClock
from maintflow_core.settings import Settings
from maintflow_scheduler.service import SchedulerService
from maintflow_workers.broker import build_broker
from tests.conftest import TeamCtx, new_flow, new_target_list


async def new_schedule(
    t: TeamCtx, *, targets: int | None = 3, flow_name: str | None = None, **body: Any
) -> dict[str, Any]:
    flow = await new_flow(t, name=flow_name or f"Patch {uuid.uuid4().hex[:6]}")
    payload: dict[str, Any] = {"flow_id": flow["id"], **body}
    if targets is not None:
        tl = await new_target_list(t, targets, name=f"hosts {uuid.uuid4().hex[:6]}")
        payload["target_list_id"] = tl["id"]
    r = await t.req("POST", "/v1/maintenance-schedules", json=payload)
    assert r.status_code == 201, r.text
    return dict(r.json())


def scheduler(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    clock: FakeClock,
    name: str = "test-scheduler",
) -> SchedulerService:
    broker = build_broker(settings, stub=True)
    return SchedulerService(settings, sessions, clock, broker, holder_id=name)


async def scalar(t: TeamCtx, sql: str, **params: Any) -> Any:
    async with t.sessions() as db:
        return await db.scalar(sa.text(sql), params)


async def rows(t: TeamCtx, sql: str, **params: Any) -> list[Any]:
    async with t.sessions() as db:
        return list((await db.execute(sa.text(sql), params)).all())


async def fired_instants(t: TeamCtx, schedule_id: str) -> list[Any]:
    return [
        r[0]
        for r in await rows(
            t,
            "SELECT scheduled_for FROM batches WHERE schedule_id = :s AND trigger = 'schedule' "
            "ORDER BY scheduled_for",
            s=uuid.UUID(schedule_id),
        )
    ]
