"""Row 3 - tick cost: one leader tick (`SchedulerService.tick`: fence, claim, batch + outbox rows,
advance next_run_at, relay) with 0 and with 100 schedules due, at 100 k and 1 M schedules in
PostgreSQL, against the same tick at 1 k.

The 1 k baseline lives in a second database of the run, and its ticks alternate with the large
database's, so both see the same background load (this machine is shared). Each service runs
in-process on its own fake clock against the real database and Redis, so each tick is timed
alone."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bench.common import (
    Bench,
    PySpy,
    Result,
    at_most,
    copy_flows,
    copy_schedules,
    fmt_s,
    log,
    median,
    open_side_database,
    percentile,
)
from maintflow_core.clock import FakeClock
from maintflow_core.db.store import open_store
from maintflow_core.settings import Settings
from maintflow_scheduler.service import SchedulerService
from maintflow_workers.broker import build_broker

EXPRESSION = "0 3 * * *"
PARKED = datetime(2099, 1, 1, 3, 0, tzinfo=UTC)  # not due in any tick of the run
DAY0 = datetime(2031, 1, 1, 3, 0, tzinfo=UTC)  # day k's fire instant is DAY0 + k days
DUE = 100
REFERENCE = 1_000
TARGET = 2.0


def sizes(bench: Bench) -> list[int]:
    """The large sizes; the last one is also row 4's."""
    return bench.size([10_000], [100_000, 1_000_000])


def label(n: int) -> str:
    return f"{n // 1_000_000} M" if n >= 1_000_000 else f"{n // 1_000} k"


async def load_schedules(
    conn: asyncpg.Connection, team_id: uuid.UUID, have: int, n: int
) -> list[uuid.UUID]:
    """Add parked schedules (one flow each: a flow has at most one schedule) from `have` up to
    `n`; returns the new ids."""
    started = time.perf_counter()
    ids: list[uuid.UUID] = []
    step = 200_000
    for offset in range(have, n, step):
        count = min(step, n - offset)
        flows = await copy_flows(conn, team_id, count, offset=offset)
        ids += await copy_schedules(
            conn, team_id, flows, cron_expression=EXPRESSION, next_run_at=PARKED
        )
        if n - have > step:
            log(f"  {offset + count:,} schedules loaded ({time.perf_counter() - started:.0f} s)")
    return ids


async def grow_to(bench: Bench, n: int) -> list[uuid.UUID]:
    """Make the main database hold exactly `n` parked schedules, adding to what an earlier call
    loaded. Returns the first 1,000 schedule ids."""
    have = int(bench.shared.get("schedules", 0))
    if have > n or have == 0:
        await bench.reset()
        have = 0
    ids: list[uuid.UUID] = list(bench.shared.get("schedule_ids", []))
    conn = await bench.connect()
    try:
        new = await load_schedules(conn, bench.team_id, have, n)
    finally:
        await conn.close()
    ids += new[: max(0, 1_000 - len(ids))]
    await bench.analyze("flows", "maintenance_schedules", vacuum=True)
    bench.shared["schedules"] = n
    bench.shared["schedule_ids"] = ids
    return ids


class Ticker:
    """A leader on a fake clock over one database: each measured tick happens on its own day."""

    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        dsn: str,
        ids: Sequence[uuid.UUID],
    ) -> None:
        self.dsn = dsn
        self.ids = list(ids)
        self.clock = FakeClock(DAY0 - timedelta(days=1))
        self.broker = build_broker(settings)
        self.service = SchedulerService(
            settings,
            sessions,
            self.clock,
            self.broker,
            holder_id="bench-tick",
            store=open_store(settings),
        )
        self.day = 0

    async def schedules_only(self) -> None:
        """Row 3 measures the schedules' share of a tick: the system jobs the migration seeds
        would fall due on the fake clock's days (and be claimed in an "idle" tick), so they are
        switched off in this database."""
        conn = await asyncpg.connect(self.dsn)
        try:
            await conn.execute("UPDATE system_jobs SET enabled = false")
        finally:
            await conn.close()

    async def _timed_tick(self) -> tuple[float, Any]:
        await self.service.renew()
        started = time.perf_counter()
        result = await self.service.tick()
        return time.perf_counter() - started, result

    async def idle(self) -> float:
        self.clock.set(DAY0 + timedelta(days=self.day, hours=2))
        elapsed, result = await self._timed_tick()
        assert result.claimed == 0, result
        return elapsed

    async def due(self, count: int = DUE) -> float:
        groups = len(self.ids) // count
        ids = self.ids[(self.day % groups) * count :][:count]
        self.day += 1
        instant = DAY0 + timedelta(days=self.day)
        conn = await asyncpg.connect(self.dsn)
        try:
            await conn.execute(
                "UPDATE maintenance_schedules SET next_run_at = $1 WHERE id = ANY($2)",
                instant,
                ids,
            )
            self.clock.set(instant + timedelta(seconds=1))
            elapsed, result = await self._timed_tick()
            assert len(result.fired) == len(ids), result
            await conn.execute(
                "UPDATE maintenance_schedules SET next_run_at = $1 WHERE id = ANY($2)",
                PARKED,
                ids,
            )
        finally:
            await conn.close()
        return elapsed

    async def close(self) -> None:
        await self.service.stop()
        self.broker.close()


