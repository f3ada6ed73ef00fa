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


async def test_patch_adds_removes_and_updates_a_few_targets(team: TeamCtx) -> None:
    tl = await new_target_list(team, 3)  # rds-000..rds-002, notes "host N"
    url = f"/v1/target-lists/{tl['id']}"
    edit = {
        "remove": ["rds-000"],
        "update": [{"label": "rds-001", "notes": "moved"}, {"label": "rds-002", "notes": None}],
        "add": [{"label": "rds-003", "notes": "new"}, {"label": "rds-000"}],
    }
    r = await team.req("PATCH", url, json=edit)
    assert r.status_code == 200, r.text
    assert r.json()["targets"] == [
        {"label": "rds-001", "notes": "moved"},
        {"label": "rds-002", "notes": None},
        {"label": "rds-003", "notes": "new"},
        {"label": "rds-000", "notes": None},
    ]
    assert r.json()["target_count"] == 4


async def test_patch_names_a_duplicate_or_missing_label_and_changes_nothing(
    team: TeamCtx,
) -> None:
    tl = await new_target_list(team, 2)
    url = f"/v1/target-lists/{tl['id']}"
    before = (await team.req("GET", url)).json()
    duplicate = await team.req(
        "PATCH", url, json={"remove": ["rds-000"], "add": [{"label": "rds-001"}]}
    )
    assert duplicate.status_code == 409 and "'rds-001'" in duplicate.json()["detail"]
    missing = await team.req("PATCH", url, json={"remove": ["rds-000", "nope"]})
    assert missing.status_code == 422
    [error] = missing.json()["detail"]
    assert error["loc"] == ["body", "remove"] and "'nope'" in error["msg"]
    missing = await team.req("PATCH", url, json={"update": [{"label": "gone", "notes": "x"}]})
    assert missing.status_code == 422 and "'gone'" in missing.json()["detail"][0]["msg"]
    empty = await team.req("PATCH", url, json={"remove": ["rds-000", "rds-001"]})
    assert empty.status_code == 422
    assert (await team.req("GET", url)).json() == before


CSV_HEADERS = {"Content-Type": "text/csv"}


async def test_a_list_sent_and_read_as_csv(team: TeamCtx) -> None:
    document = '\ufefflabel,notes\r\nweb-01,rack 4\r\n"web,02","say ""hi"""\r\n\r\nweb-03,\r\n'
    r = await team.req(
        "POST",
        "/v1/target-lists",
        params={"name": "Web"},
        content=document.encode(),
        headers=CSV_HEADERS,
    )
    assert r.status_code == 201, r.text
    assert r.json()["name"] == "Web"
    assert r.json()["targets"] == [
        {"label": "web-01", "notes": "rack 4"},
        {"label": "web,02", "notes": 'say "hi"'},
        {"label": "web-03", "notes": None},
    ]
    url = f"/v1/target-lists/{r.json()['id']}"
    as_csv = await team.req("GET", url, headers={"Accept": "text/csv"})
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert as_csv.text == 'label,notes\r\nweb-01,rack 4\r\n"web,02","say ""hi"""\r\nweb-03,\r\n'
    assert as_csv.headers["ETag"] == (await team.req("GET", url)).headers["ETag"]
    replaced = await team.req("PUT", url, content=b"label\nweb-09\n", headers=CSV_HEADERS)
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["name"] == "Web"
    assert replaced.json()["targets"] == [{"label": "web-09", "notes": None}]


async def test_bad_csv_is_422_naming_the_line(team: TeamCtx) -> None:
    cases = [
        (b"host,notes\nweb-01,x\n", "line 1"),
        (b"label,notes\nweb-01,x\nweb-02,x,extra\n", "line 3"),
        (b"label,notes\nweb-01\nweb-01\n", "line 3"),
        (b"label,notes\nweb-01\n \n", "line 3"),
        (b"label,notes\nweb-01\n\xff\xfe\n", "line 3"),
        (b'label,notes\n"web-01\n', "line 2"),
    ]
    for document, line in cases:
        r = await team.req(
            "POST", "/v1/target-lists", params={"name": "x"}, content=document, headers=CSV_HEADERS
        )
        assert r.status_code == 422, (document, r.text)
        [error] = r.json()["detail"]
        assert error["loc"] == ["body", line] and error["msg"].startswith(f"{line}:"), error
    no_name = await team.req("POST", "/v1/target-lists", content=b"label\na\n", headers=CSV_HEADERS)
    assert no_name.status_code == 422 and no_name.json()["detail"][0]["loc"] == ["body", "name"]
