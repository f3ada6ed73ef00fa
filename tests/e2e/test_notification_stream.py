"""The live notification stream through the running distributed system: two API processes, a
scheduler and a worker on PostgreSQL and Redis, every setting at its shipped default except the
smallest schedule interval. A notification committed by the worker (a run-now's batch.ready)
reaches a client of the team on each API process; one committed by a session PATCH on one API
process reaches the client on the other; another team's client receives nothing; a client that
disconnected resumes with Last-Event-ID without loss or repetition; no token is 401. And the
same through `maintflow dev` (SQLite, workers in the API's process)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import REDIS_URL
from tests.kit.broker import drop_namespace
from tests.kit.cluster import Cluster, cluster_env
from tests.kit.dev import ONE_STEP, new_schedule, running_dev
from tests.kit.logs import assert_no_job_failures, last_json_object
from tests.kit.procs import Proc, free_port
from tests.kit.sse import StreamReader, stream_status

pytestmark = pytest.mark.e2e
# Generous for a loaded CI box; the 1 s target is measured in bench/stream_fanout.py.
DEADLINE_S = 10


@dataclass
class Team:
    token: str
    client: httpx.AsyncClient  # the team's admin, on the first API process


@dataclass
class Running:
    cluster: Cluster
    apis: list[Proc]
    teams: list[Team]

    async def run_now(self, team: Team, labels: list[str]) -> dict[str, Any]:
        """A schedule of a new flow on a new list, run now: the worker fans it out and commits
        its batch.ready. The answer (`batch_id`)."""
        flow = await team.client.post(
            "/v1/flows", json={"name": "Patch", "flow_type": "maintenance", "steps": ONE_STEP}
        )
        hosts = await team.client.post(
            "/v1/target-lists",
            json={
                "name": f"hosts {uuid.uuid4().hex[:8]}",
                "targets": [{"label": label} for label in labels],
            },
        )
        schedule = await team.client.post(
            "/v1/maintenance-schedules",
            json={
                "flow_id": flow.json()["id"],
                "target_list_id": hosts.json()["id"],
                "cron_expression": "0 3 * * *",
            },
        )
        assert schedule.status_code == 201, schedule.text
        answer = await team.client.post(
            f"/v1/maintenance-schedules/{schedule.json()['id']}/run-now"
        )
        assert answer.status_code == 202, answer.text
        return dict(answer.json())


@pytest.fixture(scope="module")
async def running(
    tmp_path_factory: pytest.TempPathFactory, database_url: str
) -> AsyncIterator[Running]:
    namespace = f"mftest-stream-{uuid.uuid4().hex[:10]}"
    env = cluster_env(database_url, REDIS_URL, namespace, min_schedule_interval_s=1)
    try:
        async with Cluster(tmp_path_factory.mktemp("stream"), env) as cluster:
            made = [
                last_json_object(await cluster.run_cli("admin", "create-team", n)) for n in "AB"
            ]
            apis = await asyncio.gather(cluster.start_api("api-1"), cluster.start_api("api-2"))
            await asyncio.gather(cluster.start_scheduler("scheduler"), cluster.start_worker("w"))
            await cluster.wait_leader()
            clients = [
                httpx.AsyncClient(
                    base_url=apis[0].url,
                    headers={"Authorization": f"Bearer {m['token']}"},
                    timeout=10,
                )
                for m in made
            ]
            try:
                teams = [Team(m["token"], c) for m, c in zip(made, clients, strict=True)]
                yield Running(cluster, list(apis), teams)
            finally:
                for c in clients:
                    await c.aclose()
            for proc in cluster.procs.values():
                assert_no_job_failures(proc.log_text(), proc.name)
    finally:
        drop_namespace(REDIS_URL, namespace)


async def test_a_workers_notification_reaches_the_team_on_every_api_process_and_no_other_team(
    running: Running,
) -> None:
    alpha, bravo = running.teams
    one, two = running.apis
    async with (
        StreamReader(one.url, alpha.token) as on_one,
        StreamReader(two.url, alpha.token) as on_two,
        StreamReader(two.url, bravo.token) as other_team,
    ):
        launched = await running.run_now(alpha, ["web-1", "web-2"])
        for reader in (on_one, on_two):
            (ready,) = await reader.wait_for(1, DEADLINE_S, "batch.ready on each API process")
            assert ready.event == "batch.ready"
            assert reader.data()[0]["batch_id"] == launched["batch_id"]

        # A PATCH served by the first process; its notifications reach the second one's client.
        batch = (await alpha.client.get(f"/v1/batches/{launched['batch_id']}")).json()
        for session in batch["sessions"]:
            for status in ("in_progress", "failed"):
                r = await alpha.client.patch(
                    f"/v1/sessions/{session['id']}", json={"status": status}
                )
                assert r.status_code == 200, r.text
        for reader in (on_one, on_two):
            await reader.wait_for(4, DEADLINE_S, "two session.failed and one batch.completed")
            assert [e.event for e in reader.received] == [
                "batch.ready",
                "session.failed",
                "session.failed",
                "batch.completed",
            ]
            assert len({e.id for e in reader.received}) == 4
        assert [e.id for e in on_one.received] == [e.id for e in on_two.received]
        assert other_team.received == []
        assert not other_team.ended


async def test_a_client_that_disconnected_resumes_after_its_last_event_without_loss_or_repeat(
    running: Running,
) -> None:
    alpha = running.teams[0]
    one, two = running.apis
    async with StreamReader(one.url, alpha.token) as first:
        launched = await running.run_now(alpha, ["db-1", "db-2", "db-3"])
        (ready,) = await first.wait_for(1, DEADLINE_S, "batch.ready")
    # Disconnected. Meanwhile: two sessions fail, the last is cancelled.
    batch = (await alpha.client.get(f"/v1/batches/{launched['batch_id']}")).json()
    for session, statuses in zip(
        batch["sessions"], [("in_progress", "failed")] * 2 + [("cancelled",)], strict=True
    ):
        for status in statuses:
            r = await alpha.client.patch(f"/v1/sessions/{session['id']}", json={"status": status})
            assert r.status_code == 200, r.text
    missed = (await alpha.client.get("/v1/notifications", params={"limit": 500})).json()["items"]
    missed_ids = [n["id"] for n in missed if n["batch_id"] == launched["batch_id"]][::-1]
    assert missed_ids[0] == ready.id and len(missed_ids) == 4

    # Back, on the other process, from the last message it received.
    async with StreamReader(two.url, alpha.token, last_event_id=ready.id) as resumed:
        await resumed.wait_for(3, DEADLINE_S, "the three it missed")
        more = await running.run_now(alpha, ["db-4"])
        await resumed.wait_for(4, DEADLINE_S, "then the next batch.ready, live")
        assert [e.id for e in resumed.received[:3]] == missed_ids[1:]
        assert [e.event for e in resumed.received] == [
            "session.failed",
            "session.failed",
            "batch.completed",
            "batch.ready",
        ]
        assert resumed.data()[3]["batch_id"] == more["batch_id"]
        assert resumed.data()[2]["data"]["status_counts"]["cancelled"] == 1


async def test_a_stream_is_refused_without_a_valid_token_and_a_viewer_may_read(
    running: Running,
) -> None:
    api = running.apis[0]
    for headers in ({}, {"Authorization": "Bearer mf_not-a-real-token"}):
        refused = await stream_status(api.url, headers)
        assert refused.status_code == 401, refused.text
    viewer = await running.teams[0].client.post(
        "/v1/users", json={"email": "watcher@example.com", "role": "viewer"}
    )
    assert viewer.status_code == 201, viewer.text
    async with StreamReader(api.url, viewer.json()["token"]) as reader:
        assert reader.received == []


async def test_the_embedded_mode_streams_its_workers_and_its_requests_notifications(
    tmp_path: Path,
) -> None:
    """`maintflow dev`: the run-now's batch.ready is committed by a worker thread of the same
    process, the batch.completed by a PATCH; both reach the stream."""
    with running_dev(tmp_path, free_port()) as dev:
        api = dev.api
        _flow, _hosts, schedule = new_schedule(api, "Rotate", ["h-1"], list_name="h")
        base = str(api.base_url).rstrip("/")
        async with StreamReader(base, dev.token) as reader:
            run = api.post(f"/v1/maintenance-schedules/{schedule['id']}/run-now")
            assert run.status_code == 202, run.text
            (ready,) = await reader.wait_for(1, DEADLINE_S, "batch.ready from the worker")
            assert ready.event == "batch.ready"
            batch = api.get(f"/v1/batches/{run.json()['batch_id']}").json()
            (session,) = batch["sessions"]
            for status in ("in_progress", "completed"):
                assert api.patch(
                    f"/v1/sessions/{session['id']}", json={"status": status}
                ).is_success
            await reader.wait_for(2, DEADLINE_S, "batch.completed from the PATCH")
            assert [e.event for e in reader.received] == ["batch.ready", "batch.completed"]
            assert reader.data()[1]["data"]["status_counts"]["completed"] == 1
    assert dev.exit_code == 0
    assert_no_job_failures(dev.proc.log_text(), "maintflow dev")
