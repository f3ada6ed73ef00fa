"""Issue 9's schedule switch and guards on related records, through a running `maintflow dev`
(SQLite, in-memory broker, its own scheduler) driven over HTTP only: PATCH is_active stops and
restarts the fires of a seconds schedule, a one-off schedule fires exactly once, and each guard
answers with its status code and names what is in the way."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.kit.dev import Dev, created, running_dev
from tests.kit.logs import assert_no_job_failures
from tests.kit.poll import poll_until_sync
from tests.kit.procs import free_port

pytestmark = pytest.mark.e2e
STEPS = [
    {"id": "s", "type": "procedure_step", "title": "Patch"},
    {"id": "e", "type": "procedure_end", "title": "Done"},
]
EVERY_2_S = "* * * * * */2"  # the seconds field comes 6th, as the API reads it
SCHEDULES = "/v1/maintenance-schedules"


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dev]:
    """One `maintflow dev` for the module (with MAINTFLOW_MIN_SCHEDULE_INTERVAL_S=1); each test
    makes its own flows, lists and schedules."""
    with running_dev(tmp_path_factory.mktemp("dev"), free_port()) as running:
        yield running
    assert running.exit_code == 0, running.proc.tail()
    assert_no_job_failures(running.proc.log_text(), "maintflow dev")


def _flow(dev: Dev, name: str) -> dict[str, Any]:
    body = {"name": name, "flow_type": "maintenance", "steps": STEPS}
    return created(dev.api.post("/v1/flows", json=body))


def _list(dev: Dev, name: str, *labels: str) -> dict[str, Any]:
    targets = [{"label": label} for label in labels]
    return created(dev.api.post("/v1/target-lists", json={"name": name, "targets": targets}))


def _schedule(dev: Dev, **body: Any) -> dict[str, Any]:
    return created(dev.api.post(SCHEDULES, json=body))


def _ok(r: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert r.status_code == status, r.text
    return dict(r.json())


def _fired(dev: Dev, schedule_id: str) -> list[dict[str, Any]]:
    """The schedule's fired batches, oldest first (through the API's own filters)."""
    params = {"schedule_id": schedule_id, "trigger": "schedule", "limit": 500}
    return list(reversed(_ok(dev.api.get("/v1/batches", params=params))["items"]))


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _stays(check: Callable[[], None], seconds: float) -> None:
    """`check` passes at every look for `seconds` (proving that nothing happens takes a window;
    it is polled, so a change is caught as soon as it shows)."""
    ends = time.monotonic() + seconds
    while time.monotonic() < ends:
        check()
        time.sleep(0.25)
    check()


def test_patch_is_active_false_stops_the_fires_and_true_fires_again_from_now(dev: Dev) -> None:
    flow = _flow(dev, "Rotate certs")
    tl = _list(dev, "web", "web-1", "web-2")
    s = _schedule(dev, flow_id=flow["id"], target_list_id=tl["id"], cron_expression=EVERY_2_S)
    url = f"{SCHEDULES}/{s['id']}"
    poll_until_sync(lambda: _fired(dev, s["id"]), 20, "a first fire", detail=dev.proc.tail)

    off = _ok(dev.api.patch(url, json={"is_active": False}))
    assert off["is_active"] is False and off["paused_reason"] is None
    assert _ok(dev.api.get(url))["is_active"] is False
    # Committed before the answer: every fire the scheduler makes from here on would be new.
    before = [b["batch_id"] for b in _fired(dev, s["id"])]
    last_run_at = _ok(dev.api.get(url))["last_run_at"]

    def nothing_fires() -> None:
        assert [b["batch_id"] for b in _fired(dev, s["id"])] == before
        assert _ok(dev.api.get(url))["last_run_at"] == last_run_at

    _stays(nothing_fires, 5)  # 2.5 periods of the rule

    asked_at = datetime.now(UTC)
    on = _ok(dev.api.patch(url, json={"is_active": True}))
    answered_at = datetime.now(UTC)
    assert on["is_active"] is True and on["paused_at"] is None
    next_run_at = _instant(on["next_run_at"])
    # Recomputed from now: the next 2-second instant, not one of those skipped while disabled.
    assert asked_at < next_run_at <= answered_at + timedelta(seconds=2)
    assert _ok(dev.api.get(url))["next_run_at"] == on["next_run_at"]

    def fired_again() -> list[dict[str, Any]]:
        return _fired(dev, s["id"])[len(before) :]

    new = poll_until_sync(fired_again, 20, "a fire after the resume", detail=dev.proc.tail)
    assert _instant(new[0]["scheduled_for"]) == next_run_at
    assert _ok(dev.api.patch(url, json={"is_active": False}))["is_active"] is False


def test_a_one_off_schedule_fires_exactly_once_at_run_at(dev: Dev) -> None:
    tl = _list(dev, "db", "db-1")
    # Far enough ahead for the requests below to be made before it, even on a busy machine.
    run_at = (datetime.now(UTC) + timedelta(seconds=8)).replace(microsecond=0)
    once = {"type": "once", "run_at": run_at.isoformat()}
    first = _schedule(
        dev, flow_id=_flow(dev, "Once")["id"], target_list_id=tl["id"], recurrence=once
    )
    assert len(first["cron_expression"].split()) in (5, 6)
    # The cron it answers with, the API takes, and it means the same: one fire, at run_at.
    copy = {k: first[k] for k in ("cron_expression", "timezone", "start_at", "end_at")}
    second = _schedule(dev, flow_id=_flow(dev, "Copy")["id"], target_list_id=tl["id"], **copy)
    assert second["next_run_at"] == first["next_run_at"]
    assert _instant(first["next_run_at"]) == run_at
    for s in (first, second):
        poll_until_sync(lambda s=s: _fired(dev, s["id"]), 20, "the fire", detail=dev.proc.tail)

    def once_only() -> None:
        for s in (first, second):
            (batch,) = _fired(dev, s["id"])
            assert _instant(batch["scheduled_for"]) == run_at
            got = _ok(dev.api.get(f"{SCHEDULES}/{s['id']}"))
            assert got["next_run_at"] is None and _instant(got["last_run_at"]) == run_at

    _stays(once_only, 3)

    naive = {"type": "once", "run_at": run_at.replace(tzinfo=None).isoformat()}
    r = dev.api.post(SCHEDULES, json={"flow_id": _flow(dev, "Naive")["id"], "recurrence": naive})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "run_at", r.text


def test_each_guard_answers_with_its_status_and_names_what_is_in_the_way(dev: Dev) -> None:
    flow = _flow(dev, "Patch RDS")
    tl = _list(dev, "rds", "rds-1", "rds-2")
    s = _schedule(dev, flow_id=flow["id"], target_list_id=tl["id"], cron_expression="0 3 * * *")

    r = dev.api.patch(f"/v1/flows/{flow['id']}", json={"flow_type": "procedural"})
    assert r.status_code == 409 and s["id"] in r.json()["detail"], r.text
    assert _ok(dev.api.get(f"/v1/flows/{flow['id']}"))["flow_type"] == "maintenance"

    r = dev.api.delete(f"/v1/target-lists/{tl['id']}")
    assert r.status_code == 409 and s["id"] in r.json()["detail"], r.text
    _ok(dev.api.patch(f"{SCHEDULES}/{s['id']}", json={"target_list_id": None}))
    assert dev.api.delete(f"/v1/target-lists/{tl['id']}").status_code == 204

    body = {"flow_id": flow["id"], "targets": [{"label": "rds-1"}]}
    key = {"Idempotency-Key": "e2e-launch"}
    launched = _ok(dev.api.post("/v1/sessions/batch", json=body, headers=key), 201)
    other = {**body, "targets": [{"label": "rds-2"}]}
    r = dev.api.post("/v1/sessions/batch", json=other, headers=key)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == ["header", "Idempotency-Key"]
    assert _ok(dev.api.post("/v1/sessions/batch", json=body, headers=key), 201) == launched

    for url, params, name in [
        ("/v1/batches", {"sort": "created_at"}, "sort"),
        ("/v1/sessions", {"trigger": "manual"}, "trigger"),
        ("/v1/batches", {"created_afer": "2026-01-01T00:00:00Z"}, "created_afer"),
    ]:
        r = dev.api.get(url, params=params)
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", name], r.text
    # The filters a client asked for.
    mine = {"flow_id": flow["id"]}
    manual = _ok(dev.api.get("/v1/batches", params={**mine, "trigger": "manual"}))["items"]
    assert [b["batch_id"] for b in manual] == [launched["batch_id"]]
    created_at = manual[0]["created_at"]
    assert (
        _ok(dev.api.get("/v1/batches", params={**mine, "created_after": created_at}))["items"] == []
    )
    later = {**mine, "created_before": (datetime.now(UTC) + timedelta(minutes=1)).isoformat()}
    assert len(_ok(dev.api.get("/v1/batches", params=later))["items"]) == 1
    sessions = _ok(dev.api.get("/v1/sessions", params={**mine, "target_label": "rds-1"}))
    assert [x["target_label"] for x in sessions["items"]] == ["rds-1"]
