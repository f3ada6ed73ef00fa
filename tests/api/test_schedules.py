from __future__ import annotations

import uuid
from datetime import UTC, datetime

import httpx

from maintflow_core.db.store import open_store
from maintflow_core.due.schedules import MaintenanceSchedules
from maintflow_core.settings import Settings
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


async def _claim(team: TeamCtx, settings: Settings, at: datetime) -> list[uuid.UUID]:
    """One pass of the scheduler's claim transaction at `at`: the batches it fired."""
    async with team.sessions() as db, db.begin():
        source = MaintenanceSchedules(open_store(settings), settings)
        return (await source.claim(db, at, settings.scheduler_claim_batch)).fired


async def test_patch_is_active_false_stops_every_fire_and_true_resumes_from_now(
    team: TeamCtx, settings: Settings
) -> None:
    flow = await new_flow(team)
    s = (await _create(team, flow_id=flow["id"], cron_expression="0 9 * * *")).json()  # type: ignore[attr-defined]
    assert s["next_run_at"] == "2026-06-02T09:00:00Z"
    r = await team.req("PATCH", f"{URL}/{s['id']}", json={"is_active": False})
    assert r.status_code == 200, r.text
    assert r.json()["is_active"] is False and r.json()["paused_reason"] is None
    got = (await team.req("GET", f"{URL}/{s['id']}")).json()
    assert got["is_active"] is False and got["paused_at"] == "2026-06-01T12:00:00Z"
    assert (await team.req("GET", f"{URL}/stats")).json()["paused"] == 1
    for day in (2, 3, 4):  # the scheduler finds nothing to fire while it is disabled
        assert await _claim(team, settings, datetime(2026, 6, day, 10, tzinfo=UTC)) == []
    team.clock.set(datetime(2026, 6, 4, 10, tzinfo=UTC))
    r = await team.req("PATCH", f"{URL}/{s['id']}", json={"is_active": True})
    assert r.status_code == 200, r.text
    # Recomputed from now: the instants missed while disabled are not owed.
    assert r.json()["is_active"] is True and r.json()["paused_at"] is None
    assert r.json()["next_run_at"] == "2026-06-05T09:00:00Z"
    assert (await team.req("GET", f"{URL}/{s['id']}")).json()["next_run_at"] == r.json()[
        "next_run_at"
    ]
    assert await _claim(team, settings, datetime(2026, 6, 4, 23, tzinfo=UTC)) == []
    assert len(await _claim(team, settings, datetime(2026, 6, 5, 9, tzinfo=UTC))) == 1


