"""ETag, If-None-Match and If-Match on single resources: a flow, a target list, a schedule, a
maintenance window, a webhook."""

from __future__ import annotations

import asyncio
import uuid

from maintflow_core.usecases.webhook_delivery import disable
from tests.api.test_webhooks import body as webhook_body
from tests.conftest import TeamCtx, new_flow, new_target_list
from tests.integration.test_windows import new_window


async def test_a_flow_read_again_unchanged_is_304_and_changed_is_200(team: TeamCtx) -> None:
    flow = await new_flow(team)
    url = f"/v1/flows/{flow['id']}"
    first = await team.req("GET", url)
    tag = first.headers["ETag"]
    assert first.status_code == 200 and tag.startswith('"')
    again = await team.req("GET", url, headers={"If-None-Match": tag})
    assert again.status_code == 304 and again.content == b"" and again.headers["ETag"] == tag
    assert (
        await team.req("GET", url, headers={"If-None-Match": '"other", ' + tag})
    ).status_code == 304
    changed = await team.req("PATCH", url, json={"name": "Patch RDS weekly"})
    assert changed.headers["ETag"] != tag
    fresh = await team.req("GET", url, headers={"If-None-Match": tag})
    assert fresh.status_code == 200 and fresh.json()["name"] == "Patch RDS weekly"
    # The tag a write answers with is the one the next read gives.
    assert fresh.headers["ETag"] == changed.headers["ETag"]


async def test_a_write_with_a_stale_if_match_is_412_and_changes_nothing(team: TeamCtx) -> None:
    flow = await new_flow(team)
    url = f"/v1/flows/{flow['id']}"
    tag = (await team.req("GET", url)).headers["ETag"]
    ok = await team.req("PATCH", url, json={"name": "First"}, headers={"If-Match": tag})
    assert ok.status_code == 200, ok.text
    stale = await team.req("PATCH", url, json={"name": "Second"}, headers={"If-Match": tag})
    assert stale.status_code == 412 and "ETag" in stale.json()["detail"]
    assert (await team.req("GET", url)).json()["name"] == "First"
    # Without If-Match a write proceeds as it always did; `*` matches any version.
    assert (await team.req("PATCH", url, json={"name": "Third"})).status_code == 200
    assert (await team.req("PATCH", url, json={}, headers={"If-Match": "*"})).status_code == 200
    assert (await team.req("DELETE", url, headers={"If-Match": tag})).status_code == 412
    current = (await team.req("GET", url)).headers["ETag"]
    assert (await team.req("DELETE", url, headers={"If-Match": current})).status_code == 204


async def test_two_clients_racing_with_one_tag_one_wins_one_gets_412(team: TeamCtx) -> None:
    tl = await new_target_list(team, 3)
    url = f"/v1/target-lists/{tl['id']}"
    tag = (await team.req("GET", url)).headers["ETag"]
    engineer = await team.user("engineer")

    async def replace(token: str, label: str) -> int:
        body = {"name": "RDS hosts", "targets": [{"label": label}]}
        r = await team.req("PUT", url, token=token, json=body, headers={"If-Match": tag})
        return r.status_code

    for attempt in range(5):
        results = await asyncio.gather(
            replace(team.token, f"a-{attempt}"), replace(engineer, f"b-{attempt}")
        )
        assert sorted(results) == [200, 412]
        tag = (await team.req("GET", url)).headers["ETag"]


async def test_a_schedule_has_a_version_too(team: TeamCtx) -> None:
    flow = await new_flow(team)
    body = {"flow_id": flow["id"], "cron_expression": "0 9 * * *"}
    s = (await team.req("POST", "/v1/maintenance-schedules", json=body)).json()
    url = f"/v1/maintenance-schedules/{s['id']}"
    tag = (await team.req("GET", url)).headers["ETag"]
    assert (await team.req("GET", url, headers={"If-None-Match": tag})).status_code == 304
    of_flow = await team.req("GET", f"/v1/flows/{flow['id']}/schedule")
    assert of_flow.headers["ETag"] == tag
    patch = {"cron_expression": "0 10 * * *"}
    assert (await team.req("PATCH", url, json=patch, headers={"If-Match": tag})).status_code == 200
    assert (await team.req("PATCH", url, json=patch, headers={"If-Match": tag})).status_code == 412
    assert (await team.req("DELETE", url, headers={"If-Match": tag})).status_code == 412
    assert (await team.req("GET", url)).json()["cron_expression"] == "0 10 * * *"


async def test_a_maintenance_window_has_a_version_too(team: TeamCtx) -> None:
    w = await new_window(team)
    url = f"/v1/maintenance-windows/{w['id']}"
    tag = (await team.req("GET", url)).headers["ETag"]
    assert (await team.req("GET", url, headers={"If-None-Match": tag})).status_code == 304
    patch = {"title": "Core switch upgrade, both sites"}
    changed = await team.req("PATCH", url, json=patch, headers={"If-Match": tag})
    assert changed.status_code == 200 and changed.headers["ETag"] != tag
    stale = await team.req("PATCH", url, json={"title": "Lost"}, headers={"If-Match": tag})
    assert stale.status_code == 412
    # A status change made elsewhere (here: cancelling) is a new version too.
    assert (await team.req("POST", f"{url}/cancel")).status_code == 200
    fresh = await team.req("GET", url, headers={"If-None-Match": changed.headers["ETag"]})
    assert fresh.status_code == 200 and fresh.json()["status"] == "cancelled"
    assert fresh.json()["title"] == patch["title"]
    # Without If-Match the write proceeds.
    assert (await team.req("PATCH", url, json={"title": "Called off"})).status_code == 200


async def test_a_webhook_has_a_version_and_a_delete_honours_if_match(team: TeamCtx) -> None:
    created = (await team.req("POST", "/v1/webhooks", json=webhook_body())).json()
    url = f"/v1/webhooks/{created['id']}"
    tag = (await team.req("GET", url)).headers["ETag"]
    assert (await team.req("GET", url, headers={"If-None-Match": tag})).status_code == 304
    # The receiver answered 410 Gone: the workers disable the webhook, a visible change.
    async with team.sessions() as db, db.begin():
        await disable(db, uuid.UUID(created["id"]), team.clock.now(), "the receiver answered 410")
    fresh = await team.req("GET", url, headers={"If-None-Match": tag})
    assert fresh.status_code == 200 and fresh.json()["enabled"] is False
    assert fresh.headers["ETag"] != tag
    assert (await team.req("DELETE", url, headers={"If-Match": tag})).status_code == 412
    assert (await team.req("GET", url)).status_code == 200
    # Without If-Match the delete proceeds.
    assert (await team.req("DELETE", url)).status_code == 204
    assert (await team.req("GET", url)).status_code == 404


async def test_a_webhook_deleted_with_its_current_tag_is_gone(team: TeamCtx) -> None:
    created = (await team.req("POST", "/v1/webhooks", json=webhook_body())).json()
    url = f"/v1/webhooks/{created['id']}"
    tag = (await team.req("GET", url)).headers["ETag"]
    assert (await team.req("DELETE", url, headers={"If-Match": tag})).status_code == 204
    assert (await team.req("GET", url)).status_code == 404
