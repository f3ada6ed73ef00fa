"""retention_cleanup removes exactly what is old and finished, and nothing else: rows are seeded
on both sides of every boundary (age, an open session, a session changed lately, a fan-out not
done, a schedule's newest batch, read/unread, a delivery still retrying, an outbox row not yet
relayed), for two teams, in chunks smaller than what there is to delete."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from maintflow_core.clock import FakeClock
from maintflow_core.db.store import Store
from maintflow_core.models import (
    Batch,
    Notification,
    Outbox,
    Session,
    Webhook,
    WebhookDelivery,
)
from maintflow_core.settings import Settings
from maintflow_core.usecases.retention import retention_cleanup
from tests.conftest import TeamCtx
from tests.integration.helpers import new_schedule, transactions
from tests.kit.seed import new_flow

Sessions = async_sessionmaker[AsyncSession]
DAY = timedelta(days=1)


class Seeder:
    def __init__(self, t: TeamCtx, flow_id: str, now: datetime) -> None:
        self.t, self.flow_id, self.now = t, uuid.UUID(flow_id), now
        self.seq = 0

    async def batch(
        self,
        age_days: float,
        statuses: tuple[str, ...] = ("completed", "failed", "cancelled"),
        *,
        touched_days: float | None = None,
        ready: bool = True,
        schedule_id: str | None = None,
    ) -> uuid.UUID:
        created = self.now - age_days * DAY
        touched = self.now - (touched_days if touched_days is not None else age_days) * DAY
        batch_id = uuid.uuid4()
        async with self.t.sessions() as db, db.begin():
            db.add(
                Batch(
                    id=batch_id,
                    team_id=self.t.team_id,
                    flow_id=self.flow_id,
                    schedule_id=uuid.UUID(schedule_id) if schedule_id else None,
                    trigger="schedule" if schedule_id else "manual",
                    scheduled_for=created if schedule_id else None,
                    target_count=len(statuses),
                    sessions_created=len(statuses),
                    created_at=created,
                    ready_at=created if ready else None,
                )
            )
            await db.flush()
            db.add_all(
                Session(
                    team_id=self.t.team_id,
                    batch_id=batch_id,
                    flow_id=self.flow_id,
                    target_label=f"host-{i}",
                    status=status,
                    steps=[],
                    created_at=created,
                    updated_at=touched,
                )
                for i, status in enumerate(statuses)
            )
        return batch_id

    async def notification(
        self, age_days: float, *, read: bool, batch_id: uuid.UUID | None = None
    ) -> uuid.UUID:
        note_id = uuid.uuid4()
        self.seq += 1
        async with self.t.sessions() as db, db.begin():
            db.add(
                Notification(
                    id=note_id,
                    team_id=self.t.team_id,
                    event="batch.ready",
                    title="t",
                    message="m",
                    batch_id=batch_id,
                    created_at=self.now - age_days * DAY,
                    read_at=self.now if read else None,
                    dedupe_key=f"test:{note_id}",
                    seq=self.seq,
                )
            )
        return note_id

    async def delivery(self, webhook_id: uuid.UUID, age_days: float, *, finished: bool) -> None:
        async with self.t.sessions() as db, db.begin():
            db.add(
                WebhookDelivery(
                    webhook_id=webhook_id,
                    event="batch.ready",
                    event_id=uuid.uuid4(),
                    body="{}",
                    status="succeeded" if finished else "pending",
                    attempts=1,
                    next_attempt_at=None if finished else self.now,
                    created_at=self.now - age_days * DAY,
                )
            )

    async def webhook(self) -> uuid.UUID:
        webhook_id = uuid.uuid4()
        async with self.t.sessions() as db, db.begin():
            db.add(
                Webhook(
                    id=webhook_id,
                    team_id=self.t.team_id,
                    url="https://hooks.example.com/x",
                    events=["batch.ready"],
                    secret="whsec_dGVzdA==",
                    created_at=self.now - 200 * DAY,
                )
            )
        return webhook_id


async def existing(sessions: Sessions, model: Any, ids: list[uuid.UUID]) -> set[uuid.UUID]:
    async with sessions() as db:
        return set((await db.scalars(sa.select(model.id).where(model.id.in_(ids)))).all())


async def test_retention_removes_exactly_what_is_old_and_finished(
    team: TeamCtx,
    other_team: TeamCtx,
    settings: Settings,
    sessions: Sessions,
    clock: FakeClock,
    store: Store,
) -> None:
    now = clock.now()
    a = Seeder(team, (await new_flow(team))["id"], now)
    b = Seeder(other_team, (await new_flow(other_team))["id"], now)
    schedule = await new_schedule(team, cron_expression="0 9 * * *")
    gone = [
        old := await a.batch(100),
        await a.batch(91, ("completed",)),
        await a.batch(120, schedule_id=schedule["id"]),
        await b.batch(300, ("completed", "completed")),
    ]
    kept = [
        await a.batch(100, ("completed", "pending")),
        await a.batch(100, ("completed", "in_progress")),
        await a.batch(89),
        await a.batch(100, touched_days=10),
        await a.batch(100, ready=False),
        await a.batch(110, schedule_id=schedule["id"]),  # the schedule's newest
    ]
    notes_gone = [
        await a.notification(100, read=True),
        await a.notification(1, read=True, batch_id=old),
        await b.notification(95, read=True),
    ]
    notes_kept = [
        unread_of_old := await a.notification(100, read=False, batch_id=old),
        await a.notification(100, read=False),
        await a.notification(80, read=True),
    ]
    hook = await a.webhook()
    await a.delivery(hook, 100, finished=True)
    await a.delivery(hook, 100, finished=False)
    await a.delivery(hook, 10, finished=True)
    async with sessions() as db, db.begin():
        for age, relayed in ((100, True), (100, False), (10, True)):
            db.add(
                Outbox(
                    kind="fire_schedule",
                    payload={"batch_id": str(uuid.uuid4())},
                    created_at=now - age * DAY,
                    dispatched_at=now - age * DAY if relayed else None,
                    attempts=int(relayed),
                )
            )
    settings.retention_chunk_rows = 2
    clock.advance(1)
    result = await retention_cleanup(transactions(sessions), store, clock, settings)

    assert await existing(sessions, Batch, gone) == set()
    assert await existing(sessions, Batch, kept) == set(kept)
    assert await existing(sessions, Notification, notes_gone) == set()
    assert await existing(sessions, Notification, notes_kept) == set(notes_kept)
    async with sessions() as db:
        assert (
            await db.scalar(
                sa.select(Notification.batch_id).where(Notification.id == unread_of_old)
            )
            is None
        )
        left = await db.scalar(sa.select(sa.func.count()).select_from(Session))
        ages = (await db.execute(sa.select(WebhookDelivery.created_at))).scalars().all()
        outbox = (await db.execute(sa.select(Outbox.created_at, Outbox.dispatched_at))).all()
    assert left == 2 + 2 + 3 + 3 + 3 + 3
    assert sorted(now - x for x in ages) == [10 * DAY, 100 * DAY]
    assert sorted((now - c, d is None) for c, d in outbox) == [(10 * DAY, False), (100 * DAY, True)]
    assert result["teams"] == 2 and result["retention_days"] == 90
    assert result["batches"] == {"deleted": 4, "kept": 5}
    assert result["sessions"] == {"deleted": 3 + 1 + 3 + 2, "kept": 2 + 2 + 3 + 3 + 3}
    assert result["notifications"] == {"deleted": 3, "kept": 2}
    assert result["webhook_deliveries"] == {"deleted": 1, "kept": 1}
    assert result["outbox"] == {"deleted": 1, "kept": 1}
    again = await retention_cleanup(transactions(sessions), store, clock, settings)
    assert all(again[kind]["deleted"] == 0 for kind in ("batches", "sessions", "notifications"))
