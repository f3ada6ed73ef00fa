"""Row 1 — fan-out: sessions/s of one fire of 10,000 targets through the real pipeline (outbox
relay → `fire_schedule` → one `create_session` message per target) in a separate
`maintflow worker --processes 1 --threads 8`, against an empty actor's messages/s in a separate
Dramatiq worker with the same broker settings and middleware (bench/empty_actor.py)."""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import dramatiq
import redis

from bench.common import (
    Bench,
    Proc,
    PySpy,
    Result,
    WaitSampler,
    at_least,
    copy_flows,
    copy_schedules,
    copy_target_lists,
    fmt_rate,
    log,
    maintflow_command,
    wait_for,
)
from maintflow_broker.enqueue import enqueue_many
from maintflow_core.clock import SystemClock
from maintflow_core.db.store import open_store
from maintflow_core.due.schedules import MaintenanceSchedules
from maintflow_scheduler.service import SchedulerService
from maintflow_workers.broker import build_broker

# bench/empty_actor.py declares these (the harness never imports that module).
EMPTY_QUEUE = "bench_empty"
EMPTY_ACTOR = "bench_empty"
THREADS = 8
TARGET = 0.5
# A past fire instant of DAILY: the claim is made "just after" it, whatever the real date.
DAILY = "0 3 * * *"
INSTANT = datetime(2026, 1, 1, 3, 0, tzinfo=UTC)


async def start_worker(bench: Bench, name: str = "worker", **settings: str) -> Proc:
    """`maintflow worker --processes 1 --threads 8` on this run's database and namespace
    (`settings`: MAINTFLOW_* variables to add)."""
    argv = [*maintflow_command(), "worker", "--processes", "1", "--threads", str(THREADS)]
    proc = bench.spawn(name, argv, bench.env(**settings))
    await proc.wait_log("Worker process is ready for action", 90)
    return proc


async def start_empty_worker(bench: Bench) -> Proc:
    """The same Dramatiq CLI invocation `maintflow worker` makes, on bench/empty_actor.py."""
    argv = [
        sys.executable,
        "-m",
        "dramatiq",
        "bench.empty_actor",
        "--processes",
        "1",
        "--threads",
        str(THREADS),
        "--queues",
        EMPTY_QUEUE,
        "--worker-shutdown-timeout",
        str(int(bench.settings.actor_time_limit_s * 1000)),
    ]
    proc = bench.spawn("empty-worker", argv)
    await proc.wait_log("Worker process is ready for action", 90)
    return proc


def relay_service(bench: Bench, broker: dramatiq.Broker) -> SchedulerService:
    """The scheduler leader's relay, run by hand in this process (`renew`, then `relay`)."""
    return SchedulerService(
        bench.settings,
        bench.sessions,
        SystemClock(),
        broker,
        "bench-relay",
        store=open_store(bench.settings),
    )


async def new_fire(bench: Bench, targets: int, offset: int) -> uuid.UUID:
    """A schedule of `targets` targets, claimed by the real claim transaction: returns the new
    batch, whose outbox row is waiting for the relay."""
    conn = await bench.connect()
    try:
        (flow_id,) = await copy_flows(conn, bench.team_id, 1, offset=offset)
        (list_id,) = await copy_target_lists(conn, bench.team_id, 1, targets, offset=offset)
        await copy_schedules(
            conn,
            bench.team_id,
            [flow_id],
            target_list_ids=[list_id],
            cron_expression=DAILY,
            next_run_at=INSTANT,
        )
    finally:
        await conn.close()
    async with bench.sessions() as db, db.begin():
        source = MaintenanceSchedules(open_store(bench.settings), bench.settings)
        now = INSTANT + timedelta(milliseconds=100)
        result = await source.claim(db, now, bench.settings.scheduler_claim_batch)
    (batch_id,) = result.fired
    return batch_id


async def drive(
    bench: Bench, service: SchedulerService, targets: int, offset: int
) -> dict[str, Any]:
    """Relay one fire and wait until its batch is ready (every session exists)."""
    batch_id = await new_fire(bench, targets, offset)
    await service.renew()  # the lease lasts seconds; the relay publishes only as the leader
    conn = await bench.connect()
    try:
        async with WaitSampler(bench.dsn) as waits:
            started = time.time()
            assert await service.relay() == 1
            row = await wait_for(
                lambda: conn.fetchrow(
                    "SELECT ready_at FROM batches WHERE id = $1 AND ready_at IS NOT NULL",
                    batch_id,
                ),
                within=max(120.0, targets / 50),
                interval=0.05,
                what=f"batch of {targets} ready",
            )
        stats = await conn.fetchrow(
            "SELECT count(*) AS n, min(created_at) AS first FROM sessions WHERE batch_id = $1",
            batch_id,
        )
    finally:
        await conn.close()
    assert stats["n"] == targets, f"{stats['n']} sessions for {targets} targets"
    elapsed = row["ready_at"].timestamp() - started
    return {
        "targets": targets,
        "elapsed_s": elapsed,
        "sessions_per_s": targets / elapsed,
        "first_session_s": stats["first"].timestamp() - started,
        "first_to_last_s": (row["ready_at"] - stats["first"]).total_seconds(),
        "pg_backends": waits.summary(),
    }


