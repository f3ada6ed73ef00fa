from __future__ import annotations

from datetime import UTC, datetime

from tests.conftest import TeamCtx, new_flow, new_target_list

URL = "/v1/maintenance-schedules"


async def _create(t: TeamCtx, **body: object) -> object:
    return await t.req("POST", URL, json=body)


async def test_create_read_list_delete_a_schedule(team: TeamCtx) -> None:
    flow = await new_flow(team)
    tl = await new_target_list(team, 2)
    r = await _create(
        team,
        flow_id=flow["id"],
        cron_expression="0 9 * * 1-5",
        timezone="Europe/London",
        target_list_id=tl["id"],
    )
    assert r.status_code == 201, r.text  # type: ignore[attr-defined]
    s = r.json()  # type: ignore[attr-defined]
    assert s["is_active"] is True and s["misfire_policy"] == "run_once"
    assert s["last_run_at"] is None
    # The fake clock is 2026-06-01 12:00 UTC, a Monday: next is Tuesday 09:00 BST.
    assert s["next_run_at"] == "2026-06-02T08:00:00Z"
    assert s["next_run_at_local"] == "2026-06-02T09:00:00+01:00"
    assert (await team.req("GET", f"{URL}/{s['id']}")).json()["id"] == s["id"]
    assert (await team.req("GET", f"/v1/flows/{flow['id']}/schedule")).json()["id"] == s["id"]
    listed = (await team.req("GET", URL, params={"flow_id": flow["id"]})).json()["items"]
    assert [x["id"] for x in listed] == [s["id"]]
    assert (await team.req("DELETE", f"{URL}/{s['id']}")).status_code == 204
    assert (await team.req("GET", f"/v1/flows/{flow['id']}/schedule")).status_code == 404


async def test_schedule_rules(team: TeamCtx) -> None:
    flow = await new_flow(team)
    proc = await new_flow(team, "procedural", "Onboarding")
    cases = [
        ({"flow_id": flow["id"], "cron_expression": "61 * * * *"}, 422, "cron_expression"),
        ({"flow_id": flow["id"], "cron_expression": "0 0 30 2 *"}, 422, "cron_expression"),
        ({"flow_id": flow["id"], "cron_expression": "every day"}, 422, "cron_expression"),
        ({"flow_id": flow["id"], "cron_expression": "* * * * * *"}, 422, "cron_expression"),
        (
            {"flow_id": flow["id"], "cron_expression": "0 9 * * *", "timezone": "Mars/Olympus"},
            422,
            "timezone",
        ),
        ({"flow_id": flow["id"]}, 422, None),
        (
            {
                "flow_id": flow["id"],
                "cron_expression": "0 9 * * *",
                "recurrence": {"type": "daily", "time": "09:00"},
            },
            422,
            None,
        ),
        (
            {"flow_id": flow["id"], "recurrence": {"type": "daily", "time": "25:00"}},
            422,
            "recurrence",
        ),
        (
            {"flow_id": flow["id"], "recurrence": {"type": "weekly", "days": [], "time": "09:00"}},
            422,
            "recurrence",
        ),
        (
            {"flow_id": flow["id"], "recurrence": {"type": "once", "run_at": "2020-01-01T00:00Z"}},
            422,
            "recurrence",
        ),
        (
            {"flow_id": flow["id"], "cron_expression": "0 9 * * *", "misfire_policy": "sometimes"},
            422,
            "misfire_policy",
        ),
        (
            {
                "flow_id": flow["id"],
                "cron_expression": "0 9 * * *",
                "start_at": "2026-07-01T00:00:00Z",
                "end_at": "2026-06-01T00:00:00Z",
            },
            422,
            "end_at",
        ),
        ({"flow_id": proc["id"], "cron_expression": "0 9 * * *"}, 400, None),
        (
            {
                "flow_id": flow["id"],
                "cron_expression": "0 9 * * *",
                "target_list_id": "00000000-0000-0000-0000-000000000000",
            },
            404,
            None,
        ),
    ]
    for body, status, field in cases:
        r = await team.req("POST", URL, json=body)
        assert r.status_code == status, (body, r.text)
        if field:
            assert field in {e["loc"][1] for e in r.json()["detail"]}, (body, r.json())
    ok = await _create(team, flow_id=flow["id"], cron_expression="0 9 * * *")
    assert ok.status_code == 201  # type: ignore[attr-defined]
    again = await _create(team, flow_id=flow["id"], cron_expression="0 10 * * *")
    assert again.status_code == 409  # type: ignore[attr-defined]


