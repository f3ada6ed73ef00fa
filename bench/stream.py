"""Row 7 — live stream fan-out: 500 clients connected to `GET /v1/notifications/stream` over two
`maintflow api` processes (250 each, one team), 100 notifications committed one every 50 ms by
this process standing in for a worker (`raise_event` in its own transaction, as the fan-out's
`mark_ready` does; PostgreSQL NOTIFY on commit). Measured: time from just before each COMMIT to
the end of that message at each client, p50 and p99 over all 50,000 receipts; every client must
receive every notification once, in order. Baseline, same run: the same commits heard by a bare
asyncpg LISTEN connection in this process (the floor: what PostgreSQL's NOTIFY itself takes).

The clients are raw asyncio sockets that only split lines (no HTTP or SSE library), so that on
two cores 500 of them cost the measuring process as little as possible; a library client spent
more CPU per message than the servers."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import defaultdict
from typing import Any

import asyncpg

from bench.common import (
    Bench,
    Proc,
    Result,
    at_most,
    fmt_s,
    free_port,
    log,
    maintflow_command,
    median,
    percentile,
    wait_for,
)
from maintflow_core.clock import SystemClock
from maintflow_core.db.store import PostgresStore
from maintflow_core.db.store.postgres import NOTIFICATIONS_CHANNEL
from maintflow_core.usecases.events import Event, raise_event

TARGET_P99_S = 1.0
API_PROCESSES = 2


class Client:
    """One stream: the receipt time of each message, by notification id."""

    def __init__(self) -> None:
        self.received: dict[str, float] = {}
        self.order: list[str] = []
        self.connected = asyncio.Event()
        self.failed: str | None = None

    async def run(self, port: int, token: str) -> None:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError as exc:
            self.failed = repr(exc)
            self.connected.set()
            return
        try:
            writer.write(
                f"GET /v1/notifications/stream HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                f"Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n".encode()
            )
            status = await reader.readline()
            while (await reader.readline()) not in (b"\r\n", b""):
                pass
            if b" 200 " not in status:
                self.failed = status.decode().strip()
                return
            self.connected.set()
            current: str | None = None
            while line := await reader.readline():
                if line.startswith(b"id: "):
                    current = line[4:].strip().decode()
                elif line == b"\r\n" and current is not None:  # the end of one message
                    self.received[current] = time.perf_counter()
                    self.order.append(current)
                    current = None
        finally:
            self.connected.set()
            writer.close()


async def start_apis(bench: Bench) -> list[Proc]:
    apis = []
    for k in range(API_PROCESSES):
        port = free_port()
        argv = [*maintflow_command(), "api", "--host", "127.0.0.1", "--port", str(port)]
        proc = bench.spawn(f"api-{k + 1}", argv)
        proc.port = port
        apis.append(proc)
    for proc in apis:
        await proc.wait_http("/readyz")
    return apis


async def commit_notifications(bench: Bench, count: int, every_s: float) -> dict[str, float]:
    """Commit `count` notifications of the bench team, one every `every_s`; returns the time
    just before each COMMIT, by notification id."""
    store = PostgresStore(bench.settings)
    clock = SystemClock()
    committed: dict[str, float] = {}
    for k in range(count):
        started = time.perf_counter()
        async with bench.sessions() as db:
            await db.begin()
            note = await raise_event(
                db,
                store,
                clock.now(),
                bench.team_id,
                Event.SYSTEM_JOB_FAILED,
                {"bench": k},
                uuid.uuid4(),
                title=f"bench {k}",
                message="stream fan-out benchmark",
            )
            assert note is not None
            committed[str(note.id)] = time.perf_counter()
            await db.commit()
        await asyncio.sleep(max(0.0, every_s - (time.perf_counter() - started)))
    return committed


async def run(bench: Bench) -> list[Result]:
    await bench.reset()
    clients_n, count = bench.size(50, 500), bench.size(20, 100)
    every_s = 0.05
    apis = await start_apis(bench)
    clients = [Client() for _ in range(clients_n)]
    tasks = [
        asyncio.create_task(c.run(apis[i % len(apis)].port, bench.token))  # type: ignore[arg-type]
        for i, c in enumerate(clients)
    ]
    # The floor: a bare LISTEN on the same channel. Its payload is the team id, so it is
    # matched to the commit by order (one notification per transaction).
    listener = await asyncpg.connect(bench.dsn)
    heard_at: list[float] = []
    await listener.add_listener(
        NOTIFICATIONS_CHANNEL, lambda *_: heard_at.append(time.perf_counter())
    )
    try:
        await asyncio.wait_for(asyncio.gather(*(c.connected.wait() for c in clients)), 120)
        failed = [c.failed for c in clients if c.failed]
        if failed:
            raise RuntimeError(f"{len(failed)} clients could not connect: {failed[:3]}")
        log(f"row 7: {clients_n} streams open on {len(apis)} API processes; committing {count}")
        committed = await commit_notifications(bench, count, every_s)

        async def all_in() -> bool:
            return all(len(c.received) >= count for c in clients) and len(heard_at) >= count

        with contextlib.suppress(TimeoutError):  # what is missing is counted below
            await wait_for(all_in, within=30, what="every receipt")
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await listener.close()
        for proc in apis:
            bench.stop(proc)

    ids = list(committed)  # in commit order
    latencies: list[float] = []
    missing = 0
    out_of_order = 0
    per_api: dict[int, list[float]] = defaultdict(list)
    by_note: dict[str, list[float]] = defaultdict(list)
    for i, c in enumerate(clients):
        missing += sum(1 for n in ids if n not in c.received)
        out_of_order += c.order != [n for n in ids if n in c.received]
        for n in ids:
            if n in c.received:
                lat = c.received[n] - committed[n]
                latencies.append(lat)
                per_api[i % len(apis)].append(lat)
                by_note[n].append(lat)
    floor = [h - committed[n] for n, h in zip(ids, heard_at, strict=False)]
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    floor_p50, floor_p99 = percentile(floor, 50), percentile(floor, 99)
    met, verdict = at_most(p99 / TARGET_P99_S, 1.0)
    if missing or out_of_order:
        met, verdict = False, f"{missing} receipts missing, {out_of_order} clients out of order"
    values: dict[str, Any] = {
        "clients": clients_n,
        "api_processes": len(apis),
        "notifications": count,
        "interval_s": every_s,
        "receipts": len(latencies),
        "missing": missing,
        "clients_out_of_order": out_of_order,
        "p50_s": p50,
        "p99_s": p99,
        "max_s": max(latencies),
        "median_s": median(latencies),
        "per_api_p99_s": {k + 1: percentile(v, 99) for k, v in per_api.items()},
        # The last client's receipt of each notification, in commit order.
        "slowest_receipt_by_notification_s": [round(max(by_note[n]), 4) for n in ids],
        "bare_listen_p50_s": floor_p50,
        "bare_listen_p99_s": floor_p99,
    }
    return [
        Result(
            row="7",
            what=f"stream fan-out: {clients_n} SSE clients on {len(apis)} APIs, commit → receipt",
            measured=f"p50 {fmt_s(p50)}, p99 {fmt_s(p99)}",
            baseline=f"bare LISTEN p50 {fmt_s(floor_p50)}, p99 {fmt_s(floor_p99)}",
            ratio=p99 / floor_p99 if floor_p99 > 0 else None,
            target=f"p99 ≤ {TARGET_P99_S:g} s",
            met=met,
            verdict=verdict,
            values=values,
        )
    ]
