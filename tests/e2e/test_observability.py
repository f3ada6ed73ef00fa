"""Watching the running system: the API, two schedulers and a worker of two processes, every
setting at its default (except the smallest schedule interval), scraped by a real Prometheus
every second with maintflow's alert rules loaded. What the Grafana dashboard and the alert rules
query is there with samples, each of their expressions runs, the queue figures come from the
leader alone, the worker's processes export one sum, every process answers /healthz and /readyz
(the standby scheduler too), and requests and messages carry their ids into the logs."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from maintflow_core.queues import QUEUES
from tests.kit.broker import drop_namespace
from tests.kit.cluster import Cluster, cluster_env
from tests.kit.logs import json_objects, last_json_object
from tests.kit.poll import poll_until
from tests.kit.procs import Proc, free_port
from tests.kit.prometheus import (
    PrometheusServer,
    dashboard_expressions,
    queried_series,
    rule_expressions,
)

pytestmark = pytest.mark.e2e

STEPS = [
    {"id": "s1", "type": "procedure_step", "title": "Patch"},
    {"id": "end", "type": "procedure_end", "title": "Done"},
]
EVERY_2_S = "* * * * * */2"
JOBS = ("maintflow-api", "maintflow-scheduler", "maintflow-worker")


@dataclass
class Watched:
    cluster: Cluster
    prometheus: PrometheusServer
    client: httpx.AsyncClient
    team_id: str
    schedule_id: str
    run_now_batch: str

    @property
    def api(self) -> Proc:
        return self.cluster["api"]

    @property
    def worker(self) -> Proc:
        return self.cluster["worker"]


async def _created(resp: httpx.Response) -> dict[str, Any]:
    assert resp.status_code in (201, 202), resp.text
    return dict(resp.json())


@pytest.fixture(scope="module")
async def watched(
    tmp_path_factory: pytest.TempPathFactory, database_url: str, redis_url: str
) -> AsyncIterator[Watched]:
    """The cluster, Prometheus scraping it, a schedule firing every 2 s and a run-now of 30
    targets."""
    workdir = tmp_path_factory.mktemp("observability")
    namespace = f"mftest-{uuid.uuid4().hex[:10]}"
    env = cluster_env(database_url, redis_url, namespace, min_schedule_interval_s=1)
    try:
        async with Cluster(workdir / "procs", env) as cluster:
            created = await cluster.run_cli("admin", "create-team", "observed")
            team = last_json_object(created)
            api, *_ = await asyncio.gather(
                cluster.start_api(),
                cluster.start_scheduler("scheduler-a"),
                cluster.start_scheduler("scheduler-b"),
                cluster.start_worker("worker", processes=2, threads=4),
            )
            await cluster.wait_leader()
            targets = {
                "maintflow-api": [api.url],
                "maintflow-scheduler": [cluster["scheduler-a"].url, cluster["scheduler-b"].url],
                "maintflow-worker": [cluster["worker"].url],
            }
            headers = {"Authorization": f"Bearer {team['token']}"}
            async with (
                PrometheusServer(workdir / "prometheus", targets) as prometheus,
                httpx.AsyncClient(base_url=api.url, headers=headers, timeout=10) as client,
            ):
                flow = await _created(
                    await client.post(
                        "/v1/flows",
                        json={"name": "Watched", "flow_type": "maintenance", "steps": STEPS},
                    )
                )
                labels = [{"label": f"h-{i:02d}"} for i in range(30)]
                tl = await _created(
                    await client.post("/v1/target-lists", json={"name": "W", "targets": labels})
                )
                schedule = await _created(
                    await client.post(
                        "/v1/maintenance-schedules",
                        json={
                            "flow_id": flow["id"],
                            "target_list_id": tl["id"],
                            "cron_expression": EVERY_2_S,
                        },
                    )
                )
                run = await _created(
                    await client.post(f"/v1/maintenance-schedules/{schedule['id']}/run-now")
                )
                await prometheus.wait_scraped(JOBS)
                yield Watched(
                    cluster, prometheus, client, team["team_id"], schedule["id"], run["batch_id"]
                )
            cluster.assert_no_job_failures()
    finally:
        drop_namespace(redis_url, namespace)


async def test_every_series_the_dashboard_and_the_alerts_query_is_scraped_with_samples(
    watched: Watched,
) -> None:
    prom = watched.prometheus
    wanted = queried_series()
    assert {"maintflow_scheduler_is_leader", "dramatiq_messages_total"} <= wanted

    missing: set[str] = set(wanted)

    async def all_there() -> bool:
        for name in sorted(missing):
            if await prom.query(f'count({{__name__="{name}"}})'):
                missing.discard(name)
        return not missing

    await poll_until(
        all_there, 60, "every queried series in Prometheus", detail=lambda: f"missing: {missing}"
    )
    # Fires happened and were observed, not only pre-initialised.
    fired = await prom.query(
        'sum(maintflow_scheduler_fires_total{source="schedules", outcome="fired"})'
    )
    lag = await prom.query("sum(maintflow_scheduler_fire_lag_seconds_count)")
    assert float(fired[0]["value"][1]) > 0 and float(lag[0]["value"][1]) > 0


async def test_every_dashboard_and_alert_expression_runs_in_prometheus(watched: Watched) -> None:
    for expr in [*dashboard_expressions(), *rule_expressions()]:
        await watched.prometheus.query(expr)  # a parse error fails with Prometheus's message
    rules = await watched.prometheus.api("rules")
    health = {r["name"]: r["health"] for g in rules["groups"] for r in g["rules"]}
    assert len(health) == len(rule_expressions())

    async def evaluated() -> bool:
        rules = await watched.prometheus.api("rules")
        return all(r["health"] == "ok" for g in rules["groups"] for r in g["rules"])

    await poll_until(evaluated, 30, "every alert rule evaluated without error")


async def test_one_leader_and_the_queues_exported_by_it_alone(watched: Watched) -> None:
    prom = watched.prometheus
    leader = await watched.cluster.wait_leader()

    async def settled() -> list[dict[str, Any]] | None:
        per_queue = await prom.query("count by (queue, instance) (maintflow_queue_messages)")
        leaders = await prom.query("sum(maintflow_scheduler_is_leader)")
        one = leaders and float(leaders[0]["value"][1]) == 1
        return per_queue if one and per_queue else None

    # Only the schedulers export a leader gauge (each process exports its own role's metrics).
    replicas = await prom.query("count by (job) (maintflow_scheduler_is_leader)")
    assert [(r["metric"]["job"], r["value"][1]) for r in replicas] == [("maintflow-scheduler", "2")]

    per_queue = await poll_until(settled, 30, "one leader exporting the queues")
    assert {q["metric"]["queue"] for q in per_queue} == set(QUEUES)
    assert {q["metric"]["instance"] for q in per_queue} == {leader.url.split("//")[1]}
    standby = next(p for p in watched.cluster.schedulers if p.name != leader.name)
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"{standby.url}/metrics")).text
    assert "maintflow_scheduler_is_leader 0.0" in text
    assert "maintflow_queue_messages{" not in text


async def test_the_worker_processes_export_one_sum(watched: Watched) -> None:
    """Both worker processes create sessions; /metrics of the worker counts all of them: after a
    pause, the counter equals the sessions of this team in the database."""
    c = watched.client
    paused = await c.post(f"/v1/maintenance-schedules/{watched.schedule_id}/pause", json={})
    assert paused.status_code == 200, paused.text
    count_sql = (
        "SELECT count(*) AS n FROM sessions s JOIN batches b ON b.id = s.batch_id "
        "WHERE b.team_id = $1::uuid"
    )
    pattern = re.compile(r"^maintflow_sessions_created_total (\S+)$", re.M)

    async def agree() -> tuple[int, int] | None:
        async with httpx.AsyncClient() as client:
            text = (await client.get(f"{watched.worker.url}/metrics")).text
        exported = int(float(pattern.search(text).group(1)))  # type: ignore[union-attr]
        in_db = int((await watched.cluster.fetch(count_sql, watched.team_id))[0]["n"])
        return (exported, in_db) if exported == in_db and in_db >= 30 else None

    await poll_until(agree, 30, "the worker's counter equal to the sessions in the database")
    worker_log = watched.worker.log_text()
    assert "WorkerProcess(0)" in worker_log and "WorkerProcess(1)" in worker_log


@pytest.mark.parametrize("name", ["api", "scheduler-a", "scheduler-b", "worker"])
async def test_every_process_answers_healthz_and_readyz(watched: Watched, name: str) -> None:
    proc = watched.cluster[name]
    async with httpx.AsyncClient(base_url=proc.url, timeout=10) as client:
        assert (await client.get("/healthz")).status_code == 200
        ready = await client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json() == {"status": "ok", "database": "ok", "broker": "ok"}
    # The image's HEALTHCHECK finds it on its port.
    out = await watched.cluster.run_cli("healthcheck", "--port", str(proc.port))
    assert out == ""


async def test_a_request_id_is_kept_or_made_returned_and_logged(watched: Watched) -> None:
    c = watched.client
    given = await c.get("/v1/batches", headers={"X-Request-ID": "ticket-4711"})
    assert given.status_code == 200 and given.headers["X-Request-ID"] == "ticket-4711"
    made = await c.get(f"/v1/batches/{watched.run_now_batch}")
    assert made.status_code == 200
    made_id = made.headers["X-Request-ID"]
    assert uuid.UUID(made_id)
    missing = await c.get("/v1/no-such-path")
    assert missing.status_code == 404 and missing.headers["X-Request-ID"]

    async def logged() -> list[dict[str, Any]] | None:
        lines = [
            o
            for o in json_objects(watched.api.log_text())
            if o.get("event") == "http_request" and o.get("request_id") in {"ticket-4711", made_id}
        ]
        return lines if len(lines) == 2 else None

    lines = await poll_until(logged, 10, "two http_request lines with their request ids")
    by_id = {line["request_id"]: line for line in lines}
    assert by_id["ticket-4711"]["route"] == "/v1/batches"
    assert by_id[made_id]["route"] == "/v1/batches/{batch_id}"
    assert by_id[made_id]["batch_id"] == watched.run_now_batch
    assert all(line["team_id"] == watched.team_id and line["status"] == 200 for line in lines)


async def test_worker_log_lines_carry_the_message_and_batch_ids(watched: Watched) -> None:
    async def fanned_out() -> list[dict[str, Any]] | None:
        lines = [
            o
            for o in json_objects(watched.worker.log_text())
            if o.get("event") == "batch_fanned_out" and o.get("batch_id") == watched.run_now_batch
        ]
        return lines or None

    (line, *_) = await poll_until(fanned_out, 30, "the run-now batch's fan-out logged")
    assert line["actor"] == "fire_schedule" and len(line["message_id"]) == 36


async def test_an_api_of_several_processes_exports_their_sum(watched: Watched) -> None:
    """`maintflow api --workers 2`: whichever process answers /metrics counts every process's
    requests (prometheus-client's multiprocess mode, a fresh directory per start)."""
    port = free_port()
    api = watched.cluster.spawn(
        "api-2", "api", ["api", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"]
    )
    api.port = port
    await api.wait_http("/readyz", 60)
    headers = dict(watched.client.headers)
    no_reuse = httpx.Limits(max_keepalive_connections=0)  # a new connection, any process
    async with httpx.AsyncClient(base_url=api.url, headers=headers, limits=no_reuse) as client:
        for _ in range(20):
            assert (await client.get("/v1/flows")).status_code == 200
        series = 'maintflow_api_http_requests_total{method="GET",route="/v1/flows",status="2xx"}'
        for _ in range(5):  # any process may answer: each must see all 20
            text = (await client.get("/metrics")).text
            (line,) = [x for x in text.splitlines() if x.startswith(series)]
            assert float(line.split()[-1]) == 20
    assert watched.cluster.stop("api-2") == 0
