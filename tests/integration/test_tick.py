"""The leader's tick on a fake clock: due schedules fire once, next_run_at moves on in the
schedule's zone, misfires follow the policy, bounds and pauses are honoured."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from functools import partial

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from maintflow_core.clock import FakeClock
from maintflow_core.db.store import Store
from maintflow_core.due.schedules import MaintenanceSchedules
from maintflow_core.models import MaintenanceSchedule
from maintflow_core.settings import Settings
from tests.conftest import TeamCtx
from tests.integration.helpers import fired_instants, new_schedule, scalar, scheduler

Sessions = async_sessionmaker[AsyncSession]


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


async def test_a_due_schedule_fires_once_and_moves_on(
    team: TeamCtx, settings: Settings, sessions: Sessions, clock: FakeClock
) -> None:
    clock.set(at("2026-06-01T08:59:30+00:00"))
    s = await new_schedule(team, cron_expression="0 9 * * *")
    assert s["next_run_at"] == "2026-06-01T09:00:00Z"
    svc = scheduler(settings, sessions, clock)
    assert await svc.renew()
    assert (await svc.tick()).fired == []
    clock.set(at("2026-06-01T09:00:00.2+00:00"))
    assert await svc.renew()
    first = await svc.tick()
    assert len(first.fired) == 1
    assert (await svc.tick()).fired == []
    got = (await team.req("GET", f"/v1/maintenance-schedules/{s['id']}")).json()
    assert got["next_run_at"] == "2026-06-02T09:00:00Z"
    assert got["last_run_at"] == "2026-06-01T09:00:00Z"
    assert await scalar(team, "SELECT count(*) FROM outbox WHERE dispatched_at IS NOT NULL") == 1
    batch = (await team.req("GET", f"/v1/batches/{first.fired[0]}")).json()
    assert batch["trigger"] == "schedule" and batch["scheduled_for"] == "2026-06-01T09:00:00Z"


async def test_next_run_is_computed_in_the_schedules_zone(team: TeamCtx, clock: FakeClock) -> None:
    clock.set(at("2026-03-07T12:00:00+00:00"))
    s = await new_schedule(team, cron_expression="30 2 * * *", timezone="America/New_York")
    # 02:30 does not exist on 2026-03-08 in New York: it fires once, right after the gap.
    assert s["next_run_at"] == "2026-03-08T07:00:00Z"
    assert s["next_run_at_local"] == "2026-03-08T03:00:00-04:00"


async def test_two_claimers_at_once_create_each_batch_once(
    team: TeamCtx, settings: Settings, sessions: Sessions, clock: FakeClock, store: Store
) -> None:
    clock.set(at("2026-06-01T09:59:00+00:00"))
    ids = [
        (await new_schedule(team, targets=1, cron_expression="0 10 * * *"))["id"] for _ in range(30)
    ]
    now = at("2026-06-01T10:00:01+00:00")

    async def claim() -> list[uuid.UUID]:
        async with sessions() as db, db.begin():
            return (await MaintenanceSchedules(store, settings).claim(db, now, limit=7)).fired

    # Many small overlapping passes, as two leaders would run them.
    results = await asyncio.gather(*(claim() for _ in range(12)))
    created = [b for r in results for b in r]
    assert len(created) == len(set(created)) == 30
    for sid in ids:
        assert len(await fired_instants(team, sid)) == 1


async def test_a_stale_leader_replaying_an_instant_creates_nothing(
    team: TeamCtx, settings: Settings, sessions: Sessions, clock: FakeClock, store: Store
) -> None:
    clock.set(at("2026-06-01T09:59:00+00:00"))
    s = await new_schedule(team, cron_expression="0 10 * * *")
    now = at("2026-06-01T10:00:01+00:00")
    claim = partial(
        MaintenanceSchedules(store, settings).claim, limit=settings.scheduler_claim_batch
    )
    async with sessions() as db, db.begin():
        assert len((await claim(db, now)).fired) == 1
    # A leader that read the row before the commit would try the same instant again.
    async with sessions() as db, db.begin():
        await db.execute(
            sa.update(MaintenanceSchedule).values(next_run_at=at("2026-06-01T10:00:00+00:00"))
        )
        replay = await claim(db, now)
    assert replay.fired == [] and replay.duplicates == 1
    assert len(await fired_instants(team, s["id"])) == 1
    assert await scalar(team, "SELECT count(*) FROM outbox") == 1


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("skip", []),
        ("run_once", ["2026-06-01T14:00:00+00:00"]),
        (
            "run_all",
            [f"2026-06-01T{h}:00:00+00:00" for h in ("10", "11", "12", "13", "14")],
        ),
    ],
)
async def test_misfires_after_downtime_follow_the_policy(
    team: TeamCtx,
    settings: Settings,
    sessions: Sessions,
    clock: FakeClock,
    policy: str,
    expected: list[str],
) -> None:
    clock.set(at("2026-06-01T09:30:00+00:00"))
    s = await new_schedule(team, cron_expression="0 * * * *", misfire_policy=policy)
    svc = scheduler(settings, sessions, clock)
    clock.set(at("2026-06-01T14:30:00+00:00"))  # down from 09:30 to 14:30
    await svc.renew()
    await svc.tick()
    assert await fired_instants(team, s["id"]) == [at(e) for e in expected]
    got = (await team.req("GET", f"/v1/maintenance-schedules/{s['id']}")).json()
    assert got["next_run_at"] == "2026-06-01T15:00:00Z"


async def test_run_all_catches_up_at_most_the_newest_hundred(
    team: TeamCtx, settings: Settings, sessions: Sessions, clock: FakeClock
) -> None:
    clock.set(at("2026-06-01T00:00:30+00:00"))
    s = await new_schedule(team, cron_expression="* * * * *", misfire_policy="run_all", targets=1)
    clock.set(at("2026-06-03T00:00:30+00:00"))  # two days = 2,880 missed minutes
    svc = scheduler(settings, sessions, clock)
    await svc.renew()
    await svc.tick()
    fired = await fired_instants(team, s["id"])
    # The newest 100 missed ones, plus the on-time minute inside the grace.
    assert len(fired) == settings.max_catchup_fires + 1
    assert fired[-1] == at("2026-06-03T00:00:00+00:00")
    assert fired[0] == at("2026-06-03T00:00:00+00:00") - timedelta(minutes=100)


async def test_a_short_outage_within_the_grace_fires_every_instant_late(
    team: TeamCtx, settings: Settings, sessions: Sessions, clock: FakeClock
) -> None:
    settings.min_schedule_interval_s = 1
    clock.set(at("2026-06-01T10:00:00.5+00:00"))
    s = await new_schedule(team, cron_expression="* * * * * */5", misfire_policy="skip")
    clock.set(at("2026-06-01T10:00:31+00:00"))  # a 30 s leader gap, grace is 60 s
    svc = scheduler(settings, sessions, clock)
    await svc.renew()
    await svc.tick()
    fired = await fired_instants(team, s["id"])
    assert fired == [at("2026-06-01T10:00:05+00:00") + timedelta(seconds=5 * i) for i in range(6)]


async def test_start_and_end_bounds(
    team: TeamCtx, settings: Settings, sessions: Sessions, clock: FakeClock
) -> None:
    clock.set(at("2026-06-01T00:00:00+00:00"))
    s = await new_schedule(
        team,
        cron_expression="0 9 * * *",
        start_at="2026-06-03T09:00:00Z",
        end_at="2026-06-05T09:00:00Z",
    )
    assert s["next_run_at"] == "2026-06-03T09:00:00Z"
    svc = scheduler(settings, sessions, clock)
    await svc.renew()
    for day in range(1, 9):
        clock.set(at(f"2026-06-0{day}T09:00:01+00:00"))
        await svc.renew()
        await svc.tick()
    assert await fired_instants(team, s["id"]) == [
        at(f"2026-06-0{d}T09:00:00+00:00") for d in (3, 4, 5)
    ]
    got = (await team.req("GET", f"/v1/maintenance-schedules/{s['id']}")).json()
    assert got["next_run_at"] is None
    bad = await team.req(
        "PATCH", f"/v1/maintenance-schedules/{s['id']}", json={"end_at": "2026-06-01T00:00:00Z"}
    )
    assert bad.status_code == 422


async def test_paused_schedules_do_not_fire_and_resume_from_now(
    team: TeamCtx, settings: Settings, sessions: Sessions, clock: FakeClock
) -> None:
    clock.set(at("2026-06-01T08:00:00+00:00"))
    s = await new_schedule(team, cron_expression="0 * * * *", misfire_policy="run_all")
    r = await team.req(
        "POST", f"/v1/maintenance-schedules/{s['id']}/pause", json={"reason": "change freeze"}
    )
    assert r.status_code == 200
    assert r.json()["is_active"] is False and r.json()["paused_reason"] == "change freeze"
    svc = scheduler(settings, sessions, clock)
    clock.set(at("2026-06-01T12:30:00+00:00"))
    await svc.renew()
    await svc.tick()
    assert await fired_instants(team, s["id"]) == []
    r = await team.req("POST", f"/v1/maintenance-schedules/{s['id']}/resume")
    assert r.json()["is_active"] is True and r.json()["next_run_at"] == "2026-06-01T13:00:00Z"
    clock.set(at("2026-06-01T13:00:01+00:00"))
    assert await svc.renew()
    await svc.tick()
    assert await fired_instants(team, s["id"]) == [at("2026-06-01T13:00:00+00:00")]


async def test_an_edit_is_used_by_the_next_tick(
    team: TeamCtx, settings: Settings, sessions: Sessions, clock: FakeClock
) -> None:
    clock.set(at("2026-06-01T08:00:00+00:00"))
    s = await new_schedule(team, cron_expression="0 9 * * *")
    r = await team.req(
        "PATCH",
        f"/v1/maintenance-schedules/{s['id']}",
        json={"cron_expression": "15 8 * * *", "timezone": "Europe/London"},
    )
    assert r.status_code == 200
    assert r.json()["next_run_at"] == "2026-06-02T07:15:00Z"  # 08:00 UTC is 09:00 in London
    clock.set(at("2026-06-02T07:15:00.1+00:00"))
    svc = scheduler(settings, sessions, clock)
    await svc.renew()
    await svc.tick()
    assert await fired_instants(team, s["id"]) == [at("2026-06-02T07:15:00+00:00")]


async def test_a_stale_leader_is_fenced_out(
    team: TeamCtx, settings: Settings, sessions: Sessions, clock: FakeClock
) -> None:
    clock.set(at("2026-06-01T08:59:00+00:00"))
    s = await new_schedule(team, cron_expression="0 9 * * *")
    old = scheduler(settings, sessions, clock, "old")
    new = scheduler(settings, sessions, clock, "new")
    assert await old.renew()
    assert not await new.renew()
    clock.advance(settings.scheduler_lease_s + 1)  # old is paused past its lease
    assert await new.renew()
    clock.set(at("2026-06-01T09:00:01+00:00"))
    old.leadership = old.leadership and type(old.leadership)(
        old.leadership.holder, old.leadership.epoch, clock.now() + timedelta(seconds=5)
    )  # it still believes it leads
    assert (await old.tick()).fired == []
    assert not old.is_leader
    await new.renew()
    assert len((await new.tick()).fired) == 1
    assert len(await fired_instants(team, s["id"])) == 1
