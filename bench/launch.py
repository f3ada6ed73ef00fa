"""Row 5 — batch launch: `POST /v1/sessions/batch` with 1,000 and 10,000 targets on the real app
(in-process, httpx ASGITransport, with auth), against (a) a straightforward ORM loop (add each
session, flush, refresh) and (b) raw asyncpg `copy_records_to_table` of the same rows, all on the
same database in the same run. Times are medians of interleaved repetitions."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx

from bench.common import (
    STEPS,
    STEPS_JSON,
    Bench,
    PySpy,
    Result,
    at_least,
    at_most,
    fmt_s,
    log,
    median,
)
from maintflow_api.app import create_app
from maintflow_core.models import Batch, Session
from maintflow_core.records import SESSION_COLUMNS

ORM_TARGET = 10.0  # launch ≥ 10 x faster than the ORM loop
COPY_TARGET = 2.0  # launch ≤ 2 x the time of a raw COPY


def targets_of(n: int, rep: int) -> list[dict[str, Any]]:
    return [{"label": f"host-{rep:03d}-{i:05d}", "notes": f"rack {i % 40}"} for i in range(n)]


async def orm_loop(bench: Bench, flow_id: uuid.UUID, targets: list[dict[str, Any]]) -> float:
    """Baseline (a): what a first version would write."""
    started = time.perf_counter()
    now = datetime.now(UTC)
    async with bench.sessions() as db, db.begin():
        batch = Batch(
            id=uuid.uuid4(),
            team_id=bench.team_id,
            flow_id=flow_id,
            trigger="manual",
            target_count=len(targets),
            sessions_created=len(targets),
            created_at=now,
            ready_at=now,
        )
        db.add(batch)
        await db.flush()
        for target in targets:
            session = Session(
                id=uuid.uuid4(),
                team_id=bench.team_id,
                batch_id=batch.id,
                flow_id=flow_id,
                target_label=target["label"],
                target_notes=target["notes"],
                status="pending",
                steps=STEPS,
                created_at=now,
                updated_at=now,
            )
            db.add(session)
            await db.flush()
            await db.refresh(session)
    return time.perf_counter() - started


async def raw_copy(bench: Bench, flow_id: uuid.UUID, targets: list[dict[str, Any]]) -> float:
    """Baseline (b): the batch row and a COPY of the session rows, nothing else."""
    conn = await bench.connect()
    try:
        started = time.perf_counter()
        now = datetime.now(UTC)
        batch_id = uuid.uuid4()
        async with conn.transaction():
            await conn.execute(
                "INSERT INTO batches (id, team_id, flow_id, trigger, target_count, "
                "sessions_created, created_at, ready_at) VALUES ($1, $2, $3, 'manual', $4, $4, "
                "$5, $5)",
                batch_id,
                bench.team_id,
                flow_id,
                len(targets),
                now,
            )
            records = [
                (
                    uuid.uuid4(),
                    bench.team_id,
                    batch_id,
                    flow_id,
                    t["label"],
                    t["notes"],
                    "pending",
                    STEPS_JSON,
                    None,
                    now,
                    now,
                )
                for t in targets
            ]
            await conn.copy_records_to_table("sessions", records=records, columns=SESSION_COLUMNS)
        return time.perf_counter() - started
    finally:
        await conn.close()


async def run(bench: Bench) -> list[Result]:
    await bench.reset()
    app = create_app(bench.settings)
    headers = {"Authorization": f"Bearer {bench.token}", "Content-Type": "application/json"}
    results: list[Result] = []
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://bench", timeout=300
        ) as client:
            r = await client.post(
                "/v1/flows",
                json={"name": "Patch RDS", "flow_type": "maintenance", "steps": STEPS},
                headers=headers,
            )
            assert r.status_code == 201, r.text
            flow_id = uuid.UUID(r.json()["id"])

            async def api(targets: list[dict[str, Any]]) -> float:
                body = json.dumps({"flow_id": str(flow_id), "targets": targets}).encode()
                started = time.perf_counter()
                response = await client.post("/v1/sessions/batch", content=body, headers=headers)
                elapsed = time.perf_counter() - started
                assert response.status_code == 201, response.text[:500]
                assert response.json()["count"] == len(targets)
                return elapsed

            rep = 0

            async def timed(fn: Callable[..., Awaitable[float]], n: int) -> float:
                nonlocal rep
                rep += 1
                targets = targets_of(n, rep)
                if fn is api:
                    return await api(targets)
                return await fn(bench, flow_id, targets)

            small, large = bench.size((200, 1_000), (1_000, 10_000))
            for fn in (api, raw_copy, orm_loop):  # warm-up: pools, caches, JIT-less imports
                await timed(fn, small)
            for n in (small, large):
                reps = bench.size(3, 7 if n == small else 5)
                orm_reps = bench.size(1, 3 if n == small else 1)
                times: dict[str, list[float]] = {"api": [], "copy": [], "orm": []}
                for k in range(reps):
                    times["api"].append(await timed(api, n))
                    times["copy"].append(await timed(raw_copy, n))
                    if k < orm_reps:
                        times["orm"].append(await timed(orm_loop, n))
                t = {key: median(v) for key, v in times.items()}
                log(f"row 5: {n:,} targets: " + ", ".join(f"{k} {fmt_s(v)}" for k, v in t.items()))
                values = {"targets": n, "median_s": t, "all_s": times}
                speedup = t["orm"] / t["api"]
                met, verdict = at_least(speedup, ORM_TARGET)
                if n == large and "5" in bench.shared.get("profile", ()):
                    async with PySpy(bench, os.getpid(), "row5-launch"):
                        for _ in range(3):
                            await timed(api, n)
                results.append(
                    Result(
                        row="5a" if n == small else "5b",
                        what=f"batch launch, {n:,} targets: POST /v1/sessions/batch vs ORM loop",
                        measured=fmt_s(t["api"]),
                        baseline=f"{fmt_s(t['orm'])} (ORM add/flush/refresh)",
                        ratio=speedup,
                        target=f"≥ {ORM_TARGET:g} x faster",
                        met=met,
                        verdict=verdict,
                        values=values,
                    )
                )
                slowdown = t["api"] / t["copy"]
                met, verdict = at_most(slowdown, COPY_TARGET)
                results.append(
                    Result(
                        row="5a" if n == small else "5b",
                        what=f"batch launch, {n:,} targets: POST /v1/sessions/batch vs raw COPY",
                        measured=fmt_s(t["api"]),
                        baseline=f"{fmt_s(t['copy'])} (asyncpg COPY)",
                        ratio=slowdown,
                        target=f"≤ {COPY_TARGET:g} x its time",
                        met=met,
                        verdict=verdict,
                        values=values,
                    )
                )
    return results
