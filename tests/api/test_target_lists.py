from __future__ import annotations

from tests.conftest import TeamCtx, new_flow, new_target_list
from tests.kit.seed import created


async def test_create_read_replace_delete_a_target_list(team: TeamCtx) -> None:
    tl = await new_target_list(team, 3)
    assert tl["target_count"] == 3 and tl["last_used_at"] is None
    got = (await team.req("GET", f"/v1/target-lists/{tl['id']}")).json()
    assert [t["label"] for t in got["targets"]] == ["rds-000", "rds-001", "rds-002"]
    r = await team.req(
        "PUT", f"/v1/target-lists/{tl['id']}", json={"name": "RDS", "targets": [{"label": "a"}]}
    )
    assert r.status_code == 200 and r.json()["target_count"] == 1
    assert (await team.req("DELETE", f"/v1/target-lists/{tl['id']}")).status_code == 204
    assert (await team.req("GET", f"/v1/target-lists/{tl['id']}")).status_code == 404


async def test_name_is_unique_within_a_team_only(team: TeamCtx, other_team: TeamCtx) -> None:
    await new_target_list(team, 1, name="hosts")
    r = await team.req(
        "POST", "/v1/target-lists", json={"name": "hosts", "targets": [{"label": "x"}]}
    )
    assert r.status_code == 409
    await new_target_list(other_team, 1, name="hosts")


async def test_target_list_validation(team: TeamCtx) -> None:
    cases = [
        ({"name": "a", "targets": []}, ("body", "targets")),
        ({"name": "a", "targets": [{"label": "x"}, {"label": "x"}]}, ("body", "targets")),
        ({"name": "a", "targets": [{"label": "x" * 256}]}, ("body", "targets")),
        ({"name": "a", "targets": [{"label": "x", "notes": "n" * 501}]}, ("body", "targets")),
        ({"name": "a", "targets": [{"label": ""}]}, ("body", "targets")),
        (
            {"name": "a", "targets": [{"label": f"h{i}"} for i in range(10_001)]},
            ("body", "targets"),
        ),
        ({"targets": [{"label": "x"}]}, ("body", "name")),
    ]
    for body, loc in cases:
        r = await team.req("POST", "/v1/target-lists", json=body)
        assert r.status_code == 422, body.get("name")
        assert loc in {tuple(e["loc"][:2]) for e in r.json()["detail"]}


async def test_ten_thousand_targets_are_accepted(team: TeamCtx) -> None:
    tl = await new_target_list(team, 10_000)
    assert tl["target_count"] == 10_000


async def test_a_list_a_schedule_uses_cannot_be_deleted_until_detached(team: TeamCtx) -> None:
    tl = await new_target_list(team, 2)
    schedules = []
    for name in ("Patch RDS", "Rotate certs"):
        flow = await new_flow(team, name=name)
        body = {"flow_id": flow["id"], "cron_expression": "0 9 * * *", "target_list_id": tl["id"]}
        schedules.append(await created(team, "/v1/maintenance-schedules", body))
    r = await team.req("DELETE", f"/v1/target-lists/{tl['id']}")
    assert r.status_code == 409, r.text
    detail = r.json()["detail"]
    assert all(s["id"] in detail for s in schedules) and "'Rotate certs'" in detail, detail
    assert (await team.req("GET", f"/v1/target-lists/{tl['id']}")).status_code == 200
    first, second = schedules
    r = await team.req(
        "PATCH", f"/v1/maintenance-schedules/{first['id']}", json={"target_list_id": None}
    )
    assert r.status_code == 200 and r.json()["target_list_id"] is None
    r = await team.req("DELETE", f"/v1/target-lists/{tl['id']}")
    assert r.status_code == 409 and first["id"] not in r.json()["detail"]
    assert second["id"] in r.json()["detail"]
    await team.req(
        "PATCH", f"/v1/maintenance-schedules/{second['id']}", json={"target_list_id": None}
    )
    assert (await team.req("DELETE", f"/v1/target-lists/{tl['id']}")).status_code == 204
    assert (await team.req("GET", f"/v1/target-lists/{tl['id']}")).status_code == 404