async def test_patch_is_active_is_pause_without_a_reason_and_resume(team: TeamCtx) -> None:
    flow = await new_flow(team)
    s = (await _create(team, flow_id=flow["id"], cron_expression="0 9 * * *")).json()  # type: ignore[attr-defined]
    paused = await team.req("POST", f"{URL}/{s['id']}/pause", json={"reason": "freeze"})
    assert paused.json()["paused_reason"] == "freeze"
    r = await team.req("PATCH", f"{URL}/{s['id']}", json={"is_active": False})
    assert r.json()["paused_reason"] is None  # as pause without a reason
    assert r.json()["paused_at"] == paused.json()["paused_at"]
    # Both at once: the new rule is kept while disabled, and counts from the resume.
    r = await team.req(
        "PATCH", f"{URL}/{s['id']}", json={"is_active": True, "cron_expression": "0 18 * * *"}
    )
    assert r.status_code == 200, r.text
    assert (r.json()["is_active"], r.json()["next_run_at"]) == (True, "2026-06-01T18:00:00Z")
    again = await team.req("PATCH", f"{URL}/{s['id']}", json={"is_active": True})
    assert again.json()["next_run_at"] == "2026-06-01T18:00:00Z"  # already active: unchanged
    bad = await team.req("PATCH", f"{URL}/{s['id']}", json={"is_active": "sometimes"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "is_active"]


async def _once_in_berlin(team: TeamCtx, run_at: str) -> httpx.Response:
    flow = await new_flow(team, name=f"once {run_at}")
    once = {"type": "once", "run_at": run_at}
    return await team.req(
        "POST", URL, json={"flow_id": flow["id"], "timezone": "Europe/Berlin", "recurrence": once}
    )


async def test_a_one_off_run_at_without_an_offset_is_refused_naming_it(team: TeamCtx) -> None:
    r = await _once_in_berlin(team, "2026-12-24T18:00:00")
    assert r.status_code == 422, r.text  # type: ignore[attr-defined]
    (error,) = r.json()["detail"]  # type: ignore[attr-defined]
    assert error["loc"][:2] == ["body", "recurrence"] and error["loc"][-1] == "run_at"
    assert error["type"] == "timezone_aware"


async def test_a_one_off_is_answered_with_a_cron_the_api_takes_and_fires_once(
    team: TeamCtx, settings: Settings
) -> None:
    r = await _once_in_berlin(team, "2026-12-24T18:00:15.5+01:00")
    assert r.status_code == 201, r.text  # type: ignore[attr-defined]
    s = r.json()  # type: ignore[attr-defined]
    assert s["cron_expression"] == "0 18 24 12 * 15"  # seconds 6th, as the API reads them
    assert s["start_at"] == s["end_at"] == s["next_run_at"] == "2026-12-24T17:00:15Z"
    preview = (await team.req("GET", f"{URL}/{s['id']}/preview", params={"count": 5})).json()
    assert [f["utc"] for f in preview["fire_times"]] == ["2026-12-24T17:00:15Z"]
    # What it answers, the API takes, and it means the same.
    other = await new_flow(team, name="copy")
    copy = {k: s[k] for k in ("cron_expression", "timezone", "start_at", "end_at")}
    r = await _create(team, flow_id=other["id"], **copy)
    assert r.status_code == 201, r.text  # type: ignore[attr-defined]
    again = (await team.req("GET", f"{URL}/{r.json()['id']}/preview")).json()  # type: ignore[attr-defined]
    assert again == preview
    # The scheduler fires it once, at run_at, and never again.
    await team.req("DELETE", f"{URL}/{r.json()['id']}")  # type: ignore[attr-defined]
    assert await _claim(team, settings, datetime(2026, 12, 24, 17, tzinfo=UTC)) == []
    assert len(await _claim(team, settings, datetime(2026, 12, 24, 17, 0, 16, tzinfo=UTC))) == 1
    fired = (await team.req("GET", f"{URL}/{s['id']}")).json()
    assert (fired["last_run_at"], fired["next_run_at"]) == ("2026-12-24T17:00:15Z", None)
    for year in (2027, 2028):
        assert await _claim(team, settings, datetime(year, 12, 25, tzinfo=UTC)) == []


async def test_the_api_refuses_the_year_form_it_no_longer_answers(team: TeamCtx) -> None:
    flow = await new_flow(team)
    r = await _create(team, flow_id=flow["id"], cron_expression="0 9 1 3 * 0 2027")
    assert r.status_code == 422  # type: ignore[attr-defined]
    assert r.json()["detail"][0]["loc"] == ["body", "cron_expression"]  # type: ignore[attr-defined]
    assert "expected 5 or 6 fields" in r.json()["detail"][0]["msg"]  # type: ignore[attr-defined]


async def test_a_one_off_takes_no_bounds_and_leaving_it_clears_its_instant(team: TeamCtx) -> None:
    flow = await new_flow(team)
    once = {"type": "once", "run_at": "2026-07-01T09:00:00Z"}
    r = await _create(team, flow_id=flow["id"], recurrence=once, end_at="2026-08-01T00:00:00Z")
    assert r.status_code == 422  # type: ignore[attr-defined]
    assert r.json()["detail"][0]["loc"] == ["body", "end_at"]  # type: ignore[attr-defined]
    s = (await _create(team, flow_id=flow["id"], recurrence=once)).json()  # type: ignore[attr-defined]
    r = await team.req("PATCH", f"{URL}/{s['id']}", json={"start_at": "2026-06-15T00:00:00Z"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "start_at"]
    r = await team.req("PATCH", f"{URL}/{s['id']}", json={"cron_expression": "0 9 * * *"})
    assert r.status_code == 200, r.text
    assert (r.json()["start_at"], r.json()["end_at"]) == (None, None)
    assert r.json()["next_run_at"] == "2026-06-02T09:00:00Z"
    r = await team.req("PATCH", f"{URL}/{s['id']}", json={"recurrence": once})
    assert r.status_code == 200, r.text
    assert r.json()["cron_expression"] == "0 9 1 7 *"
    assert r.json()["start_at"] == r.json()["end_at"] == "2026-07-01T09:00:00Z"


async def test_monthly_on_the_last_day_fires_at_every_months_end(team: TeamCtx) -> None:
    flow = await new_flow(team)
    last = {"type": "monthly", "day": "last", "time": "02:30"}
    s = (await _create(team, flow_id=flow["id"], recurrence=last, timezone="Europe/Berlin")).json()  # type: ignore[attr-defined]
    assert s["cron_expression"] == "30 2 L * *" and s["skipped_months"] == []
    assert s["recurrence"] == last
    params = {"count": 4, "after": "2027-01-15T00:00:00Z"}
    preview = (await team.req("GET", f"{URL}/{s['id']}/preview", params=params)).json()
    assert [f["local"][:10] for f in preview["fire_times"]] == [
        "2027-01-31",
        "2027-02-28",
        "2027-03-31",
        "2027-04-30",
    ]
    assert preview["skipped_months"] == []


async def test_the_months_a_day_31_skips_are_named(team: TeamCtx) -> None:
    flow = await new_flow(team)
    day31 = {"type": "monthly", "day": 31, "time": "09:00"}
    s = (await _create(team, flow_id=flow["id"], recurrence=day31)).json()  # type: ignore[attr-defined]
    assert s["skipped_months"] == [2, 4, 6, 9, 11]
    params = {"count": 3, "after": "2027-01-15T00:00:00Z"}
    preview = (await team.req("GET", f"{URL}/{s['id']}/preview", params=params)).json()
    assert [f["utc"][:10] for f in preview["fire_times"]] == [
        "2027-01-31",
        "2027-03-31",
        "2027-05-31",
    ]
    assert preview["skipped_months"] == ["2027-02", "2027-04"]
    r = await team.req("PATCH", f"{URL}/{s['id']}", json={"recurrence": {**day31, "day": 29}})
    assert r.json()["skipped_months"] == [2]
