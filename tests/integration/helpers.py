"""Shared setup for scheduling tests: a flow, a target list and a schedule through the API, and a
scheduler service on a fake clock with an in-memory broker."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from maintflow_core.clock import FakeClock
from maintflow_core.db.store import open_store
from maintflow_core.models import Batch
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
    return SchedulerService(
        settings, sessions, clock, broker, holder_id=name, store=open_store(settings)
    )


def _query(sql: str, params: dict[str, Any]) -> sa.TextClause:
    """`sql` with its parameters bound by type: a UUID as the Uuid column type stores it (SQLite
    keeps it as hex text), so the same text runs on both databases."""
    return sa.text(sql).bindparams(
        *(
            sa.bindparam(name, value, type_=sa.Uuid if isinstance(value, uuid.UUID) else None)
            for name, value in params.items()
        )
    )


async def scalar(t: TeamCtx, sql: str, **params: Any) -> Any:
    async with t.sessions() as db:
        return await db.scalar(_query(sql, params))


async def rows(t: TeamCtx, sql: str, **params: Any) -> list[Any]:
    async with t.sessions() as db:
        return list((await db.execute(_query(sql, params))).all())


async def fired_instants(t: TeamCtx, schedule_id: str) -> list[Any]:
    async with t.sessions() as db:
        found = await db.scalars(
            sa.select(Batch.scheduled_for)
            .where(Batch.schedule_id == uuid.UUID(schedule_id), Batch.trigger == "schedule")
            .order_by(Batch.scheduled_for)
        )
        return list(found)


def transactions(
    sessions: async_sessionmaker[AsyncSession],
) -> Callable[[], AbstractAsyncContextManager[AsyncSession]]:
    """One transaction per call, as a worker's context opens them (`WorkerContext.transaction`):
    for use-cases that run several short transactions of their own (a system job)."""

    @asynccontextmanager
    async def transaction() -> AsyncIterator[AsyncSession]:
        async with sessions() as db, db.begin():
            yield db

    return transaction
