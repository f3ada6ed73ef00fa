"""Row 10 - retention: retention_cleanup deleting 1,000,000 finished sessions (100,000 batches of
10) older than the cutoff while `GET /v1/batches` is read at 16 connections from one `maintflow
api` process. (a) rows deleted per second; (b) the API's p99 during the cleanup vs the same reads
without it, just before (target <= 1.5x); (c) the longest any transaction held a write lock on
`sessions` during the cleanup, sampled from pg_locks (target <= 1 s).

The cleanup is a manual run of `retention_cleanup_manual` through the running system (`maintflow
api`, `scheduler` and `worker` processes at the shipped settings); this process only reads and
samples."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import timedelta
from typing import Any

import asyncpg
import httpx

from bench.common import (
    STEPS,
    Bench,
    Result,
    _copy,
    at_most,
    copy_flows,
    fmt_rate,
    fmt_s,
    free_port,
    log,
    maintflow_command,
    percentile,
    wait_for,
)
from maintflow_core.clock import SystemClock

CONNECTIONS = 16
MANUAL = "retention_cleanup_manual"
EACH = 10
RECENT = 200  # batches young enough to stay: what the API's first pages show
P99_TARGET = 1.5
LOCK_TARGET_S = 1.0
BATCH_COLUMNS = (
    "id", "team_id", "flow_id", "trigger", "target_count", "sessions_created", "created_at",
    "ready_at", "sessions_final", "completed_at",
)  # fmt: skip
SESSION_COLUMNS = (
    "id", "team_id", "batch_id", "flow_id", "target_label", "status", "steps", "created_at",
    "updated_at", "finished_at",
)  # fmt: skip


async def seed(bench: Bench, old: int) -> None:
    now = SystemClock().now()
    conn = await bench.connect()
    try:
        (flow_id,) = await copy_flows(conn, bench.team_id, 1)
        steps = json.dumps(STEPS)
        for count, age in ((old, timedelta(days=120)), (RECENT, timedelta(days=1))):
            ids = [uuid.uuid4() for _ in range(count)]
            at = now - age

            def batch(i: int, ids: list[uuid.UUID] = ids, at: Any = at) -> tuple[Any, ...]:
                return (ids[i], bench.team_id, flow_id, "manual", EACH, EACH, at, at, EACH, at)

            await _copy(conn, "batches", BATCH_COLUMNS, count, batch)

            def session(i: int, ids: list[uuid.UUID] = ids, at: Any = at) -> tuple[Any, ...]:
                return (
                    uuid.uuid4(), bench.team_id, ids[i // EACH], flow_id, f"host-{i % EACH}",
                    "completed", steps, at, at, at,
                )  # fmt: skip

            await _copy(conn, "sessions", SESSION_COLUMNS, count * EACH, session)
            log(f"row 10: {count:,} batches of {EACH} sessions loaded")
        await conn.execute("VACUUM ANALYZE batches")
        await conn.execute("VACUUM ANALYZE sessions")
    finally:
        await conn.close()


async def read(url: str, token: str, stop: asyncio.Event) -> dict[str, Any]:
    """GET `url` at CONNECTIONS until `stop` is set: latencies and errors."""
    latencies: list[float] = []
    bad = 0
    limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(limits=limits, timeout=30, headers=headers) as client:

        async def user() -> None:
            nonlocal bad
            while not stop.is_set():
                started = time.perf_counter()
                response = await client.get(url)
                latencies.append(time.perf_counter() - started)
                bad += response.status_code != 200

        started = time.perf_counter()
        await asyncio.gather(*(user() for _ in range(CONNECTIONS)))
        elapsed = time.perf_counter() - started
    return {
        "requests": len(latencies),
        "req_per_s": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "non_200": bad,
    }


# The longest a transaction has held a write lock on `sessions` so far, as PostgreSQL sees it.
HELD = (
    "SELECT coalesce(max(extract(epoch FROM clock_timestamp() - a.xact_start)), 0) "
    "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
    "WHERE l.relation = 'sessions'::regclass AND l.mode = 'RowExclusiveLock' AND l.granted"
)


async def longest_lock(dsn: str, stop: asyncio.Event) -> float:
    """Sample HELD every 20 ms until `stop`: the longest hold seen, in seconds."""
    conn = await asyncpg.connect(dsn)
    longest = 0.0
    try:
        while not stop.is_set():
            longest = max(longest, float(await conn.fetchval(HELD)))
            await asyncio.sleep(0.02)
    finally:
        await conn.close()
    return longest


async def read_for(url: str, token: str, seconds: float) -> dict[str, Any]:
    stop = asyncio.Event()
    reading = asyncio.create_task(read(url, token, stop))
    await asyncio.sleep(seconds)
    stop.set()
    return await reading


async def finished_run(client: httpx.AsyncClient, run_id: str) -> dict[str, Any] | None:
    run: dict[str, Any] = (await client.get(f"/v1/system-job-runs/{run_id}")).json()
    return run if run["status"] != "running" else None


async def run(bench: Bench) -> list[Result]:
    old = bench.size(5_000, 100_000)
    await bench.reset()
    await seed(bench, old)
    port = free_port()
    maintflow = maintflow_command()
    api = bench.spawn("api", [*maintflow, "api", "--host", "127.0.0.1", "--port", str(port)])
    api.port = port
    bench.spawn("scheduler", [*maintflow, "scheduler"])
    worker = bench.spawn("worker", [*maintflow, "worker", "--processes", "1", "--threads", "2"])
    headers = {"Authorization": f"Bearer {bench.token}"}
    await api.wait_http("/healthz")
    await worker.wait_log("Worker process is ready for action", 60)
    url = f"{api.url}/v1/batches"
    await read_for(url, bench.token, 2.0)  # warm-up
    without = await read_for(url, bench.token, bench.size(3.0, 8.0))
    stop = asyncio.Event()
    reading = asyncio.create_task(read(url, bench.token, stop))
    sampling = asyncio.create_task(longest_lock(bench.dsn, stop))
    try:
        async with httpx.AsyncClient(base_url=api.url, headers=headers) as client:
            answer = await client.post(f"/v1/system-jobs/{MANUAL}/run")
            assert answer.status_code == 202, answer.text
            run_id = answer.json()["run_id"]
            done = await wait_for(
                lambda: finished_run(client, run_id), within=3600, interval=0.2, what="the run"
            )
    finally:
        stop.set()
        during = await reading
        held = await sampling
    assert done["status"] == "success", done
    result = done["result"]
    deleted = result["sessions"]["deleted"]
    assert deleted == old * EACH and result["batches"]["deleted"] == old, result
    elapsed = float(done["duration_s"])
    rate = (deleted + result["batches"]["deleted"]) / elapsed
    ratio = during["p99_ms"] / without["p99_ms"]
    log(f"row 10: {deleted:,} sessions in {elapsed:.1f} s; p99 {without['p99_ms']:.1f} -> "
        f"{during['p99_ms']:.1f} ms; longest lock on sessions {fmt_s(held)}")  # fmt: skip
    p99_met, p99_verdict = at_most(ratio, P99_TARGET)
    lock_met, lock_verdict = at_most(held / LOCK_TARGET_S, 1.0)
    values = {"without": without, "during": during, "run": done}
    what = f"retention: {deleted:,} sessions ({old:,} batches)"
    return [
        Result(
            row="10a",
            what=f"{what}, rows (sessions + batches) deleted per second",
            measured=fmt_rate(rate, " rows/s"),
            baseline="—",
            ratio=None,
            target="—",
            met=None,
            verdict=f"the run took {elapsed:.1f} s (a worker process, shipped chunk size)",
            values=values,
        ),
        Result(
            row="10b",
            what=f"{what}: GET /v1/batches p99 at {CONNECTIONS} connections during vs without",
            measured=f"{during['p99_ms']:.1f} ms",
            baseline=f"{without['p99_ms']:.1f} ms (same reads just before)",
            ratio=ratio,
            target=f"<= {P99_TARGET:g} x",
            met=p99_met,
            verdict=p99_verdict,
        ),
        Result(
            row="10c",
            what=f"{what}: longest write lock on sessions (pg_locks, sampled every 20 ms)",
            measured=fmt_s(held),
            baseline="—",
            ratio=held / LOCK_TARGET_S,
            target=f"<= {LOCK_TARGET_S:g} s",
            met=lock_met,
            verdict=lock_verdict,
        ),
    ]
