"""Every route of this API: 401 without a token, 403 for a too-low role, and 404 (never data)
for another team's ids. Routes are read from the OpenAPI document, so new ones are covered."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx

from tests.conftest import TeamCtx, new_flow, new_target_list
from tests.kit.seed import local_webhook, ready_notification

ADMIN_ONLY = {
    ("POST", "/v1/users"),
    ("GET", "/v1/users"),
    ("DELETE", "/v1/users/{user_id}"),
    ("POST", "/v1/webhooks"),
    ("GET", "/v1/webhooks"),
    ("GET", "/v1/webhooks/{webhook_id}"),
    ("DELETE", "/v1/webhooks/{webhook_id}"),
    ("GET", "/v1/webhooks/{webhook_id}/deliveries"),
    ("POST", "/v1/webhooks/{webhook_id}/test"),
    ("GET", "/v1/system-jobs"),
    ("PATCH", "/v1/system-jobs/{key}"),
    ("POST", "/v1/system-jobs/{key}/run"),
    ("GET", "/v1/system-job-runs"),
    ("GET", "/v1/system-job-runs/{run_id}"),
}
# System jobs belong to the deployment, not to a team: any team's admin may read and run them.
DEPLOYMENT_WIDE = ("/v1/system-jobs", "/v1/system-job-runs")
PUBLIC = {"/healthz", "/readyz", "/metrics"}
# Marking one's notifications read is a reader's own bookkeeping: allowed to viewers.
VIEWER_WRITES = {
    ("POST", "/v1/notifications/read-all"),
    ("POST", "/v1/notifications/{notification_id}/read"),
}


async def _routes(client: httpx.AsyncClient) -> list[tuple[str, str]]:
    spec = (await client.get("/openapi.json")).json()
    return [
        (method.upper(), path)
        for path, ops in spec["paths"].items()
        for method in ops
        if path not in PUBLIC
    ]


async def _fixture_ids(t: TeamCtx) -> dict[str, str]:
    flow = await new_flow(t)
    tl = await new_target_list(t, 2)
    r = await t.req(
        "POST", "/v1/sessions/batch", json={"flow_id": flow["id"], "target_list_id": tl["id"]}
    )
    batch = r.json()
    s = await t.req(
        "POST",
        "/v1/maintenance-schedules",
        json={"flow_id": flow["id"], "cron_expression": "0 9 * * *", "target_list_id": tl["id"]},
    )
    assert s.status_code == 201, s.text
    eng = await t.req(
        "POST", "/v1/users", json={"email": f"{uuid.uuid4().hex[:6]}@x.io", "role": "viewer"}
    )
    note_id = await ready_notification(t, uuid.UUID(batch["batch_id"]))
    w = await t.req(
        "POST",
        "/v1/maintenance-windows",
        json={
            "title": "Switch upgrade",
            "start_at": "2030-01-01T00:00:00Z",
            "end_at": "2030-01-01T01:00:00Z",
        },
    )
    assert w.status_code == 201, w.text
    return {
        "key": "retention_cleanup_manual",
        "run_id": str(uuid.uuid4()),
        "window_id": w.json()["id"],
        "notification_id": str(note_id),
        "flow_id": flow["id"],
        "list_id": tl["id"],
        "batch_id": batch["batch_id"],
        "session_id": batch["sessions"][0]["id"],
        "schedule_id": s.json()["id"],
        "user_id": eng.json()["id"],
        "webhook_id": await local_webhook(t),
    }


def _fill(path: str, ids: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: ids[m.group(1)], path)


def _write(method: str) -> bool:
    return method in {"POST", "PUT", "PATCH", "DELETE"}


async def test_every_route_needs_a_token(team: TeamCtx) -> None:
    fake = {
        k: str(uuid.uuid4())
        for k in (
            "flow_id",
            "list_id",
            "batch_id",
            "session_id",
            "schedule_id",
            "user_id",
            "notification_id",
            "window_id",
            "key",
            "run_id",
            "webhook_id",
        )
    }
    routes = await _routes(team.client)
    assert len(routes) >= 20
    for method, path in routes:
        for headers in (
            {},
            {"Authorization": "Bearer mf_not-a-real-token"},
            {"Authorization": "Basic abc"},
        ):
            r = await team.client.request(method, _fill(path, fake), headers=headers, json={})
            assert r.status_code == 401, (method, path, headers, r.status_code)


async def test_viewers_cannot_write_and_engineers_cannot_administer(team: TeamCtx) -> None:
    ids = await _fixture_ids(team)
    viewer, engineer = await team.user("viewer"), await team.user("engineer")
    for method, path in await _routes(team.client):
        url = _fill(path, ids)
        if _write(method) and (method, path) not in VIEWER_WRITES:
            r = await team.req(method, url, token=viewer, json={})
            assert r.status_code == 403, (method, path, r.status_code)
        if (method, path) in ADMIN_ONLY:
            r = await team.req(method, url, token=engineer, json={})
            assert r.status_code == 403, (method, path, r.status_code)


def _snapshot_tables() -> list[str]:
    return [
        "flows",
        "target_lists",
        "batches",
        "sessions",
        "maintenance_schedules",
        "users",
        "notifications",
        "maintenance_windows",
        "maintenance_window_updates",
        "webhooks",
        "webhook_deliveries",
    ]


async def _dump(t: TeamCtx) -> dict[str, Any]:
    import sqlalchemy as sa

    out: dict[str, Any] = {}
    async with t.sessions() as db:
        for table in _snapshot_tables():
            rows = (await db.execute(sa.text(f"SELECT * FROM {table} ORDER BY id"))).all()
            out[table] = [tuple(r) for r in rows]
    return out


async def test_another_teams_ids_are_answered_as_missing(
    team: TeamCtx, other_team: TeamCtx
) -> None:
    ids = await _fixture_ids(team)
    before = await _dump(team)
    leaked = set(ids.values())
    for method, path in await _routes(team.client):
        if "{" not in path or path.startswith(DEPLOYMENT_WIDE):
            continue
        r = await other_team.req(method, _fill(path, ids), json={})
        assert r.status_code in (404, 422), (method, path, r.status_code, r.text)
        if r.status_code == 422:
            # Body validation can run first; with a valid body the answer must still be 404.
            continue
        assert not (leaked & set(re.findall(r"[0-9a-f-]{36}", r.text))), (method, path)
    assert await _dump(team) == before
    # Bodies that pass validation still see nothing of the first team.
    probes = [
        ("POST", "/v1/sessions/batch", {"flow_id": ids["flow_id"], "targets": [{"label": "x"}]}),
        (
            "POST",
            "/v1/sessions/batch",
            {"flow_id": ids["flow_id"], "from_batch_id": ids["batch_id"]},
        ),
        ("PATCH", f"/v1/sessions/{ids['session_id']}", {"status": "in_progress"}),
        ("PATCH", f"/v1/flows/{ids['flow_id']}", {"name": "stolen"}),
        ("PUT", f"/v1/target-lists/{ids['list_id']}", {"name": "n", "targets": [{"label": "x"}]}),
        ("PATCH", f"/v1/maintenance-schedules/{ids['schedule_id']}", {"misfire_policy": "skip"}),
        ("POST", f"/v1/maintenance-schedules/{ids['schedule_id']}/pause", {"reason": "x"}),
        ("PATCH", f"/v1/maintenance-windows/{ids['window_id']}", {"title": "stolen"}),
        ("POST", f"/v1/maintenance-windows/{ids['window_id']}/updates", {"message": "x"}),
    ]
    for method, url, body in probes:
        r = await other_team.req(method, url, json=body)
        assert r.status_code == 404, (method, url, r.status_code, r.text)
    assert await _dump(team) == before
    lists = [
        "/v1/flows",
        "/v1/target-lists",
        "/v1/sessions",
        "/v1/batches",
        "/v1/maintenance-schedules",
        "/v1/maintenance-windows",
    ]
    for url in lists:
        assert (await other_team.req("GET", url)).json()["items"] == [], url


async def test_read_all_marks_only_the_callers_team(team: TeamCtx, other_team: TeamCtx) -> None:
    await _fixture_ids(team)
    assert (await other_team.req("POST", "/v1/notifications/read-all")).json() == {"marked": 0}
    unread = await team.req("GET", "/v1/notifications", params={"unread": True})
    assert len(unread.json()["items"]) == 1
    viewer = await team.user("viewer")
    assert (await team.req("POST", "/v1/notifications/read-all", token=viewer)).json() == {
        "marked": 1
    }
    assert (await team.req("GET", "/v1/notifications", params={"unread": True})).json()[
        "items"
    ] == []
