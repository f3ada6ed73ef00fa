"""The leader's outbox relay: a row written outside any claim (a run-now) is published by the
next tick, even while a long claim is under way; a storm's own batches are published once its
claim passes are done, not between them."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import NullPool

from maintflow_core.clock import FakeClock
from maintflow_core.models import Batch
from maintflow_core.queues import FANOUT_QUEUE
from maintflow_core.settings import Settings
from maintflow_scheduler.service import SchedulerService
from tests.conftest import TeamCtx
from tests.integration.helpers import new_schedule, scalar, scheduler

Sessions = async_sessionmaker[AsyncSession]
T9 = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


def fanout_messages(svc: SchedulerService) -> list[str]:
    queue = svc.broker.queues[FANOUT_QUEUE]  # type: ignore[attr-defined]
    return [str(m) for m in list(queue.queue)]


@pytest.fixture
async def reader(settings: Settings) -> AsyncIterator[AsyncEngine]:
    """For reads made while the relay holds its transaction open. On SQLite maintflow's own
    connections begin every transaction by taking the write lock, which the relay holds; a plain
    engine reads what is committed without it (on PostgreSQL it makes no difference)."""
    engine = create_async_engine(settings.database_url, poolclass=NullPool)
    yield engine
    await engine.dispose()


def record_publishes(svc: SchedulerService, reader: AsyncEngine) -> list[tuple[int, list[str]]]:
    """Wrap the relay's publisher: for each publish, how many scheduled batches existed then,
    and the kinds of batch (trigger) it published."""
    calls: list[tuple[int, list[str]]] = []
    publish = svc._publish

    async def recording(rows: Any) -> None:
        async with reader.connect() as conn:
            fired = await conn.scalar(sa.select(sa.func.count()).where(Batch.trigger == "schedule"))
            triggers = [
                await conn.scalar(
                    sa.select(Batch.trigger).where(Batch.id == uuid.UUID(payload["batch_id"]))
                )
                for _id, _kind, payload in rows
            ]
        calls.append((int(fired or 0), [str(t) for t in triggers]))
        await publish(rows)

    svc._publish = recording  # type: ignore[method-assign]
    return calls


async def storm_due(team: TeamCtx, clock: FakeClock, schedules: int) -> str:
    """`schedules` schedules due at T9, and one more whose run-now is returned (its batch id)."""
    clock.set(T9 - timedelta(minutes=1))
    for _ in range(schedules):
        await new_schedule(team, cron_expression="0 9 * * *", targets=1)
    other = await new_schedule(team, cron_expression="0 3 * * *", targets=1)
    r = await team.req("POST", f"/v1/maintenance-schedules/{other['id']}/run-now")
    assert r.status_code == 202, r.text
    clock.set(T9 + timedelta(milliseconds=100))
    return str(r.json()["batch_id"])


async def test_a_tick_that_fires_nothing_still_publishes_a_run_now(
    team: TeamCtx, settings: Settings, sessions: Sessions, clock: FakeClock
) -> None:
    clock.set(T9)
    s = await new_schedule(team, cron_expression="0 3 * * *", targets=2)
    r = await team.req("POST", f"/v1/maintenance-schedules/{s['id']}/run-now")
    svc = scheduler(settings, sessions, clock)
    await svc.renew()

    fired = await svc.tick()

    assert fired.fired == []
    assert len(fanout_messages(svc)) == 1
    assert r.json()["batch_id"] in fanout_messages(svc)[0]
    assert await scalar(team, "SELECT count(*) FROM outbox WHERE dispatched_at IS NULL") == 0


async def test_a_run_now_is_published_between_the_passes_of_a_long_claim(
    team: TeamCtx, settings: Settings, sessions: Sessions, clock: FakeClock, reader: AsyncEngine
) -> None:
    settings = settings.model_copy(update={"scheduler_claim_batch": 2, "relay_interval_s": 0})
    run_now = await storm_due(team, clock, schedules=7)
    svc = scheduler(settings, sessions, clock)
    await svc.renew()
    calls = record_publishes(svc, reader)

    fired = await svc.tick()

    assert len(fired.fired) == 7
    first_fired, first_triggers = calls[0]
    assert "run_now" in first_triggers
    assert first_fired < 7, "the run-now waited for the whole claim"
    published = [t for _n, triggers in calls for t in triggers]
    assert sorted(published) == ["run_now"] + ["schedule"] * 7
    assert any(run_now in m for m in fanout_messages(svc))


async def test_a_storm_publishes_its_own_batches_after_its_claim_passes(
    team: TeamCtx, settings: Settings, sessions: Sessions, clock: FakeClock, reader: AsyncEngine
) -> None:
    settings = settings.model_copy(update={"scheduler_claim_batch": 2, "relay_interval_s": 0})
    clock.set(T9 - timedelta(minutes=1))
    for _ in range(7):
        await new_schedule(team, cron_expression="0 9 * * *", targets=1)
    clock.set(T9 + timedelta(milliseconds=100))
    svc = scheduler(settings, sessions, clock)
    await svc.renew()
    calls = record_publishes(svc, reader)

    await svc.tick()

    assert calls == [(7, ["schedule"] * 7)]
    assert len(fanout_messages(svc)) == 7
