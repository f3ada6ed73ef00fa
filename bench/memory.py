"""Row 4 — scheduler memory: VmRSS of a real `maintflow scheduler` (the leader) after it has
ticked with 1 M schedules in the database and fired some, against VmRSS of a Python process
holding as many cron jobs in APScheduler 3's memory job store (bench/aps_baseline.py)."""

from __future__ import annotations

import asyncio
import sys

from bench.common import Bench, Proc, Result, at_most, log, rss_kb, wait_for
from bench.storm import start_scheduler
from bench.tick import EXPRESSION, PARKED, grow_to, label, sizes

TARGET = 0.25
FIRED = 100


async def maintflow_rss(bench: Bench, n: int) -> dict[str, int]:
    ids = (await grow_to(bench, n))[:FIRED]
    conn = await bench.connect()
    try:
        await conn.execute(
            "TRUNCATE sessions, notifications, outbox, batches, scheduler_leases CASCADE"
        )
        scheduler = await start_scheduler(bench)
        try:
            # Due now on the real clock: the leader must tick, claim, write and relay.
            await conn.execute(
                "UPDATE maintenance_schedules SET cron_expression = '* * * * *', "
                "next_run_at = date_trunc('minute', now()) WHERE id = ANY($1)",
                ids,
            )

            async def fired() -> bool:
                scheduler.check_alive()
                n_batches = await conn.fetchval(
                    "SELECT count(*) FROM batches WHERE schedule_id = ANY($1)", ids
                )
                return bool(n_batches >= FIRED)

            await wait_for(fired, within=60, interval=0.2, what="the leader's fires")
            await asyncio.sleep(3)  # a few more ticks and relays
            rss = {"rss_kb": rss_kb(scheduler.pid), "hwm_kb": rss_kb(scheduler.pid, "VmHWM")}
        finally:
            bench.stop(scheduler)
        await conn.execute(
            "UPDATE maintenance_schedules SET cron_expression = $1, next_run_at = $2 "
            "WHERE id = ANY($3)",
            EXPRESSION,
            PARKED,
            ids,
        )
    finally:
        await conn.close()
    return rss


def start_baseline(bench: Bench) -> Proc:
    """Start building the APScheduler baseline now (it takes minutes at 1 M jobs); row 4
    collects it. Its RSS does not depend on what else runs meanwhile."""
    n = sizes(bench)[-1]
    proc = bench.spawn(
        "apscheduler", [sys.executable, "-m", "bench.aps_baseline", str(n), EXPRESSION]
    )
    bench.kept.append(proc)
    bench.shared["apscheduler"] = proc
    return proc


async def apscheduler_rss(bench: Bench) -> dict[str, int]:
    proc = bench.shared.pop("apscheduler", None) or start_baseline(bench)
    if proc in bench.kept:
        bench.kept.remove(proc)
    try:
        await proc.wait_log("ready", within=bench.size(120.0, 900.0))
        return {"rss_kb": rss_kb(proc.pid), "hwm_kb": rss_kb(proc.pid, "VmHWM")}
    finally:
        bench.stop(proc)


async def run(bench: Bench) -> list[Result]:
    n = sizes(bench)[-1]
    log(f"row 4: maintflow scheduler with {n:,} schedules")
    ours = await maintflow_rss(bench, n)
    log(f"row 4: APScheduler with {n:,} jobs")
    theirs = await apscheduler_rss(bench)
    ratio = ours["rss_kb"] / theirs["rss_kb"]
    met, verdict = at_most(ratio, TARGET)
    return [
        Result(
            row="4",
            what=f"scheduler memory: leader RSS at {label(n)} schedules",
            measured=f"{ours['rss_kb'] / 1024:,.0f} MiB",
            baseline=f"{theirs['rss_kb'] / 1024:,.0f} MiB (APScheduler, {label(n)} jobs)",
            ratio=ratio,
            target=f"≤ {TARGET:g}",
            met=met,
            verdict=verdict,
            values={"maintflow": ours, "apscheduler": theirs, "schedules": n},
        )
    ]
