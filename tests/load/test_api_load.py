"""The API under many concurrent clients mixing reads, batch launches and schedule edits, as a
real `maintflow api` process: no 5xx, no lost write (every acknowledged write is found in the
database afterwards), latency percentiles printed.

Bounded for CI: 200 clients for MAINTFLOW_LOAD_SECONDS (default 10). By hand:
`MAINTFLOW_LOAD_SECONDS=60 scripts/test tests/load -s`."""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.conftest import UNLIMITED
from tests.kit.cluster import Cluster, cluster_env
from tests.kit.logs import last_json_object
from tests.kit.seed import STEPS, post_created

pytestmark = pytest.mark.slow
CLIENTS = int(os.environ.get("MAINTFLOW_LOAD_CLIENTS", "200"))
SECONDS = float(os.environ.get("MAINTFLOW_LOAD_SECONDS", "10"))
CRONS = ["0 9 * * *", "30 2 * * *", "15 */2 * * *", "0 6 * * 1-5", "45 23 * * 0"]


@dataclass
class Tally:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: dict[str, dict[int, int]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(int))
    )
    errors: list[str] = field(default_factory=list)
    batches: dict[str, int] = field(default_factory=dict)  # acknowledged launches: id → targets
    last_cron: dict[str, str] = field(default_factory=dict)  # schedule → last acknowledged cron

    def record(self, op: str, started: float, response: httpx.Response) -> None:
        self.latencies[op].append(time.perf_counter() - started)
        self.statuses[op][response.status_code] += 1


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000


async def client_loop(
    i: int,
    client: httpx.AsyncClient,
    own: dict[str, str],
    shared_batch: str,
    deadline: float,
    tally: Tally,
) -> None:
    rng = random.Random(i)
    while time.monotonic() < deadline:
        roll = rng.random()
        started = time.perf_counter()
        try:
            if roll < 0.35:
                r = await client.get("/v1/batches", params={"limit": 50})
                tally.record("list batches", started, r)
            elif roll < 0.55:
                r = await client.get("/v1/sessions", params={"batch_id": shared_batch})
                tally.record("list sessions", started, r)
            elif roll < 0.75:
                n = rng.randint(1, 20)
                body = {
                    "flow_id": own["flow_id"],
                    "targets": [{"label": f"c{i}-h{k}"} for k in range(n)],
                }
                r = await client.post("/v1/sessions/batch", json=body)
                tally.record("launch batch", started, r)
                if r.status_code == 201:
                    tally.batches[r.json()["batch_id"]] = n
            elif roll < 0.9:
                cron = rng.choice(CRONS)
                r = await client.patch(
                    f"/v1/maintenance-schedules/{own['schedule_id']}",
                    json={"cron_expression": cron},
                )
                tally.record("edit schedule", started, r)
                if r.status_code == 200:
                    tally.last_cron[own["schedule_id"]] = cron
            else:
                r = await client.get(
                    f"/v1/maintenance-schedules/{own['schedule_id']}/preview",
                    params={"count": 10},
                )
                tally.record("preview", started, r)
        except httpx.HTTPError as exc:
            tally.errors.append(f"{type(exc).__name__}: {exc}")


async def test_two_hundred_clients_get_no_5xx_and_lose_no_write(
    tmp_path: Path, database_url: str, sessions: async_sessionmaker[AsyncSession]
) -> None:
    # 200 clients on one token measure the API, not the per-token limit: raised explicitly.
    env = cluster_env(
        database_url,
        json_logs=False,
        log_level="WARNING",
        rate_limit=UNLIMITED,
        launch_rate_limit=UNLIMITED,
    )
    async with Cluster(tmp_path / "procs", env) as cluster:
        created = await cluster.run_cli("admin", "create-team", "load")
        token = last_json_object(created)["token"]
        api = await cluster.start_api()
        limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
        async with httpx.AsyncClient(
            base_url=api.url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
            limits=limits,
        ) as client:
            owned: list[dict[str, str]] = []
            for i in range(CLIENTS):
                flow = await post_created(
                    client,
                    "/v1/flows",
                    {"name": f"flow {i}", "flow_type": "maintenance", "steps": STEPS},
                )
                sched = await post_created(
                    client,
                    "/v1/maintenance-schedules",
                    {"flow_id": flow["id"], "cron_expression": CRONS[0]},
                )
                owned.append({"flow_id": flow["id"], "schedule_id": sched["id"]})
            shared = await post_created(
                client,
                "/v1/sessions/batch",
                {
                    "flow_id": owned[0]["flow_id"],
                    "targets": [{"label": f"shared-{k}"} for k in range(100)],
                },
            )
            tally = Tally()
            deadline = time.monotonic() + SECONDS
            started = time.monotonic()
            await asyncio.gather(
                *(
                    client_loop(i, client, owned[i], shared["batch_id"], deadline, tally)
                    for i in range(CLIENTS)
                )
            )
            elapsed = time.monotonic() - started
        api.check_alive()
        cluster.assert_no_job_failures("api")

    total = sum(len(v) for v in tally.latencies.values())
    print(f"\n{CLIENTS} clients, {elapsed:.1f} s, {total} requests, {total / elapsed:.0f} req/s")
    print(f"{'operation':<15}{'count':>7}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}  statuses")
    for op, values in sorted(tally.latencies.items()):
        print(
            f"{op:<15}{len(values):>7}{pct(values, 50):>9.1f}{pct(values, 95):>9.1f}"
            f"{pct(values, 99):>9.1f}  {dict(tally.statuses[op])}"
        )

    assert tally.errors == [], tally.errors[:5]
    server_errors = {
        op: {s: n for s, n in st.items() if s >= 500} for op, st in tally.statuses.items()
    }
    assert all(not v for v in server_errors.values()), server_errors
    unexpected = {
        op: {s: n for s, n in st.items() if s not in (200, 201)}
        for op, st in tally.statuses.items()
    }
    assert all(not v for v in unexpected.values()), unexpected
    async with sessions() as db:
        counts = dict(
            (
                await db.execute(
                    sa.text(
                        "SELECT b.id::text, count(s.id) FROM batches b LEFT JOIN sessions s "
                        "ON s.batch_id = b.id GROUP BY b.id"
                    )
                )
            ).all()
        )
        crons = dict(
            (
                await db.execute(
                    sa.text("SELECT id::text, cron_expression FROM maintenance_schedules")
                )
            ).all()
        )
    lost = {b: n for b, n in tally.batches.items() if counts.get(b) != n}
    assert not lost, f"{len(lost)} acknowledged batches missing or incomplete"
    stale = {s: c for s, c in tally.last_cron.items() if crons.get(s) != c}
    assert not stale, f"{len(stale)} schedules lost their last acknowledged edit"
    assert len(tally.batches) > 0 and len(tally.last_cron) > 0
