"""Row 8 — webhook throughput: deliveries/s of N queued webhook deliveries through the real
pipeline (outbox relay → `deliver_webhooks` → signed POST → outcome recorded) in a separate
`maintflow worker --processes 1 --threads 8`, against a plain httpx loop in this process posting
the same bodies, one after the other, to the same receiver (a uvicorn process of its own, on
127.0.0.1: MAINTFLOW_WEBHOOK_ALLOW_PRIVATE=true for the worker)."""

from __future__ import annotations

import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import sqlalchemy as sa

from bench.common import (
    Bench,
    Proc,
    Result,
    at_least,
    fmt_rate,
    free_port,
    log,
    maintflow_command,
    wait_for,
)
from bench.fanout import relay_service
from maintflow_core.models import Webhook
from maintflow_core.usecases import webhook_delivery
from maintflow_core.usecases.webhook_delivery import event_body, new_delivery
from maintflow_core.usecases.webhooks import new_secret
from maintflow_scheduler.service import SchedulerService
from maintflow_workers.broker import build_broker

THREADS = 8
TARGET = 0.5
DATA = {"batch_id": str(uuid.uuid4()), "status_counts": {"completed": 8, "failed": 0}}


async def start_receiver(bench: Bench) -> tuple[Proc, str]:
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "uvicorn",
        "bench.webhook_receiver:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    proc = bench.spawn("webhook-receiver", argv)
    url = f"http://127.0.0.1:{port}/hooks"

    async def up() -> bool:
        try:
            async with httpx.AsyncClient() as client:
                return (await client.post(url, content=b"{}")).status_code == 200
        except httpx.TransportError:
            return False

    await wait_for(up, within=30, interval=0.1, what="webhook receiver up")
    return proc, url


async def start_worker(bench: Bench) -> Proc:
    argv = [*maintflow_command(), "worker", "--processes", "1", "--threads", str(THREADS)]
    proc = bench.spawn("webhook-worker", argv, bench.env(MAINTFLOW_WEBHOOK_ALLOW_PRIVATE="true"))
    await proc.wait_log("Worker process is ready for action", 90)
    return proc


async def queue_deliveries(bench: Bench, webhook_id: uuid.UUID, n: int) -> None:
    """`n` deliveries of batch.completed and their outbox rows, as events offer them."""
    now = datetime.now(UTC)
    body = event_body("batch.completed", DATA, now)
    made = [new_delivery(webhook_id, "batch.completed", uuid.uuid4(), body, now) for _ in range(n)]
    async with bench.sessions() as db, db.begin():
        await webhook_delivery.queue_deliveries(db, made, now)


async def drive(
    bench: Bench, service: SchedulerService, webhook_id: uuid.UUID, n: int
) -> dict[str, Any]:
    """Queue n deliveries, relay them, and time until every one has succeeded."""
    await queue_deliveries(bench, webhook_id, n)
    await service.renew()
    conn = await bench.connect()
    try:
        started = time.time()
        await service.relay()
        done = "SELECT count(*) FROM webhook_deliveries WHERE webhook_id = $1 AND status = $2"
        await wait_for(
            lambda: _all(conn, done, webhook_id, n),
            within=max(120.0, n / 20),
            interval=0.05,
            what=f"{n} deliveries succeeded",
        )
        last = await conn.fetchval(
            "SELECT max(finished_at) FROM webhook_deliveries WHERE webhook_id = $1", webhook_id
        )
        await conn.execute("DELETE FROM webhook_deliveries WHERE webhook_id = $1", webhook_id)
    finally:
        await conn.close()
    elapsed = last.timestamp() - started
    return {"deliveries": n, "elapsed_s": elapsed, "deliveries_per_s": n / elapsed}


async def _all(conn: Any, query: str, webhook_id: uuid.UUID, n: int) -> bool:
    return bool(await conn.fetchval(query, webhook_id, "succeeded") >= n)


async def plain_loop(url: str, n: int) -> dict[str, Any]:
    """The baseline: one httpx client posting the same bodies, one after the other (unsigned:
    signing is part of what the measured side does)."""
    body = event_body("batch.completed", DATA, datetime.now(UTC))
    headers = {"content-type": "application/json"}
    async with httpx.AsyncClient() as client:
        started = time.perf_counter()
        for _ in range(n):
            r = await client.post(url, content=body, headers=headers)
            assert r.status_code == 200
        elapsed = time.perf_counter() - started
    return {"posts": n, "elapsed_s": elapsed, "posts_per_s": n / elapsed}


async def run(bench: Bench) -> list[Result]:
    n = bench.size(300, 2000)
    reps = bench.size(1, 3)
    broker = build_broker(bench.settings)
    service = relay_service(bench, broker)
    receiver, url = await start_receiver(bench)
    webhook_id = uuid.uuid4()
    async with bench.sessions() as db, db.begin():
        db.add(
            Webhook(
                id=webhook_id,
                team_id=bench.team_id,
                url=url,
                events=["batch.completed"],
                secret=new_secret(),
                created_at=datetime.now(UTC),
            )
        )
    try:
        worker = await start_worker(bench)
        log("row 8: warm-up")
        await plain_loop(url, 100)
        await drive(bench, service, webhook_id, 100)
        baselines, measured = [], []
        for _ in range(reps):
            baselines.append(await plain_loop(url, n))
            log(f"row 8: plain httpx loop {baselines[-1]['posts_per_s']:,.0f} posts/s")
            measured.append(await drive(bench, service, webhook_id, n))
            log(f"row 8: webhook worker {measured[-1]['deliveries_per_s']:,.0f} deliveries/s")
        bench.stop(worker)
    finally:
        broker.close()
        bench.stop(receiver)
        async with bench.sessions() as db, db.begin():
            await db.execute(sa.delete(Webhook).where(Webhook.id == webhook_id))
    best = max(m["deliveries_per_s"] for m in measured)
    base = max(b["posts_per_s"] for b in baselines)
    ratio = best / base
    met, verdict = at_least(ratio, TARGET)
    return [
        Result(
            row="8",
            what=f"webhook deliveries/s, {n} to a local receiver, 1 worker process",
            measured=fmt_rate(best),
            baseline=f"{fmt_rate(base)} (plain httpx loop)",
            ratio=ratio,
            target=f"≥ {TARGET:g}",
            met=met,
            verdict=verdict,
            values={"measured": measured, "baselines": baselines},
        )
    ]
