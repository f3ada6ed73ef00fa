"""Maintenance windows and system jobs through the running system. Distributed: the API, a
scheduler and a worker on PostgreSQL and Redis, every setting at its shipped default except the
smallest schedule interval and the system-job time limit (MAINTFLOW_SYSTEM_JOB_TIME_LIMIT_S=4,
so that a run whose worker is SIGKILLed is declared lost within seconds, not an hour): a window
opens and closes on its own, with its entries and events; an edit moving start_at earlier is
acted on within 2 s of the new instant; a manual retention run succeeds with its counts; a worker
SIGKILLed during a run leaves it failed ("worker lost") after the time limit, and the message
redelivered to another worker does not run it again. Embedded: the same window and manual run
through `maintflow dev`."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from maintflow_core.clock import SystemClock
from maintflow_core.db.session import create_engine, create_sessionmaker
from maintflow_core.settings import Settings
from tests.conftest import REDIS_URL
from tests.kit.broker import drop_namespace
from tests.kit.cluster import Cluster, cluster_env
from tests.kit.db import plain_pg_url
from tests.kit.dev import Dev, running_dev
from tests.kit.logs import assert_no_job_failures, last_json_object
from tests.kit.poll import poll_until, poll_until_sync
from tests.kit.procs import free_port
from tests.kit.seed import builtin_system_jobs

pytestmark = pytest.mark.e2e
TIME_LIMIT_S = 4
# The leader acts on a window's instant within this long (the promise), measured by the
# leader's own clock: the time of the entry it writes.
WITHIN = timedelta(seconds=2)
MANUAL = "retention_cleanup_manual"
STARTED = ("scheduled", "in_progress", "Maintenance started automatically")
COMPLETED = ("in_progress", "completed", "Maintenance completed automatically")


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def window_body(start: datetime, end: datetime) -> dict[str, Any]:
    return {
        "title": f"Core switch {uuid.uuid4().hex[:6]}",
        "start_at": start.isoformat(),
        "end_at": end.isoformat(),
        "targets": ["sw-1"],
    }


def soon(seconds: float) -> datetime:
    return SystemClock().now() + timedelta(seconds=seconds)


def automatic_entries(updates: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """Oldest first: (old, new, message) of the scheduler's entries."""
    return [
        (u["old_status"], u["new_status"], u["message"])
        for u in reversed(updates)
        if u["automatic"]
    ]


def assert_on_time(window: dict[str, Any], updates: list[dict[str, Any]]) -> None:
    at = {u["new_status"]: instant(u["created_at"]) for u in updates}
    assert at["in_progress"] - instant(window["start_at"]) <= WITHIN, (window, updates)
    assert at["completed"] - instant(window["end_at"]) <= WITHIN, (window, updates)


@dataclass
class Running:
    cluster: Cluster
    client: httpx.AsyncClient  # the team's admin

    async def ok(self, method: str, url: str, status: int = 200, **kw: Any) -> Any:
        r = await self.client.request(method, url, **kw)
        assert r.status_code == status, r.text
        return r.json()

    async def run(self, run_id: str) -> dict[str, Any]:
        return dict(await self.ok("GET", f"/v1/system-job-runs/{run_id}"))


@pytest.fixture(scope="module")
async def running(
    tmp_path_factory: pytest.TempPathFactory, database_url: str
) -> AsyncIterator[Running]:
    # Other tests empty every table, the built-in jobs included: put them back.
    engine = create_engine(Settings(database_url=database_url))
    await builtin_system_jobs(create_sessionmaker(engine), SystemClock().now())
    await engine.dispose()
    namespace = f"mftest-windows-{uuid.uuid4().hex[:10]}"
    env = cluster_env(
        database_url,
        REDIS_URL,
        namespace,
        min_schedule_interval_s=1,
        system_job_time_limit_s=TIME_LIMIT_S,
    )
    try:
        async with Cluster(tmp_path_factory.mktemp("windows"), env) as cluster:
            made = last_json_object(await cluster.run_cli("admin", "create-team", "windows"))
            api, *_ = await asyncio.gather(
                cluster.start_api(),
                cluster.start_scheduler("scheduler"),
                cluster.start_worker("w1"),
            )
            await cluster.wait_leader()
            headers = {"Authorization": f"Bearer {made['token']}"}
            async with httpx.AsyncClient(base_url=api.url, headers=headers, timeout=10) as client:
                yield Running(cluster, client)
            for proc in cluster.procs.values():
                assert_no_job_failures(proc.log_text(), proc.name)
    finally:
        drop_namespace(REDIS_URL, namespace)


async def test_a_window_opens_and_closes_on_its_own(running: Running) -> None:
    r = running
    w = await r.ok("POST", "/v1/maintenance-windows", 201, json=window_body(soon(1), soon(3)))
    url = f"/v1/maintenance-windows/{w['id']}"

    async def completed() -> dict[str, Any] | None:
        got = dict(await r.ok("GET", url))
        return got if got["status"] == "completed" else None

    await poll_until(completed, 15, "the window completed", detail=r.cluster.logs)
    updates = (await r.ok("GET", f"{url}/updates"))["items"]
    assert automatic_entries(updates) == [STARTED, COMPLETED]
    assert_on_time(w, updates)
    notes = (await r.ok("GET", "/v1/notifications"))["items"]
    mine = [n["event"] for n in reversed(notes) if (n["data"] or {}).get("window_id") == w["id"]]
    assert mine == ["window.started", "window.completed"]


