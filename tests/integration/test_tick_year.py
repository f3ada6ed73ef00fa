"""A year of fires through the real tick on a fake clock, in four zones with different DST rules,
checked instant by instant against the brute-force reference in tests/unit/cron_reference.py."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from maintflow_core.clock import FakeClock
from maintflow_core.models import MaintenanceSchedule
from maintflow_core.settings import Settings
from tests.conftest import TeamCtx
from tests.integration.helpers import fired_instants, new_schedule, scheduler
from tests.unit.cron_reference import compile_cron, reference_fires, walk

ZONES = ["America/New_York", "Europe/London", "Australia/Lord_Howe", "Asia/Kathmandu"]
EXPRESSIONS = ["30 2 * * *", "30 1 * * 0", "15 */3 * * *"]
START = datetime(2026, 1, 1, tzinfo=UTC)
END = datetime(2027, 1, 1, tzinfo=UTC)


async def test_a_year_of_ticks_matches_the_reference_in_four_zones(
    team: TeamCtx,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    clock: FakeClock,
) -> None:
    clock.set(START)
    created: dict[tuple[str, str], str] = {}
    for zone in ZONES:
        for expression in EXPRESSIONS:
            s = await new_schedule(team, targets=None, cron_expression=expression, timezone=zone)
            created[(zone, expression)] = s["id"]
    # The clock jumps a day at a time; a two-day grace makes every instant on time, so this run
    # checks the tick's own enumeration and next_run_at chaining, not the misfire policy.
    settings.misfire_grace_s = 2 * 86_400
    svc = scheduler(settings, sessions, clock)
    day = START
    while day < END:
        day += timedelta(days=1)
        clock.set(min(day, END))
        assert await svc.renew()
        await svc.tick()
    for zone in ZONES:
        crons = [compile_cron(e) for e in EXPRESSIONS]
        ticks = walk(ZoneInfo(zone), START, END, timedelta(minutes=15))
        expected = [[i for i in fires if i > START] for fires in reference_fires(crons, ticks)]
        for expression, want in zip(EXPRESSIONS, expected, strict=True):
            got = await fired_instants(team, created[(zone, expression)])
            assert got == want, (zone, expression, sorted(set(got) ^ set(want))[:6])


async def test_every_instant_of_a_dst_month_fires_on_time_through_the_tick(
    team: TeamCtx,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    clock: FakeClock,
) -> None:
    """The clock steps to each next_run_at in turn, as a live leader would reach it."""
    start = datetime(2026, 10, 20, tzinfo=UTC)
    end = datetime(2026, 11, 10, tzinfo=UTC)
    clock.set(start)
    s = await new_schedule(
        team, targets=None, cron_expression="30 1 * * *", timezone="America/New_York"
    )
    h = await new_schedule(
        team, targets=None, cron_expression="*/30 1 * * *", timezone="America/New_York"
    )
    svc = scheduler(settings, sessions, clock)
    while True:
        async with sessions() as db:
            nxt = await db.scalar(sa.select(sa.func.min(MaintenanceSchedule.next_run_at)))
        if nxt is None or nxt > end:
            break
        clock.set(nxt + timedelta(milliseconds=300))
        assert await svc.renew()
        result = await svc.tick()
        assert result.fired and max(result.lag_seconds) < 1
    daily = await fired_instants(team, s["id"])
    # 2026-11-01: 01:30 happens twice in New York; a fixed time of day fires once, at the first.
    assert datetime(2026, 11, 1, 5, 30, tzinfo=UTC) in daily
    assert datetime(2026, 11, 1, 6, 30, tzinfo=UTC) not in daily
    assert len(daily) == 21
    half_hourly = await fired_instants(team, h["id"])
    assert len(half_hourly) == 21 * 2  # the hour field is fixed (1), so once per wall time
    _ = uuid
