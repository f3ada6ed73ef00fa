"""`maintflow dev` shows itself like the distributed processes do, on its one port: /metrics
carries the API's, the scheduler's and the workers' metrics (one process), /healthz and /readyz
answer, a request id is kept or made and returned, and its log is readable text, not JSON."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest

from tests.kit.dev import Dev, new_schedule, running_dev
from tests.kit.logs import json_objects
from tests.kit.poll import poll_until_sync
from tests.kit.procs import free_port

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dev]:
    with running_dev(tmp_path_factory.mktemp("dev"), free_port()) as running:
        yield running
    assert running.exit_code == 0, running.proc.tail()


def sample(text: str, series: str) -> float:
    match = re.search(rf"^{re.escape(series)} (\S+)$", text, re.M)
    assert match, f"{series} not in /metrics"
    return float(match.group(1))


def test_metrics_of_every_role_on_the_one_port(dev: Dev) -> None:
    _flow, _hosts, schedule = new_schedule(dev.api, "Metrics", [f"m-{i}" for i in range(5)])
    run = dev.api.post(f"/v1/maintenance-schedules/{schedule['id']}/run-now")
    assert run.status_code == 202, run.text

    ready = 'maintflow_notifications_total{event="batch.ready"}'

    def counted() -> str | None:
        text = dev.api.get("/metrics").text
        done = sample(text, "maintflow_sessions_created_total") >= 5 and sample(text, ready) >= 1
        return text if done else None

    text = poll_until_sync(counted, 30, "5 sessions and the batch's notification in /metrics")
    assert sample(text, "maintflow_scheduler_is_leader") == 1
    assert 'maintflow_api_http_requests_total{method="POST",route="/v1/flows",status="2xx"}' in text
    for path in ("/healthz", "/readyz"):
        assert dev.api.get(path).status_code == 200


def test_a_request_id_is_kept_or_made_and_the_log_is_text(dev: Dev) -> None:
    kept = dev.api.get("/v1/flows", headers={"X-Request-ID": "dev-req-1"})
    assert kept.headers["X-Request-ID"] == "dev-req-1"
    made = dev.api.get("/v1/flows")
    assert uuid.UUID(made.headers["X-Request-ID"])
    assert not json_objects(dev.proc.own_log())
