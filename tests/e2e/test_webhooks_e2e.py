"""Webhooks through the running system, to real receivers on 127.0.0.1: the distributed processes
(API, scheduler, worker on PostgreSQL and Redis) and `maintflow dev`. Private targets are
allowed (the receivers are local), and, in the distributed cluster only, the attempt timeout and
the backoff are short so that retries and a lost worker's re-drive happen within seconds; every
other setting is at its shipped default.

A session.failed from a session PATCH and a ping from the test route reach a receiver that
verifies them with the `standardwebhooks` package; a receiver failing twice gets the same
webhook-id three times; a worker SIGKILLed while a request is in flight: the event is still
delivered, with the same webhook-id."""

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
from tests.kit.dev import created, running_dev
from tests.kit.logs import assert_no_job_failures, json_objects, last_json_object
from tests.kit.poll import poll_until, poll_until_sync
from tests.kit.procs import free_port
from tests.kit.webhook_receiver import HANG, Receiver

pytestmark = pytest.mark.e2e
STEPS = [{"id": "end", "type": "procedure_end", "title": "Done"}]
DEADLINE_S = 30  # generous for a loaded box; nothing here is timed


@dataclass
class Running:
    cluster: Cluster
    client: httpx.AsyncClient

    async def register(self, url: str, events: list[str]) -> dict[str, Any]:
        r = await self.client.post("/v1/webhooks", json={"url": url, "events": events})
        assert r.status_code == 201, r.text
        return dict(r.json())

    async def deliveries(self, hook: dict[str, Any]) -> list[dict[str, Any]]:
        """The webhook's deliveries once each has succeeded (a receiver has the request
        before the worker has recorded its answer)."""

        async def recorded() -> list[dict[str, Any]] | None:
            r = await self.client.get(f"/v1/webhooks/{hook['id']}/deliveries")
            assert r.status_code == 200, r.text
            items = list(r.json()["items"])
            return items if {d["status"] for d in items} == {"succeeded"} else None

        found: list[dict[str, Any]] = await poll_until(recorded, DEADLINE_S, "recorded")
        return found

    async def fail_a_session(self) -> None:
        """A batch of one session launched by hand, then that session failed: session.failed
        (and batch.completed) raised in the PATCH's transaction."""
        flow = await self.client.post(
            "/v1/flows", json={"name": "Patch", "flow_type": "maintenance", "steps": STEPS}
        )
        batch = await self.client.post(
            "/v1/sessions/batch", json={"flow_id": flow.json()["id"], "targets": [{"label": "h"}]}
        )
        assert batch.status_code == 201, batch.text
        (session,) = batch.json()["sessions"]
        for status in ("in_progress", "failed"):
            r = await self.client.patch(f"/v1/sessions/{session['id']}", json={"status": status})
            assert r.status_code == 200, r.text


@pytest.fixture(scope="module")
async def running(
    tmp_path_factory: pytest.TempPathFactory, database_url: str
) -> AsyncIterator[Running]:
    namespace = f"mftest-webhooks-{uuid.uuid4().hex[:10]}"
    env = cluster_env(
        database_url,
        REDIS_URL,
        namespace,
        min_schedule_interval_s=1,
        webhook_allow_private="true",
        webhook_timeout_s=2,
        webhook_backoff_base_s=0.2,
        webhook_backoff_max_s=0.5,
    )
    try:
        async with Cluster(tmp_path_factory.mktemp("webhooks"), env) as cluster:
            made = last_json_object(await cluster.run_cli("admin", "create-team", "hooks"))
            api, *_ = await asyncio.gather(
                cluster.start_api(),
                cluster.start_scheduler("scheduler"),
                cluster.start_worker("worker-1", threads=2),
            )
            await cluster.wait_leader()
            headers = {"Authorization": f"Bearer {made['token']}"}
            async with httpx.AsyncClient(base_url=api.url, headers=headers, timeout=10) as client:
                yield Running(cluster, client)
            cluster.assert_no_job_failures("api", "scheduler")
    finally:
        drop_namespace(REDIS_URL, namespace)


async def test_events_and_pings_reach_receivers_that_verify_them_and_failures_are_retried(
    running: Running,
) -> None:
    with Receiver() as receiver, Receiver(answers=[500, 502]) as flaky:
        hook = await running.register(receiver.url, ["session.failed"])
        flaky_hook = await running.register(flaky.url, ["session.failed"])
        await running.fail_a_session()
        ping = (await running.client.post(f"/v1/webhooks/{hook['id']}/test")).json()

        await poll_until(lambda: receiver.count() == 2, DEADLINE_S, "session.failed and ping")
        await poll_until(lambda: flaky.count(200) == 1, DEADLINE_S, "the third attempt")
        payloads = receiver.verified(hook["secret"])
        flaky_payloads = flaky.verified(flaky_hook["secret"])
        flaky_ids = {r.webhook_id for r in flaky.received()}
    assert sorted(p["type"] for p in payloads) == ["ping", "session.failed"]
    assert ping["message_id"] in {r.webhook_id for r in receiver.received()}
    assert len(flaky_payloads) == 3 and len(flaky_ids) == 1
    (delivery,) = await running.deliveries(flaky_hook)
    assert delivery["message_id"] in flaky_ids
    assert [a["status_code"] for a in delivery["attempt_log"]] == [500, 502, 200]
    # The failed attempts are logged by the worker with the message's delivery ids.
    failed = [
        o
        for o in json_objects(running.cluster["worker-1"].log_text())
        if o.get("event") == "webhook_attempt_failed" and o.get("delivery_id") == delivery["id"]
    ]
    assert [o["status_code"] for o in failed] == [500, 502]
    assert all(delivery["id"] in o["delivery_ids"] for o in failed)
    assert all(o["actor"] == "deliver_webhooks" and "batch_id" not in o for o in failed)


