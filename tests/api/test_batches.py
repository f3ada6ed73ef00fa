from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import sqlalchemy as sa

from tests.conftest import TeamCtx, new_flow, new_target_list
from tests.kit.seed import created

SCHEDULES = "/v1/maintenance-schedules"


async def _launch(t: TeamCtx, **body: object) -> dict[str, object]:
    r = await t.req("POST", "/v1/sessions/batch", json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def test_launch_from_a_saved_list_and_read_zero_of_three(team: TeamCtx) -> None:
    flow = await new_flow(team)
    tl = await new_target_list(team, 3)
    launched = await _launch(team, flow_id=flow["id"], target_list_id=tl["id"])
    assert launched["count"] == 3
    sessions = launched["sessions"]
    assert isinstance(sessions, list)
    assert {s["status"] for s in sessions} == {"pending"}
    batch = (await team.req("GET", f"/v1/batches/{launched['batch_id']}")).json()
    assert batch["progress"] == "0/3"
    assert batch["trigger"] == "manual"
    assert batch["status_counts"] == {
        "pending": 3,
        "in_progress": 0,
        "completed": 0,
        "failed": 0,
        "cancelled": 0,
    }
    assert len(batch["sessions"]) == 3
    used = (await team.req("GET", f"/v1/target-lists/{tl['id']}")).json()
    assert used["last_used_at"] is not None


async def test_each_session_snapshots_the_flow_steps(team: TeamCtx) -> None:
    flow = await new_flow(team)
    launched = await _launch(team, flow_id=flow["id"], targets=[{"label": "web-1", "notes": "n"}])
    sid = launched["sessions"][0]["id"]  # type: ignore[index]
    await team.req(
        "PATCH",
        f"/v1/flows/{flow['id']}",
        json={"steps": [{"id": "only", "type": "procedure_end", "title": "Changed"}]},
    )
    session = (await team.req("GET", f"/v1/sessions/{sid}")).json()
    assert [s["id"] for s in session["steps"]] == ["s1", "s2", "end"]
    assert session["target_notes"] == "n"


async def test_launch_from_a_previous_batch_copies_its_targets(team: TeamCtx) -> None:
    flow = await new_flow(team)
    first = await _launch(team, flow_id=flow["id"], targets=[{"label": "a"}, {"label": "b"}])
    second = await _launch(team, flow_id=flow["id"], from_batch_id=first["batch_id"])
    assert sorted(s["target_label"] for s in second["sessions"]) == ["a", "b"]  # type: ignore[union-attr]


async def test_launch_rules(team: TeamCtx) -> None:
    flow = await new_flow(team)
    proc = await new_flow(team, "procedural", "Onboard")
    tl = await new_target_list(team, 2)
    bad = [
        ({"flow_id": flow["id"]}, 422),
        ({"flow_id": flow["id"], "targets": []}, 422),
        ({"flow_id": flow["id"], "targets": [{"label": "a"}], "target_list_id": tl["id"]}, 422),
        ({"flow_id": flow["id"], "targets": [{"label": "a"}, {"label": "a"}]}, 422),
        ({"flow_id": "not-a-uuid", "targets": [{"label": "a"}]}, 422),
        ({"flow_id": proc["id"], "targets": [{"label": "a"}]}, 400),
        ({"flow_id": "00000000-0000-0000-0000-000000000000", "targets": [{"label": "a"}]}, 404),
        ({"flow_id": flow["id"], "target_list_id": "00000000-0000-0000-0000-000000000000"}, 404),
    ]
    for body, status in bad:
        r = await team.req("POST", "/v1/sessions/batch", json=body)
        assert r.status_code == status, (body, r.text)
    async with team.sessions() as db:
        assert await db.scalar(sa.text("SELECT count(*) FROM batches")) == 0


async def test_ten_thousand_targets_in_one_request(team: TeamCtx) -> None:
    flow = await new_flow(team)
    targets = [{"label": f"host-{i:05d}"} for i in range(10_000)]
    launched = await _launch(team, flow_id=flow["id"], targets=targets)
    assert launched["count"] == 10_000
    async with team.sessions() as db:
        n = await db.scalar(
            sa.text("SELECT count(*) FROM sessions WHERE batch_id = :b"),
            {"b": launched["batch_id"]},
        )
    assert n == 10_000


async def test_idempotency_key_returns_the_first_response(team: TeamCtx) -> None:
    flow = await new_flow(team)
    body = {"flow_id": flow["id"], "targets": [{"label": "a"}]}
    headers = {"Idempotency-Key": "launch-1"}
    first = await team.req("POST", "/v1/sessions/batch", json=body, headers=headers)
    again = await team.req("POST", "/v1/sessions/batch", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    async with team.sessions() as db:
        assert await db.scalar(sa.text("SELECT count(*) FROM batches")) == 1


async def test_an_idempotency_key_used_with_another_body_is_refused(team: TeamCtx) -> None:
    flow = await new_flow(team)
    body = {"flow_id": flow["id"], "targets": [{"label": "a"}], "intake": {"x": 1, "y": 2}}
    headers = {"Idempotency-Key": "launch-1"}
    first = await team.req("POST", "/v1/sessions/batch", json=body, headers=headers)
    assert first.status_code == 201, first.text
    other = {**body, "targets": [{"label": "b"}]}
    r = await team.req("POST", "/v1/sessions/batch", json=other, headers=headers)
    assert r.status_code == 422, r.text
    (error,) = r.json()["detail"]
    assert error["loc"] == ["header", "Idempotency-Key"] and "another request" in error["msg"]
    # The same request written another way (key order, spacing, a default spelt out) is the same.
    same = json.dumps(
        {
            "intake": {"y": 2, "x": 1},
            "targets": [{"label": "a", "notes": None}],
            "flow_id": flow["id"],
        },
        indent=2,
    )
    again = await team.req(
        "POST",
        "/v1/sessions/batch",
        content=same,
        headers={**headers, "content-type": "application/json"},
    )
    assert again.status_code == 201 and again.json() == first.json()
    # Keys are per route and team: another route's key is free.
    schedule = await created(
        team, SCHEDULES, {"flow_id": flow["id"], "cron_expression": "0 9 * * *"}
    )
    run = await team.req(
        "POST", f"/v1/maintenance-schedules/{schedule['id']}/run-now", headers=headers
    )
    assert run.status_code == 202, run.text
    async with team.sessions() as db:
        assert await db.scalar(sa.text("SELECT count(*) FROM batches")) == 2


async def test_concurrent_requests_with_one_key_and_two_bodies_launch_one(team: TeamCtx) -> None:
    flow = await new_flow(team)
    bodies = [{"flow_id": flow["id"], "targets": [{"label": label}]} for label in "abab"]
    headers = {"Idempotency-Key": "race-2"}
    results = await asyncio.gather(
        *(team.req("POST", "/v1/sessions/batch", json=b, headers=headers) for b in bodies)
    )
    async with team.sessions() as db:
        assert await db.scalar(sa.text("SELECT count(*) FROM batches")) == 1
        (label,) = (await db.execute(sa.text("SELECT target_label FROM sessions"))).scalars()
    for body, r in zip(bodies, results, strict=True):
        won = body["targets"][0]["label"] == label  # type: ignore[index]
        assert r.status_code == (201 if won else 422), (body, r.text)


async def test_concurrent_requests_with_one_key_create_one_batch(team: TeamCtx) -> None:
    flow = await new_flow(team)
    body = {"flow_id": flow["id"], "targets": [{"label": "a"}, {"label": "b"}]}
    headers = {"Idempotency-Key": "race"}
    results = await asyncio.gather(
        *(team.req("POST", "/v1/sessions/batch", json=body, headers=headers) for _ in range(5))
    )
    assert {r.status_code for r in results} == {201}
    assert len({r.json()["batch_id"] for r in results}) == 1
    async with team.sessions() as db:
        assert await db.scalar(sa.text("SELECT count(*) FROM batches")) == 1
        assert await db.scalar(sa.text("SELECT count(*) FROM sessions")) == 2


async def test_session_transitions(team: TeamCtx) -> None:
    flow = await new_flow(team)
    launched = await _launch(team, flow_id=flow["id"], targets=[{"label": "a"}, {"label": "b"}])
    a, b = (s["id"] for s in launched["sessions"])  # type: ignore[union-attr]

    async def move(sid: str, status: str) -> int:
        return (await team.req("PATCH", f"/v1/sessions/{sid}", json={"status": status})).status_code

    assert await move(a, "completed") == 409  # pending cannot jump to completed
    assert await move(a, "in_progress") == 200
    assert await move(a, "pending") == 409
    assert await move(a, "completed") == 200
    assert await move(a, "cancelled") == 409  # final
    assert await move(b, "cancelled") == 200
    assert await move(b, "in_progress") == 409
    r = await team.req("PATCH", f"/v1/sessions/{a}", json={"status": "done"})
    assert r.status_code == 422
    r = await team.req("PATCH", f"/v1/sessions/{b}", json={"current_step_id": "nope"})
    assert r.status_code == 422
    r = await team.req("PATCH", f"/v1/sessions/{b}", json={"current_step_id": "s2", "notes": "ok"})
    assert r.status_code == 200 and r.json()["current_step_id"] == "s2"
    batch = (await team.req("GET", f"/v1/batches/{launched['batch_id']}")).json()
    assert batch["progress"] == "1/2"
    assert batch["status_counts"]["completed"] == 1
    assert batch["status_counts"]["cancelled"] == 1


async def test_lists_filter_sessions_and_batches(team: TeamCtx) -> None:
    f1 = await new_flow(team, name="one")
    f2 = await new_flow(team, name="two")
    b1 = await _launch(team, flow_id=f1["id"], targets=[{"label": "a"}, {"label": "b"}])
    await _launch(team, flow_id=f2["id"], targets=[{"label": "c"}])
    r = await team.req("GET", "/v1/sessions", params={"batch_id": b1["batch_id"]})
    assert sorted(s["target_label"] for s in r.json()["items"]) == ["a", "b"]
    r = await team.req("GET", "/v1/sessions", params={"flow_id": f2["id"], "status": "pending"})
    assert [s["target_label"] for s in r.json()["items"]] == ["c"]
    r = await team.req("GET", "/v1/batches", params={"flow_id": f1["id"]})
    items = r.json()["items"]
    assert len(items) == 1 and items[0]["progress"] == "0/2"
    r = await team.req("GET", "/v1/sessions", params={"status": "bogus"})
    assert r.status_code == 422


async def test_list_pages_walk_every_item_once_with_its_own_rollup(team: TeamCtx) -> None:
    flow = await new_flow(team)
    launched = []
    for i in range(7):
        targets = [{"label": f"host-{i}-{j}"} for j in range(i + 1)]
        launched.append(await _launch(team, flow_id=flow["id"], targets=targets))
        team.clock.advance(1)
    # Move one session of batch 3 along, so rollups differ between batches.
    first = launched[3]["sessions"][0]["id"]
    await team.req("PATCH", f"/v1/sessions/{first}", json={"status": "in_progress"})
    await team.req("PATCH", f"/v1/sessions/{first}", json={"status": "completed"})

    async def walk(url: str, **params: object) -> list[dict[str, object]]:
        items: list[dict[str, object]] = []
        cursor = None
        while True:
            query = {"limit": 3, **params, **({"cursor": cursor} if cursor else {})}
            page = (await team.req("GET", url, params=query)).json()
            items += page["items"]
            cursor = page["next_cursor"]
            if cursor is None:
                return items

    batches = await walk("/v1/batches", flow_id=flow["id"])
    assert [b["batch_id"] for b in batches] == [b["batch_id"] for b in reversed(launched)]
    for listed in batches:  # the list shows what the batch's own page shows
        detail = (await team.req("GET", f"/v1/batches/{listed['batch_id']}")).json()
        assert {k: detail[k] for k in listed} == listed
    assert batches[3]["status_counts"] == {
        "pending": 3,
        "in_progress": 0,
        "completed": 1,
        "failed": 0,
        "cancelled": 0,
    }
    assert batches[3]["progress"] == "1/4"

    sessions = await walk("/v1/sessions", flow_id=flow["id"])
    assert len(sessions) == sum(range(1, 8)) == len({s["id"] for s in sessions})
    pending = await walk("/v1/sessions", batch_id=launched[3]["batch_id"], status="pending")
    assert len(pending) == 3


async def test_batches_filter_by_trigger_and_creation_time(team: TeamCtx) -> None:
    flow = await new_flow(team)
    schedule = await created(
        team, SCHEDULES, {"flow_id": flow["id"], "cron_expression": "0 9 * * *"}
    )
    t0 = team.clock.now()
    manual = []
    for i in range(3):
        team.clock.advance(timedelta(hours=1))
        manual.append(await _launch(team, flow_id=flow["id"], targets=[{"label": f"h{i}"}]))
    team.clock.advance(timedelta(hours=1))
    run = await team.req("POST", f"/v1/maintenance-schedules/{schedule['id']}/run-now")
    run_id = run.json()["batch_id"]

    async def ids(**params: str) -> list[str]:
        r = await team.req("GET", "/v1/batches", params=params)
        assert r.status_code == 200, r.text
        return [b["batch_id"] for b in r.json()["items"]]

    newest_first = [m["batch_id"] for m in reversed(manual)]
    assert await ids(trigger="run_now") == [run_id]
    assert await ids(trigger="manual") == newest_first
    assert await ids(trigger="schedule") == []

    def at(hours: int) -> str:
        return (t0 + timedelta(hours=hours)).isoformat()

    # Both bounds exclusive: the batches were created at t0 + 1 h, 2 h, 3 h (manual), 4 h.
    assert await ids(created_after=at(1)) == [run_id, *newest_first[:2]]
    assert await ids(created_before=at(2)) == newest_first[2:]
    assert (
        await ids(created_after=at(1), created_before=at(4), trigger="manual") == (newest_first[:2])
    )
    # Filters page like the unfiltered list.
    page = await team.req("GET", "/v1/batches", params={"trigger": "manual", "limit": 2})
    cursor = page.json()["next_cursor"]
    rest = await team.req(
        "GET", "/v1/batches", params={"trigger": "manual", "limit": 2, "cursor": cursor}
    )
    assert [b["batch_id"] for b in page.json()["items"] + rest.json()["items"]] == newest_first
    for params in ({"trigger": "cron"}, {"created_after": "2026-06-01T12:00:00"}):
        r = await team.req("GET", "/v1/batches", params=params)
        assert r.status_code == 422 and r.json()["detail"][0]["loc"][:2] == [
            "query",
            next(iter(params)),
        ]


async def test_sessions_filter_by_target_label(team: TeamCtx) -> None:
    flow = await new_flow(team)
    first = await _launch(team, flow_id=flow["id"], targets=[{"label": "web-1"}, {"label": "db"}])
    team.clock.advance(1)
    second = await _launch(team, flow_id=flow["id"], targets=[{"label": "web-1"}])
    r = await team.req("GET", "/v1/sessions", params={"target_label": "web-1"})
    assert [(s["batch_id"], s["target_label"]) for s in r.json()["items"]] == [
        (second["batch_id"], "web-1"),
        (first["batch_id"], "web-1"),
    ]
    r = await team.req(
        "GET", "/v1/sessions", params={"target_label": "db", "batch_id": first["batch_id"]}
    )
    assert [s["target_label"] for s in r.json()["items"]] == ["db"]
    assert (await team.req("GET", "/v1/sessions", params={"target_label": "WEB-1"})).json()[
        "items"
    ] == []
    r = await team.req("GET", "/v1/sessions", params={"target_label": ""})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "target_label"]
