"""What the leader records in its metrics, read from prometheus-client's registry around real
ticks (both stores): fires by outcome, missed instants, lags, claimed rows, leadership, and the
figures only the leader exports (queues, outbox)."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from prometheus_client import REGISTRY
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from maintflow_core.clock import FakeClock
from maintflow_core.models import MaintenanceSchedule
from maintflow_core.queues import QUEUES
from maintflow_core.settings import Settings
from tests.conftest import TeamCtx
from tests.integration.helpers import new_schedule, scheduler

Sessions = async_sessionmaker[AsyncSession]
SOURCE = {"source": "schedules"}


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def fires(outcome: str) -> float:
    return value("maintflow_scheduler_fires_total", outcome=outcome, **SOURCE)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


async def test_a_tick_counts_fired_missed_and_duplicate_instants_and_their_lag(
    team: TeamCtx, settings: Settings, sessions: Sessions, clock: FakeClock
) -> None:
    clock.set(at("2026-06-01T09:30:00+00:00"))
    await new_schedule(team, cron_expression="0 * * * *", misfire_policy="run_once")
    svc = scheduler(settings, sessions, clock)
    before = {o: fires(o) for o in ("fired", "missed", "duplicate")}
    lags = value("maintflow_scheduler_fire_lag_seconds_count", **SOURCE)
    claimed = value("maintflow_scheduler_claimed_total", **SOURCE)
    clock.set(at("2026-06-01T14:30:00+00:00"))  # down from 09:30 to 14:30: run_once fires 14:00
    assert await svc.renew()
    assert value("maintflow_scheduler_is_leader") == 1
    assert svc.leadership is not None
    assert value("maintflow_scheduler_lease_epoch") == svc.leadership.epoch
    await svc.tick()
    assert fires("fired") - before["fired"] == 1
    assert fires("missed") - before["missed"] == 1
    assert value("maintflow_scheduler_fire_lag_seconds_count", **SOURCE) - lags == 1
    assert value("maintflow_scheduler_fire_lag_seconds_sum", **SOURCE) >= 30 * 60
    assert value("maintflow_scheduler_claimed_total", **SOURCE) - claimed == 1
    # A leader that read the row before the commit replays the instant: a duplicate.
    async with sessions() as db, db.begin():
        await db.execute(
            sa.update(MaintenanceSchedule).values(next_run_at=at("2026-06-01T14:00:00+00:00"))
        )
    await svc.tick()
    assert fires("duplicate") - before["duplicate"] == 1
    assert fires("fired") - before["fired"] == 1
    await svc.stop()


async def test_the_leader_exports_queues_and_outbox_and_a_standby_does_not(
    team: TeamCtx, settings: Settings, sessions: Sessions, clock: FakeClock
) -> None:
    clock.set(at("2026-06-01T09:30:00+00:00"))
    leader = scheduler(settings, sessions, clock, "leader")
    standby = scheduler(settings, sessions, clock, "standby")
    assert await leader.renew() and not await standby.renew()
    await leader.observe()
    for queue in QUEUES:
        assert REGISTRY.get_sample_value("maintflow_queue_messages", {"queue": queue}) == 0
    assert value("maintflow_outbox_pending_rows") == 0
    # In one process both write the same gauges: the standby's pass clears the queue series.
    await standby.observe()
    assert value("maintflow_scheduler_is_leader") == 0
    assert REGISTRY.get_sample_value("maintflow_queue_messages", {"queue": QUEUES[0]}) is None
    await leader.stop()
    await standby.stop()
