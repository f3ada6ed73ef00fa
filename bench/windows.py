"""Row 9 - maintenance windows: (a) 1,000 windows starting at the same instant, among 100 k: the
time from the instant to the last transition, as a running leader sees it (the tick interval it
may wait, plus the tick that moves them all: status, history entry and window.started event
each); target <= 2 s. (b) The tick cost with 100 windows due at 100 k windows vs the same tick at
1 k (a second database of the run, ticks alternated so both see the same load); target <= 2x.

The leader runs in-process on a fake clock against the real database; each measured tick moves
windows no earlier tick moved (a window starts once)."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bench.common import Bench, Result, _copy, at_most, fmt_s, log, median, open_side_database
from maintflow_core.clock import FakeClock
from maintflow_core.db.store import open_store
from maintflow_core.settings import Settings
from maintflow_scheduler.service import SchedulerService
from maintflow_workers.broker import build_broker

PARKED = datetime(2099, 1, 1, tzinfo=UTC)  # not due in any tick of the run
DAY0 = datetime(2031, 1, 1, 3, 0, tzinfo=UTC)
COLUMNS = (
    "id", "team_id", "title", "start_at", "end_at", "targets", "status", "next_transition_at",
    "updates_count", "created_at", "updated_at",
)  # fmt: skip
STORM = 1_000
DUE = 100
REFERENCE = 1_000
STORM_TARGET_S = 2.0
COST_TARGET = 2.0


async def load_windows(conn: asyncpg.Connection, team_id: uuid.UUID, n: int) -> list[uuid.UUID]:
    ids = [uuid.uuid4() for _ in range(n)]
    now = datetime.now(UTC)

    def make(i: int) -> tuple[Any, ...]:
        return (
            ids[i], team_id, f"window {i}", PARKED, PARKED + timedelta(hours=1), '["sw-1"]',
            "scheduled", PARKED, 0, now, now,
        )  # fmt: skip

    await _copy(conn, "maintenance_windows", COLUMNS, n, make)
    await conn.execute("VACUUM ANALYZE maintenance_windows")
    # The fake clock runs years ahead: the seeded nightly system job would be due in every tick.
    await conn.execute("UPDATE system_jobs SET enabled = false")
    return ids


class Leader:
    """A leader on a fake clock over one database; each measured tick moves fresh windows."""

    def __init__(
        self, settings: Settings, sessions: async_sessionmaker[AsyncSession], dsn: str,
        ids: list[uuid.UUID],
    ) -> None:  # fmt: skip
        self.dsn, self.unused = dsn, list(ids)
        self.clock = FakeClock(DAY0)
        self.broker = build_broker(settings)
        self.service = SchedulerService(
            settings, sessions, self.clock, self.broker, holder_id="bench-windows",
            store=open_store(settings),
        )  # fmt: skip
        self.day = 0

    async def idle(self) -> float:
        self.clock.set(DAY0 + timedelta(days=self.day, hours=12))
        await self.service.renew()
        started = time.perf_counter()
        await self.service.tick()
        return time.perf_counter() - started

    async def due(self, count: int) -> float:
        """Make `count` unused windows start at a new instant; time the tick just after it."""
        ids, self.unused = self.unused[:count], self.unused[count:]
        self.day += 1
        instant = DAY0 + timedelta(days=self.day)
        conn = await asyncpg.connect(self.dsn)
        try:
            await conn.execute(
                "UPDATE maintenance_windows SET start_at = $1, next_transition_at = $1 "
                "WHERE id = ANY($2)",
                instant,
                ids,
            )
            self.clock.set(instant + timedelta(milliseconds=1))
            await self.service.renew()
            started = time.perf_counter()
            result = await self.service.tick()
            elapsed = time.perf_counter() - started
            moved = await conn.fetchval(
                "SELECT count(*) FROM maintenance_windows WHERE id = ANY($1) "
                "AND status = 'in_progress'",
                ids,
            )
        finally:
            await conn.close()
        assert moved == count and result.claimed == count, (moved, result.claimed)
        return elapsed

    async def close(self) -> None:
        await self.service.stop()
        self.broker.close()


async def run(bench: Bench) -> list[Result]:
    size, reps = bench.size(10_000, 100_000), bench.size(3, 7)
    await bench.reset()
    side = await open_side_database(bench, "windows_ref")
    conn = await asyncpg.connect(side.dsn)
    try:
        ref_ids = await load_windows(conn, side.team_id, REFERENCE)
    finally:
        await conn.close()
    conn = await bench.connect()
    try:
        log(f"row 9: loading {size:,} windows")
        ids = await load_windows(conn, bench.team_id, size)
    finally:
        await conn.close()
    ref = Leader(side.settings, side.sessions, side.dsn, ref_ids)
    big = Leader(bench.settings, bench.sessions, bench.dsn, ids)
    times: dict[str, list[float]] = {"ref": [], "big": [], "storm": []}
    try:
        for leader in (ref, big):
            await leader.idle()
            await leader.due(DUE)
        for _ in range(reps):
            times["ref"].append(await ref.due(DUE))
            times["big"].append(await big.due(DUE))
        for _ in range(bench.size(1, 3)):
            times["storm"].append(await big.due(STORM))
    finally:
        await ref.close()
        await big.close()
        await side.engine.dispose()
    interval = bench.settings.scheduler_tick_interval_s
    storm = max(times["storm"]) + interval
    cost = median(times["big"]) / median(times["ref"])
    log(f"row 9: storm ticks {[fmt_s(t) for t in times['storm']]}, cost ratio {cost:.2f}")
    storm_met, storm_verdict = at_most(storm / STORM_TARGET_S, 1.0)
    cost_met, cost_verdict = at_most(cost, COST_TARGET)
    label = f"{size // 1_000} k"
    return [
        Result(
            row="9a",
            what=f"windows: {STORM:,} starting at one instant among {label}, instant to last "
            "transition (tick interval + the tick that moves them)",
            measured=fmt_s(storm),
            baseline=f"{fmt_s(interval)} tick interval + slowest tick {fmt_s(max(times['storm']))}",
            ratio=storm / STORM_TARGET_S,
            target=f"<= {STORM_TARGET_S:g} s",
            met=storm_met,
            verdict=storm_verdict,
            values={"storm_ticks_s": times["storm"], "tick_interval_s": interval},
        ),
        Result(
            row="9b",
            what=f"windows: tick with {DUE} due at {label} vs {REFERENCE // 1_000} k windows",
            measured=fmt_s(median(times["big"])),
            baseline=f"{fmt_s(median(times['ref']))} (same tick at 1 k, alternated)",
            ratio=cost,
            target=f"<= {COST_TARGET:g} x",
            met=cost_met,
            verdict=cost_verdict,
            values={"ticks_s": times},
        ),
    ]
