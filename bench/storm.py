"""Row 2 — the top-of-the-hour storm: 10,000 schedules of 10 targets each, all due at the same
instant, fired on the real clock by a real `maintflow scheduler` (leader) and fanned out by one
`maintflow worker --processes 1 --threads 8`. Reports the fire lag (batch.created_at -
scheduled_for, p50 and p99 over every fire) and the time from the instant until all sessions
exist, against 1.5 x what row 1's fan-out rate predicts."""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from bench.common import (
    Bench,
    Proc,
    Result,
    at_most,
    copy_flows,
    copy_schedules,
    copy_target_lists,
    fmt_rate,
    fmt_s,
    log,
    maintflow_command,
    median,
    percentile,
    wait_for,
)
from bench.fanout import fanout_rate, start_worker
from maintflow_core import cron

TARGETS_EACH = 10
LAG_P99_LIMIT_S = 2.0
ALL_SESSIONS_FACTOR = 1.5
PARKED = datetime(2099, 1, 1, 3, 0, tzinfo=UTC)


async def start_scheduler(bench: Bench) -> Proc:
    """`maintflow scheduler`; ready once it holds the lease."""
    proc = bench.spawn("scheduler", [*maintflow_command(), "scheduler"])
    conn = await bench.connect()
    try:

        async def leader() -> bool:
            proc.check_alive()
            holder = await conn.fetchval(
                "SELECT holder FROM scheduler_leases WHERE expires_at > now()"
            )
            return holder is not None and f":{proc.pid}:" in holder

        await wait_for(leader, within=60, interval=0.1, what="scheduler leadership")
    finally:
        await conn.close()
    return proc


def storm_instant(quick: bool) -> tuple[datetime, str]:
    """The storm's instant and a daily cron for it: the next minute boundary at least 15 s away
    (quick mode: a whole second 4-5 s away, with croniter's trailing seconds field)."""
    now = datetime.now(UTC)
    if quick:
        instant = (now + timedelta(seconds=5)).replace(microsecond=0)
        expression = f"{instant.minute} {instant.hour} * * * {instant.second}"
    else:
        instant = (now + timedelta(seconds=75)).replace(second=0, microsecond=0)
        expression = f"{instant.minute} {instant.hour} * * *"
    spec = cron.parse(expression, "UTC")
    assert cron.next_fire(spec, instant - timedelta(seconds=1)) == instant, expression
    return instant, expression


async def load(bench: Bench, schedules: int) -> None:
    conn = await bench.connect()
    try:
        flows = await copy_flows(conn, bench.team_id, schedules)
        lists = await copy_target_lists(conn, bench.team_id, schedules, TARGETS_EACH)
        await copy_schedules(
            conn,
            bench.team_id,
            flows,
            target_list_ids=lists,
            cron_expression="0 3 * * *",
            next_run_at=PARKED,
        )
    finally:
        await conn.close()
    await bench.analyze("flows", "target_lists", "maintenance_schedules", vacuum=True)


async def ready_count(bench: Bench) -> int | None:
    """Batches ready so far; None while the database is unreachable (the shared server is
    sometimes restarted: the scheduler and worker reconnect and carry on, and so do we)."""
    try:
        conn = await bench.connect()
    except (OSError, asyncpg.PostgresError):
        return None
    try:
        return int(await conn.fetchval("SELECT count(*) FROM batches WHERE ready_at IS NOT NULL"))
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return None
    finally:
        with contextlib.suppress(Exception):
            await conn.close()


