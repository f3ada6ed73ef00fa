"""The running leader loop on the real clock: API edits (create, pause, resume, edit, delete)
take effect within 2 seconds, because the leader reads schedules from the database every tick."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from maintflow_api.app import create_app
from maintflow_core.clock import SystemClock
from maintflow_core.models import Batch
from maintflow_core.settings import Settings
from maintflow_core.usecases.teams import create_team
from maintflow_scheduler.service import SchedulerService
from maintflow_workers.broker import build_broker
from tests.conftest import STEPS

Sessions = async_sessionmaker[AsyncSession]


@pytest.fixture
async def live(
    settings: Settings, sessions: Sessions, engine: AsyncEngine
) -> AsyncIterator[tuple[httpx.AsyncClient, SchedulerService]]:
    settings = settings.model_copy(update={"min_schedule_interval_s": 1})
    clock = SystemClock()
    app = create_app(settings, clock)
    svc = SchedulerService(settings, sessions, clock, build_broker(settings, stub=True), "live")
    async with sessions() as db, db.begin():
        new = await create_team(db, clock, "live")
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://test",
            headers={"Authorization": f"Bearer {new.token}"},
        ) as client:
            await svc.renew()
            svc.start()
            try:
                yield client, svc
            finally:
                await svc.stop()


async def newest_fire(sessions: Sessions, schedule_id: str) -> datetime | None:
    async with sessions() as db:
        return await db.scalar(
            sa.select(sa.func.max(Batch.scheduled_for)).where(
                Batch.schedule_id == uuid.UUID(schedule_id)
            )
        )


async def wait_for_fire_after(sessions: Sessions, sid: str, after: datetime) -> float:
    start = time.monotonic()
    while time.monotonic() - start < 5:
        newest = await newest_fire(sessions, sid)
        if newest is not None and newest > after:
            return time.monotonic() - start
        await asyncio.sleep(0.05)
    raise AssertionError(f"no fire after {after} within 5 s")


async def test_api_changes_reach_the_running_leader_within_two_seconds(
    live: tuple[httpx.AsyncClient, SchedulerService], sessions: Sessions
) -> None:
    client, _svc = live
    flow = (
        await client.post(
            "/v1/flows", json={"name": "live", "flow_type": "maintenance", "steps": STEPS}
        )
    ).json()
    created_at = datetime.now(UTC)
    s = (
        await client.post(
            "/v1/maintenance-schedules",
            json={"flow_id": flow["id"], "cron_expression": "* * * * * *"},
        )
    ).json()
    assert await wait_for_fire_after(sessions, s["id"], created_at) < 2.0

    r = await client.post(f"/v1/maintenance-schedules/{s['id']}/pause")
    paused_at = datetime.now(UTC)
    assert r.status_code == 200
    await asyncio.sleep(2.5)
    newest = await newest_fire(sessions, s["id"])
    assert newest is not None and newest <= paused_at + timedelta(seconds=2)

    resumed_at = datetime.now(UTC)
    await client.post(f"/v1/maintenance-schedules/{s['id']}/resume")
    assert await wait_for_fire_after(sessions, s["id"], resumed_at) < 2.0

    await client.patch(
        f"/v1/maintenance-schedules/{s['id']}", json={"cron_expression": "0 0 1 1 *"}
    )
    edited_at = datetime.now(UTC)
    await asyncio.sleep(2.5)
    newest = await newest_fire(sessions, s["id"])
    assert newest is not None and newest <= edited_at + timedelta(seconds=2)

    await client.delete(f"/v1/maintenance-schedules/{s['id']}")
    async with sessions() as db:
        # Deleting a schedule keeps its history: batches stay, their schedule_id is cleared.
        assert await db.scalar(sa.select(sa.func.count()).select_from(Batch)) > 0