async def drain_empty(bench: Bench, broker: dramatiq.Broker, n: int) -> dict[str, Any]:
    """Enqueue n empty messages (pipelined, as fan-out does) and time until all are acked."""
    client = redis.Redis.from_url(bench.redis_url)
    key = f"{bench.namespace}:{EMPTY_QUEUE}.msgs"
    batch_id = str(uuid.uuid4())
    try:
        started = time.perf_counter()
        messages = [
            dramatiq.Message(
                queue_name=EMPTY_QUEUE,
                actor_name=EMPTY_ACTOR,
                args=(batch_id, f"host-{i:05d}", None),
                kwargs={},
                options={},
            )
            for i in range(n)
        ]
        await asyncio.to_thread(enqueue_many, broker, messages)
        await wait_for(
            lambda: asyncio.to_thread(lambda: client.hlen(key) == 0),
            within=max(120.0, n / 50),
            interval=0.01,
            what="empty queue drained",
        )
        elapsed = time.perf_counter() - started
    finally:
        client.close()
    return {"messages": n, "elapsed_s": elapsed, "messages_per_s": n / elapsed}


async def measure(bench: Bench, targets: int, reps: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Interleaved reps of the baseline and the fan-out; the best of each (least disturbed by
    whatever else the machine runs). Both workers are up for the whole measurement."""
    broker = build_broker(bench.settings)
    service = relay_service(bench, broker)
    worker = empty = None
    try:
        worker = await start_worker(bench)
        empty = await start_empty_worker(bench)
        await service.renew()
        log("row 1: warm-up")
        await drain_empty(bench, broker, 500)
        await drive(bench, service, 200, offset=0)
        baselines, fanouts = [], []
        for rep in range(reps):
            baselines.append(await drain_empty(bench, broker, targets))
            log(f"row 1: empty actor {baselines[-1]['messages_per_s']:,.0f} msg/s")
            fanouts.append(await drive(bench, service, targets, offset=rep + 1))
            log(f"row 1: fan-out {fanouts[-1]['sessions_per_s']:,.0f} sessions/s")
            log(f"row 1: PostgreSQL backends (mean per sample): {fanouts[-1]['pg_backends']}")
        if "1" in bench.shared.get("profile", ()):
            async with PySpy(bench, worker.pid, "row1-worker"):
                profiled = await drive(bench, service, targets, offset=reps + 1)
            log(f"row 1: profiled fan-out {profiled['sessions_per_s']:,.0f} sessions/s")
    finally:
        for proc in (worker, empty):
            if proc is not None:
                bench.stop(proc)
        await service.stop()
        broker.close()
    best_base = max(baselines, key=lambda b: b["messages_per_s"])
    best_fan = max(fanouts, key=lambda f: f["sessions_per_s"])
    best_base["all"] = [round(b["messages_per_s"]) for b in baselines]
    best_fan["all"] = [round(f["sessions_per_s"]) for f in fanouts]
    return best_base, best_fan


async def run(bench: Bench) -> list[Result]:
    await bench.reset()
    targets = bench.size(1_000, 10_000)
    base, fan = await measure(bench, targets, reps=bench.size(1, 2))
    bench.shared["fanout_rate"] = fan["sessions_per_s"]
    bench.shared["fanout_targets"] = targets
    ratio = fan["sessions_per_s"] / base["messages_per_s"]
    met, verdict = at_least(ratio, TARGET)
    return [
        Result(
            row="1",
            what=f"fan-out: sessions/s of one fire of {targets:,} targets (1 worker x {THREADS})",
            measured=fmt_rate(fan["sessions_per_s"], " sessions/s"),
            baseline=fmt_rate(base["messages_per_s"], " msg/s (empty actor)"),
            ratio=ratio,
            target=f"≥ {TARGET}",
            met=met,
            verdict=verdict,
            values={"fanout": fan, "empty_actor": base},
        )
    ]


async def fanout_rate(bench: Bench) -> float:
    """Row 1's rate, measured now if row 1 did not run in this invocation."""
    if "fanout_rate" not in bench.shared:
        log("row 1 did not run: measuring the fan-out rate first")
        await run(bench)
    return float(bench.shared["fanout_rate"])