async def observe(bench: Bench, schedules: int, instant: datetime, within: float) -> dict[str, Any]:
    await asyncio.sleep(max(0.0, instant.timestamp() - time.time()))
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        done = await ready_count(bench)
        if done is not None and done >= schedules:
            break
        await asyncio.sleep(0.5)
    conn = await bench.connect()
    try:
        lags = [
            float(r[0])
            for r in await conn.fetch(
                "SELECT extract(epoch FROM created_at - scheduled_for) FROM batches "
                "WHERE trigger = 'schedule'"
            )
        ]
        stats = await conn.fetchrow(
            "SELECT max(created_at) AS last_batch, max(ready_at) AS last_ready, "
            "count(*) FILTER (WHERE ready_at IS NOT NULL) AS ready FROM batches"
        )
        sessions = await conn.fetchval("SELECT count(*) FROM sessions")
        ready_lags = [
            float(r[0])
            for r in await conn.fetch(
                "SELECT extract(epoch FROM ready_at - scheduled_for) FROM batches "
                "WHERE ready_at IS NOT NULL"
            )
        ]
    finally:
        await conn.close()
    complete = stats["ready"] >= schedules
    return {
        "schedules": schedules,
        "batches": len(lags),
        "sessions": sessions,
        "complete": complete,
        "lag_p50_s": median(lags) if lags else None,
        "lag_p99_s": percentile(lags, 99) if lags else None,
        "lag_max_s": max(lags) if lags else None,
        "all_batches_s": (stats["last_batch"] - instant).total_seconds() if lags else None,
        "all_sessions_s": ((stats["last_ready"] - instant).total_seconds() if complete else None),
        "sessions_by_timeout": sessions,
        "ready_p50_s": median(ready_lags) if ready_lags else None,
        "ready_p99_s": percentile(ready_lags, 99) if ready_lags else None,
    }


async def run(bench: Bench) -> list[Result]:
    rate = await fanout_rate(bench)
    await bench.reset()
    schedules = bench.size(500, 10_000)
    total = schedules * TARGETS_EACH
    predicted = total / rate
    limit = ALL_SESSIONS_FACTOR * predicted
    log(f"row 2: loading {schedules:,} schedules x {TARGETS_EACH} targets")
    await load(bench, schedules)
    worker = scheduler = None
    try:
        worker = await start_worker(bench)
        scheduler = await start_scheduler(bench)
        instant, expression = storm_instant(bench.quick)
        conn = await bench.connect()
        try:
            await conn.execute(
                "UPDATE maintenance_schedules SET cron_expression = $1, next_run_at = $2",
                expression,
                instant,
            )
        finally:
            await conn.close()
        log(f"row 2: {schedules:,} schedules due at {instant:%H:%M:%S} ({expression!r})")
        timeout = min(bench.size(90.0, 600.0), max(60.0, 3 * limit))
        seen = await observe(bench, schedules, instant, timeout)
    finally:
        for proc in (scheduler, worker):
            if proc is not None:
                bench.stop(proc)
    log(f"row 2: {seen}")
    seen["predicted_s"] = predicted
    seen["fanout_rate"] = rate
    p99 = seen["lag_p99_s"]
    lag_met, lag_verdict = at_most(p99, LAG_P99_LIMIT_S) if p99 is not None else (False, "no fire")
    results = [
        Result(
            row="2a",
            what=f"storm: fire lag (instant → batch row) over {schedules:,} simultaneous fires",
            measured=f"p50 {fmt_s(seen['lag_p50_s'])}, p99 {fmt_s(p99)}",
            baseline="—",
            ratio=None,
            target=f"p99 ≤ {LAG_P99_LIMIT_S:g} s",
            met=lag_met,
            verdict=lag_verdict,
            values=seen,
        )
    ]
    if seen["all_sessions_s"] is not None:
        ratio = seen["all_sessions_s"] / predicted
        met, verdict = at_most(ratio, ALL_SESSIONS_FACTOR)
        measured = fmt_s(seen["all_sessions_s"])
    else:
        # Not finished in time: say how much of the work was done by then.
        ratio = None
        met, verdict = (
            False,
            f"missed: {seen['sessions']:,}/{total:,} sessions after {timeout:.0f} s",
        )
        measured = f"> {timeout:.0f} s"
    results.append(
        Result(
            row="2b",
            what=f"storm: time until all {total:,} sessions exist",
            measured=measured,
            baseline=f"{fmt_s(predicted)} = {total:,} / {fmt_rate(rate)} (row 1)",
            ratio=ratio,
            target=f"≤ {ALL_SESSIONS_FACTOR:g}",
            met=met,
            verdict=verdict,
            values=seen,
        )
    )
    return results