def summary(times: list[float]) -> dict[str, float]:
    return {"median_s": median(times), "p90_s": percentile(times, 90), "reps": len(times)}


async def alternate(bench: Bench, ref: Ticker, big: Ticker) -> dict[str, Any]:
    """Warm both up, then alternate their ticks: idle ticks, then ticks with 100 due."""
    idle_reps, due_reps = 30, bench.size(5, 9)
    for ticker in (ref, big):
        await ticker.schedules_only()
        for _ in range(3):
            await ticker.idle()
        await ticker.due()
    times: dict[str, list[float]] = {"ref_idle": [], "idle": [], "ref_due": [], "due": []}
    for _ in range(idle_reps):
        times["ref_idle"].append(await ref.idle())
        times["idle"].append(await big.idle())
    for _ in range(due_reps):
        times["ref_due"].append(await ref.due())
        times["due"].append(await big.due())
    return {key: summary(values) for key, values in times.items()}


async def run(bench: Bench) -> list[Result]:
    side = await open_side_database(bench, "ref")
    conn = await asyncpg.connect(side.dsn)
    try:
        ref_ids = await load_schedules(conn, side.team_id, 0, REFERENCE)
        await conn.execute("VACUUM ANALYZE maintenance_schedules")
    finally:
        await conn.close()
    ref = Ticker(side.settings, side.sessions, side.dsn, ref_ids)
    by_size: dict[int, dict[str, Any]] = {}
    try:
        for n in sizes(bench):
            log(f"row 3: {n:,} schedules")
            ids = await grow_to(bench, n)
            big = Ticker(bench.settings, bench.sessions, bench.dsn, ids)
            big.day = ref.day + 1_000 * len(by_size)  # never an instant an earlier ticker used
            try:
                by_size[n] = await alternate(bench, ref, big)
            finally:
                await big.close()
            log(
                f"row 3: {label(n)}: "
                + ", ".join(f"{k} {fmt_s(v['median_s'])}" for k, v in by_size[n].items())
            )
        if "3" in bench.shared.get("profile", ()):
            # The storm's claim path: ticks of one full claim pass (500 due) each.
            async with PySpy(bench, os.getpid(), "row3-tick"):
                passes = [await ref.due(bench.settings.scheduler_claim_batch) for _ in range(20)]
            log(f"row 3: profiled ticks of 500 due: median {fmt_s(median(passes))}")
    finally:
        await ref.close()
        await side.engine.dispose()
    return [result(row, key, what, by_size) for row, key, what in ROWS]


ROWS = (("3a", "idle", "0 due"), ("3b", "due", f"{DUE} due"))


def result(row: str, key: str, what: str, by_size: dict[int, dict[str, Any]]) -> Result:
    ratios = {n: v[key]["median_s"] / v[f"ref_{key}"]["median_s"] for n, v in by_size.items()}
    large = max(by_size)
    met, verdict = at_most(ratios[large], TARGET)
    ref = label(REFERENCE)
    return Result(
        row=row,
        what=f"tick cost, {what}: median tick at "
        + " / ".join(label(n) for n in by_size)
        + f" schedules vs {ref}",
        measured=" / ".join(fmt_s(by_size[n][key]["median_s"]) for n in by_size),
        baseline=" / ".join(fmt_s(by_size[n][f"ref_{key}"]["median_s"]) for n in by_size)
        + f" (same tick at {ref}, alternated)",
        ratio=ratios[large],
        target=f"tick({label(large)}) <= {TARGET:g} x tick({ref})",
        met=met,
        verdict=verdict,
        values={
            "by_size": {label(n): v for n, v in by_size.items()},
            "ratios": {label(n): r for n, r in ratios.items()},
        },
    )
