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
from maintflow_core.db.store import open_store
from maintflow_core.models import Batch
from maintflow_core.settings import Settings
from maintflow_core.usecases.teams import create_team
from maintflow_scheduler.service import SchedulerService
from maintflow_workers.broker import build_broker
from tests.kit.poll import poll_until
from tests.kit.seed import STEPS

Sessions = async_sessionmaker[AsyncSession]


@pytest.fixture
async def live(
    settings: Settings, sessions: Sessions, engine: AsyncEngine
) -> AsyncIterator[tuple[httpx.AsyncClient, SchedulerService]]:
    settings = settings.model_copy(update={"min_schedule_interval_s": 1})
    clock = SystemClock()
    app = create_app(settings, clock)
    svc = SchedulerService(
        settings,
        sessions,
        clock,
        build_broker(settings, stub=True),
        "live",
        store=open_store(settings),
    )
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
    """Seconds until the schedule fired an instant later than `after` (at most 5)."""
    start = time.monotonic()

    async def fired() -> bool:
        newest = await newest_fire(sessions, sid)
        return newest is not None and newest > after

    await poll_until(fired, 5, f"a fire of {sid} after {after}", every=0.05)
    return time.monotonic() - start


async def batches_by_schedule(sessions: Sessions) -> dict[uuid.UUID, uuid.UUID | None]:
    async with sessions() as db:
        rows = (await db.execute(sa.select(Batch.id, Batch.schedule_id))).all()
    return {batch_id: schedule_id for batch_id, schedule_id in rows}


async def test_api_changes_reach_the_running_leader_within_two_seconds(
    live: tuple[httpx.AsyncClient, SchedulerService], sessions: Sessions
) -> None:
    client, _svc = live
    flow = await client.post(
        "/v1/flows", json={"name": "live", "flow_type": "maintenance", "steps": STEPS}
    )
    assert flow.status_code == 201, flow.text
    created_at = datetime.now(UTC)
    created = await client.post(
        "/v1/maintenance-schedules",
        json={"flow_id": flow.json()["id"], "cron_expression": "* * * * * *"},
    )
    assert created.status_code == 201, created.text
    sid = created.json()["id"]
    assert await wait_for_fire_after(sessions, sid, created_at) < 2.0

    r = await client.post(f"/v1/maintenance-schedules/{sid}/pause")
    paused_at = datetime.now(UTC)
    assert r.status_code == 200, r.text
    await asyncio.sleep(2.5)  # nothing to poll for: the point is that nothing happens
    newest = await newest_fire(sessions, sid)
    assert newest is not None and newest <= paused_at + timedelta(seconds=2)

    resumed_at = datetime.now(UTC)
    r = await client.post(f"/v1/maintenance-schedules/{sid}/resume")
    assert r.status_code == 200, r.text
    assert await wait_for_fire_after(sessions, sid, resumed_at) < 2.0

    r = await client.patch(
        f"/v1/maintenance-schedules/{sid}", json={"cron_expression": "0 0 1 1 *"}
    )
    edited_at = datetime.now(UTC)
    assert r.status_code == 200, r.text
    await asyncio.sleep(2.5)
    newest = await newest_fire(sessions, sid)
    assert newest is not None and newest <= edited_at + timedelta(seconds=2)

    # Firing every second again, then deleted: the fires stop, its batches stay.
    r = await client.patch(
        f"/v1/maintenance-schedules/{sid}", json={"cron_expression": "* * * * * *"}
    )
    assert r.status_code == 200, r.text
    assert await wait_for_fire_after(sessions, sid, datetime.now(UTC)) < 2.0
    fired = {bid for bid, of in (await batches_by_schedule(sessions)).items() if of is not None}
    r = await client.delete(f"/v1/maintenance-schedules/{sid}")
    deleted_at = datetime.now(UTC)
    assert r.status_code == 204, r.text
    assert (await client.get(f"/v1/maintenance-schedules/{sid}")).status_code == 404
    await asyncio.sleep(2.5)
    after = await batches_by_schedule(sessions)
    async with sessions() as db:
        newest_created = await db.scalar(sa.select(sa.func.max(Batch.created_at)))
    assert newest_created is not None and newest_created <= deleted_at + timedelta(seconds=2)
    # Deleting a schedule keeps its history: every batch it fired stays, unlinked from it.
    assert fired and fired <= set(after), (fired, after)
    assert all(after[bid] is None for bid in fired), after
