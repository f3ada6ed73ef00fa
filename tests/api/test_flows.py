from __future__ import annotations

from tests.conftest import STEPS, TeamCtx, new_flow
from tests.kit.seed import created

SCHEDULES = "/v1/maintenance-schedules"


async def test_create_a_maintenance_flow(team: TeamCtx) -> None:
    flow = await new_flow(team)
    assert flow["flow_type"] == "maintenance"
    assert [s["id"] for s in flow["steps"]] == ["s1", "s2", "end"]
    got = await team.req("GET", f"/v1/flows/{flow['id']}")
    assert got.status_code == 200 and got.json()["name"] == "Patch RDS"


async def test_flow_validation_names_the_field(team: TeamCtx) -> None:
    cases = [
        ({"name": "x", "flow_type": "ops", "steps": STEPS}, ("body", "flow_type")),
        ({"name": "x", "flow_type": "maintenance", "steps": []}, ("body", "steps")),
        ({"name": "", "flow_type": "maintenance", "steps": STEPS}, ("body", "name")),
        ({"name": "x\x00y", "flow_type": "maintenance", "steps": STEPS}, ("body", "name")),
        ({"name": "x", "flow_type": "maintenance", "steps": STEPS + STEPS[:1]}, ("body", "steps")),
        (
            {"name": "x", "flow_type": "maintenance", "steps": STEPS, "colour": 1},
            ("body", "colour"),
        ),
    ]
    for body, loc in cases:
        r = await team.req("POST", "/v1/flows", json=body)
        assert r.status_code == 422, body
        assert loc in {tuple(e["loc"][:2]) for e in r.json()["detail"]}, (body, r.json())


async def test_list_filters_by_type_and_text_and_counts(team: TeamCtx) -> None:
    await new_flow(team, "maintenance", "Patch Citrix farm")
    await new_flow(team, "procedural", "Onboard a user")
    await new_flow(team, "troubleshooting", "Printer offline")
    r = await team.req("GET", "/v1/flows", params={"flow_type": "maintenance"})
    assert [f["name"] for f in r.json()["items"]] == ["Patch Citrix farm"]
    r = await team.req("GET", "/v1/flows", params={"q": "PRINTER"})
    assert [f["name"] for f in r.json()["items"]] == ["Printer offline"]
    r = await team.req("GET", "/v1/flows", params={"q": "%"})
    assert r.json()["items"] == []
    counts = (await team.req("GET", "/v1/flows/counts")).json()
    assert counts == {"total": 3, "troubleshooting": 1, "procedural": 1, "maintenance": 1}


async def test_patch_and_delete_a_flow(team: TeamCtx) -> None:
    flow = await new_flow(team)
    r = await team.req("PATCH", f"/v1/flows/{flow['id']}", json={"name": "Patch RDS hosts"})
    assert r.status_code == 200 and r.json()["name"] == "Patch RDS hosts"
    assert r.json()["steps"] == flow["steps"]
    bad = await team.req("PATCH", f"/v1/flows/{flow['id']}", json={"steps": []})
    assert bad.status_code == 422
    assert (await team.req("DELETE", f"/v1/flows/{flow['id']}")).status_code == 204
    assert (await team.req("GET", f"/v1/flows/{flow['id']}")).status_code == 404


async def test_flow_list_paginates_without_gaps(team: TeamCtx) -> None:
    for i in range(7):
        await new_flow(team, name=f"flow {i}")
    ids: list[str] = []
    cursor = None
    while True:
        params = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        page = (await team.req("GET", "/v1/flows", params=params)).json()
        ids += [f["id"] for f in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(ids) == 7 == len(set(ids))
    bad = await team.req("GET", "/v1/flows", params={"cursor": "garbage"})
    assert bad.status_code == 422
    assert (await team.req("GET", "/v1/flows", params={"limit": 501})).status_code == 422


async def test_a_scheduled_flow_cannot_stop_being_a_maintenance_flow(team: TeamCtx) -> None:
    flow = await new_flow(team)
    schedule = await created(
        team, SCHEDULES, {"flow_id": flow["id"], "cron_expression": "0 9 * * *"}
    )
    r = await team.req("PATCH", f"/v1/flows/{flow['id']}", json={"flow_type": "procedural"})
    assert r.status_code == 409, r.text
    assert schedule["id"] in r.json()["detail"] and "flow_type" in r.json()["detail"]
    assert (await team.req("GET", f"/v1/flows/{flow['id']}")).json()["flow_type"] == "maintenance"
    # Other edits, and keeping the type, still work.
    r = await team.req(
        "PATCH", f"/v1/flows/{flow['id']}", json={"name": "Renamed", "flow_type": "maintenance"}
    )
    assert r.status_code == 200 and r.json()["name"] == "Renamed"
    await team.req("DELETE", f"/v1/maintenance-schedules/{schedule['id']}")
    r = await team.req("PATCH", f"/v1/flows/{flow['id']}", json={"flow_type": "procedural"})
    assert r.status_code == 200 and r.json()["flow_type"] == "procedural"