async def test_an_edit_moving_the_start_earlier_is_acted_on_within_2_s(running: Running) -> None:
    r = running
    w = await r.ok("POST", "/v1/maintenance-windows", 201, json=window_body(soon(3600), soon(7200)))
    url = f"/v1/maintenance-windows/{w['id']}"
    new_start = soon(1)
    await r.ok("PATCH", url, json={"start_at": new_start.isoformat()})

    async def started() -> list[dict[str, Any]] | None:
        items: list[dict[str, Any]] = (await r.ok("GET", f"{url}/updates"))["items"]
        return items or None

    (entry,) = await poll_until(started, 10, "the window started", detail=r.cluster.logs)
    assert (entry["old_status"], entry["new_status"]) == ("scheduled", "in_progress")
    assert instant(entry["created_at"]) - new_start <= WITHIN


async def test_a_manual_retention_run_succeeds_with_its_counts(running: Running) -> None:
    r = running
    run_id = (await r.ok("POST", f"/v1/system-jobs/{MANUAL}/run", 202))["run_id"]

    async def finished() -> dict[str, Any] | None:
        run = await r.run(run_id)
        return run if run["status"] != "running" else None

    run = await poll_until(finished, 15, "the manual run finished", detail=r.cluster.logs)
    assert run["status"] == "success" and run["trigger"] == "manual", run
    assert run["result"]["retention_days"] == 90
    for kind in ("batches", "sessions", "notifications", "webhook_deliveries", "outbox"):
        assert set(run["result"][kind]) == {"deleted", "kept"}
    runs = (await r.ok("GET", "/v1/system-job-runs"))["items"]
    assert runs[0]["id"] == run_id


async def test_a_worker_sigkilled_during_a_run_leaves_it_failed_after_the_time_limit(
    running: Running,
) -> None:
    r = running
    # Hold the first table the run reads, so that the worker is mid-run when it is killed.
    blocker = await asyncpg.connect(plain_pg_url(r.cluster.env["MAINTFLOW_DATABASE_URL"]))
    try:
        tx = blocker.transaction()
        await tx.start()
        await blocker.execute("LOCK TABLE teams IN ACCESS EXCLUSIVE MODE")
        run_id = (await r.ok("POST", f"/v1/system-jobs/{MANUAL}/run", 202))["run_id"]

        async def taken_up() -> bool:
            return bool(
                await r.cluster.probe.fetchval(
                    "SELECT picked_up_at IS NOT NULL FROM system_job_runs WHERE id = $1",
                    uuid.UUID(run_id),
                )
            )

        await poll_until(taken_up, 10, "a worker took the run up", detail=r.cluster.logs)
        r.cluster.kill("w1")
        assert (await r.run(run_id))["status"] == "running"
        await tx.rollback()
    finally:
        await blocker.close()
    await r.cluster.start_worker("w2")  # where the killed worker's message is redelivered

    async def failed() -> dict[str, Any] | None:
        run = await r.run(run_id)
        return run if run["status"] != "running" else None

    run = await poll_until(
        failed, TIME_LIMIT_S + 10, "the run failed as lost", detail=r.cluster.logs
    )
    assert run["status"] == "failed"
    assert run["message"] == f"worker lost: no result within the time limit ({TIME_LIMIT_S} s)"
    notes = (await r.ok("GET", "/v1/notifications"))["items"]
    assert any(n["event"] == "system_job.failed" and n["data"]["run_id"] == run_id for n in notes)


def test_a_window_and_a_manual_run_through_maintflow_dev(tmp_path: Path) -> None:
    with running_dev(tmp_path, free_port()) as dev:
        _through_dev(dev)
    assert dev.exit_code == 0
    assert_no_job_failures(dev.proc.log_text(), "maintflow dev")


def _through_dev(dev: Dev) -> None:
    api = dev.api
    r = api.post("/v1/maintenance-windows", json=window_body(soon(1), soon(2.5)))
    assert r.status_code == 201, r.text
    w = r.json()
    url = f"/v1/maintenance-windows/{w['id']}"

    def completed() -> bool:
        return bool(api.get(url).json()["status"] == "completed")

    poll_until_sync(completed, 15, "the window completed", detail=dev.proc.tail)
    updates = api.get(f"{url}/updates").json()["items"]
    assert automatic_entries(updates) == [STARTED, COMPLETED]
    assert_on_time(w, updates)
    events = [n["event"] for n in reversed(api.get("/v1/notifications").json()["items"])]
    assert events == ["window.started", "window.completed"]
    run = api.post(f"/v1/system-jobs/{MANUAL}/run")
    assert run.status_code == 202, run.text
    run_url = f"/v1/system-job-runs/{run.json()['run_id']}"

    def finished() -> dict[str, Any] | None:
        got = api.get(run_url).json()
        return dict(got) if got["status"] != "running" else None

    done = poll_until_sync(finished, 15, "the manual run finished", detail=dev.proc.tail)
    assert done["status"] == "success" and done["result"]["teams"] >= 1, done