async def test_seconds_field_follows_the_minimum_interval(team: TeamCtx) -> None:
    flow = await new_flow(team)
    r = await _create(team, flow_id=flow["id"], cron_expression="*/30 * * * * *")
    assert r.status_code == 422  # type: ignore[attr-defined]
    team_settings_allow = await _create(team, flow_id=flow["id"], cron_expression="* * * * * 0")
    assert team_settings_allow.status_code == 201  # type: ignore[attr-defined]  # once a minute


async def test_recurrence_presets_become_cron(team: TeamCtx) -> None:
    presets = [
        ({"type": "daily", "time": "09:00"}, "0 9 * * *"),
        ({"type": "weekly", "days": ["mon", "thu"], "time": "18:30"}, "30 18 * * mon,thu"),
        ({"type": "monthly", "day": 15, "time": "07:05"}, "5 7 15 * *"),
    ]
    for recurrence, cron in presets:
        flow = await new_flow(team, name=f"f-{cron}")
        r = await _create(
            team, flow_id=flow["id"], recurrence=recurrence, timezone="Asia/Kathmandu"
        )
        assert r.status_code == 201, r.text  # type: ignore[attr-defined]
        assert r.json()["cron_expression"] == cron  # type: ignore[attr-defined]
        assert r.json()["recurrence"]["type"] == recurrence["type"]  # type: ignore[attr-defined]
    flow = await new_flow(team, name="once")
    r = await _create(
        team,
        flow_id=flow["id"],
        timezone="Europe/Berlin",
        recurrence={"type": "once", "run_at": "2026-12-24T18:00:00+01:00"},
    )
    assert r.status_code == 201, r.text  # type: ignore[attr-defined]
    s = r.json()  # type: ignore[attr-defined]
    assert s["next_run_at"] == "2026-12-24T17:00:00Z"
    preview = (await team.req("GET", f"{URL}/{s['id']}/preview", params={"count": 3})).json()
    assert [f["utc"] for f in preview["fire_times"]] == ["2026-12-24T17:00:00Z"]


async def test_preview_gives_utc_and_local_times_after_any_instant(team: TeamCtx) -> None:
    flow = await new_flow(team)
    s = (
        await _create(
            team, flow_id=flow["id"], cron_expression="30 2 * * *", timezone="America/New_York"
        )
    ).json()  # type: ignore[attr-defined]
    r = await team.req(
        "GET", f"{URL}/{s['id']}/preview", params={"count": 3, "after": "2026-03-07T00:00:00Z"}
    )
    assert r.status_code == 200
    assert r.json()["fire_times"] == [
        {"utc": "2026-03-07T07:30:00Z", "local": "2026-03-07T02:30:00-05:00"},
        {"utc": "2026-03-08T07:00:00Z", "local": "2026-03-08T03:00:00-04:00"},  # after the gap
        {"utc": "2026-03-09T06:30:00Z", "local": "2026-03-09T02:30:00-04:00"},
    ]
    assert (
        await team.req("GET", f"{URL}/{s['id']}/preview", params={"count": 0})
    ).status_code == 422
    assert (
        await team.req("GET", f"{URL}/{s['id']}/preview", params={"count": 1001})
    ).status_code == 422
    r = await team.req("GET", f"{URL}/{s['id']}/preview", params={"after": "2026-03-07T00:00:00"})
    assert r.status_code == 422
    many = await team.req("GET", f"{URL}/{s['id']}/preview", params={"count": 1000})
    assert len(many.json()["fire_times"]) == 1000


async def test_patch_recomputes_next_run_and_stats_count(team: TeamCtx) -> None:
    flow = await new_flow(team)
    s = (await _create(team, flow_id=flow["id"], cron_expression="0 9 * * *")).json()  # type: ignore[attr-defined]
    r = await team.req("PATCH", f"{URL}/{s['id']}", json={"timezone": "Asia/Kathmandu"})
    assert r.status_code == 200
    # 09:00 in Kathmandu (+05:45) is 03:15 UTC; at 12:00 UTC that is tomorrow's.
    assert r.json()["next_run_at"] == "2026-06-02T03:15:00Z"
    bad = await team.req("PATCH", f"{URL}/{s['id']}", json={"cron_expression": "nope"})
    assert bad.status_code == 422
    unknown = await team.req("PATCH", f"{URL}/{s['id']}", json={"colour": "red"})
    assert unknown.status_code == 422
    await team.req("POST", f"{URL}/{s['id']}/pause", json={"reason": "freeze"})
    other = await new_flow(team, name="other")
    await _create(team, flow_id=other["id"], cron_expression="0 1 * * *")
    stats = (await team.req("GET", f"{URL}/stats")).json()
    assert stats["total"] == 2 and stats["active"] == 1 and stats["paused"] == 1
    assert set(stats["batches"]) == {"fanning_out", "in_progress", "completed"}
    _ = datetime.now(UTC)