async def test_a_worker_sigkilled_mid_delivery_still_delivers_with_the_same_webhook_id(
    running: Running,
) -> None:
    with Receiver(answers=[HANG]) as receiver:
        hook = await running.register(receiver.url, ["session.failed"])
        await running.client.post(f"/v1/webhooks/{hook['id']}/test")
        await poll_until(lambda: receiver.count() == 1, DEADLINE_S, "the request in flight")
        running.cluster.kill("worker-1")  # SIGKILL to its whole process group
        receiver.release()
        await running.cluster.start_worker("worker-2", threads=2)
        await poll_until(lambda: receiver.count(200) == 1, DEADLINE_S, "the delivery, again")
        receiver.verified(hook["secret"])
        first, second = receiver.received()
    assert first.webhook_id == second.webhook_id
    assert first.answered == HANG and second.answered == 200
    (delivery,) = await running.deliveries(hook)
    assert delivery["attempts"] == 2
    lost, made = delivery["attempt_log"]
    assert lost["status_code"] is None and "worker stopped" in lost["error"]
    assert made["status_code"] == 200


async def test_webhook_traffic_can_have_workers_of_its_own(running: Running) -> None:
    """`maintflow worker --queues webhooks` beside `--queues fanout sessions system`: the
    deliveries go to the first, nothing of them to the second."""
    cluster = running.cluster
    for proc in [p for p in cluster.procs.values() if p.role == "worker" and p.alive]:
        cluster.stop(proc.name)
    others, hooks = await asyncio.gather(
        cluster.start_worker("others", threads=2, queues=["fanout", "sessions", "system"]),
        cluster.start_worker("hooks-only", threads=2, queues=["webhooks"]),
    )
    with Receiver(answers=[500]) as receiver:
        hook = await running.register(receiver.url, ["session.failed"])
        await running.fail_a_session()
        await poll_until(lambda: receiver.count(200) == 1, DEADLINE_S, "the retried delivery")
    (delivery,) = await running.deliveries(hook)
    assert [a["status_code"] for a in delivery["attempt_log"]] == [500, 200]

    def failed_attempts(proc: Any) -> list[dict[str, Any]]:
        return [
            o
            for o in json_objects(proc.log_text())
            if o.get("event") == "webhook_attempt_failed" and o.get("delivery_id") == delivery["id"]
        ]

    assert len(failed_attempts(hooks)) == 1 and failed_attempts(others) == []


def test_a_session_failed_and_a_ping_reach_a_receiver_through_maintflow_dev(
    tmp_path: Path,
) -> None:
    env = {"MAINTFLOW_WEBHOOK_ALLOW_PRIVATE": "true"}
    with Receiver() as receiver, running_dev(tmp_path, free_port(), env) as dev:
        api = dev.api
        hook = created(
            api.post("/v1/webhooks", json={"url": receiver.url, "events": ["session.failed"]})
        )
        flow = created(
            api.post("/v1/flows", json={"name": "P", "flow_type": "maintenance", "steps": STEPS})
        )
        batch = created(
            api.post(
                "/v1/sessions/batch", json={"flow_id": flow["id"], "targets": [{"label": "h"}]}
            )
        )
        session_id = batch["sessions"][0]["id"]
        for status in ("in_progress", "failed"):
            assert api.patch(f"/v1/sessions/{session_id}", json={"status": status}).is_success
        assert api.post(f"/v1/webhooks/{hook['id']}/test").status_code == 202
        poll_until_sync(lambda: receiver.count() == 2, DEADLINE_S, "both", detail=dev.proc.tail)
        payloads = receiver.verified(hook["secret"])
        assert sorted(p["type"] for p in payloads) == ["ping", "session.failed"]

        def recorded() -> bool:
            items = api.get(f"/v1/webhooks/{hook['id']}/deliveries").json()["items"]
            return len(items) == 2 and {d["status"] for d in items} == {"succeeded"}

        poll_until_sync(recorded, DEADLINE_S, "both recorded as succeeded", detail=dev.proc.tail)
    assert dev.exit_code == 0
    assert_no_job_failures(dev.proc.log_text(), "maintflow dev")
