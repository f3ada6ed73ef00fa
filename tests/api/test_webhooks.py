"""The webhook routes: admins register (the secret shown once), read, list, delete, test; URLs
that could reach anything but the public internet are refused (422 naming `url`) unless the
operator allows private targets; another team's webhook is not found. No test here delivers
anything (no worker runs), and a public URL is only ever registered and deleted."""

from __future__ import annotations

import base64
import uuid

import httpx
import pytest
import sqlalchemy as sa

from maintflow_core.models import Outbox
from maintflow_core.queues import DELIVER_WEBHOOKS
from maintflow_core.settings import Settings
from tests.conftest import TeamCtx
from tests.unit.test_webhook_ssrf import REFUSED_HOSTS

PUBLIC_URL = "https://93.184.215.14/hooks"  # only registered and deleted, never sent to
LOCAL_URL = "http://127.0.0.1:9/hooks"


def body(url: str = PUBLIC_URL, events: list[str] | None = None) -> dict[str, object]:
    return {"url": url, "events": events or ["batch.completed"], "description": "ops channel"}


def field_of(r: httpx.Response) -> set[str]:
    """The body fields a 422 names."""
    return {str(e["loc"][1]) for e in r.json()["detail"] if e["loc"][0] == "body"}


async def test_a_public_url_is_registered_with_a_secret_shown_once_then_deleted(
    team: TeamCtx,
) -> None:
    # Nothing is raised while it exists, and it is deleted here: nothing is ever sent to it.
    r = await team.req("POST", "/v1/webhooks", json=body())
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["secret"].startswith("whsec_")
    assert len(base64.b64decode(created["secret"].removeprefix("whsec_"))) == 32
    assert created["url"] == PUBLIC_URL and created["events"] == ["batch.completed"]
    assert created["enabled"] is True
    hook = f"/v1/webhooks/{created['id']}"
    read = (await team.req("GET", hook)).json()
    assert "secret" not in read and read["description"] == "ops channel"
    listed = (await team.req("GET", "/v1/webhooks")).json()["items"]
    assert [w["id"] for w in listed] == [created["id"]] and "secret" not in listed[0]
    assert (await team.req("DELETE", hook)).status_code == 204
    assert (await team.req("GET", hook)).status_code == 404


@pytest.mark.parametrize(("host", "why"), REFUSED_HOSTS)
async def test_a_url_on_a_non_global_address_is_refused_naming_url(
    team: TeamCtx, host: str, why: str
) -> None:
    r = await team.req("POST", "/v1/webhooks", json=body(f"http://{host}:8080/hooks"))
    assert r.status_code == 422, r.text
    assert field_of(r) == {"url"} and why in r.text


@pytest.mark.parametrize(
    "url", ["http://localhost:8080/x", "ftp://93.184.215.14/x", "https://u:p@93.184.215.14/"]
)
async def test_a_local_name_or_a_scheme_other_than_http_is_refused_naming_url(
    team: TeamCtx, url: str
) -> None:
    r = await team.req("POST", "/v1/webhooks", json=body(url))
    assert r.status_code == 422 and field_of(r) == {"url"}, r.text


async def test_private_targets_are_accepted_when_the_operator_allows_them(
    team: TeamCtx, settings: Settings
) -> None:
    settings.webhook_allow_private = True
    r = await team.req("POST", "/v1/webhooks", json=body(LOCAL_URL))
    assert r.status_code == 201, r.text
    # Still only http(s).
    r = await team.req("POST", "/v1/webhooks", json=body("file:///etc/passwd"))
    assert r.status_code == 422 and field_of(r) == {"url"}


@pytest.mark.parametrize("events", [["batch.exploded"], [], ["batch.ready", "nope"]])
async def test_unknown_or_no_events_are_refused_naming_events(
    team: TeamCtx, events: list[str]
) -> None:
    r = await team.req("POST", "/v1/webhooks", json={"url": PUBLIC_URL, "events": events})
    assert r.status_code == 422, r.text
    assert field_of(r) == {"events"}


async def test_only_admins_manage_webhooks(team: TeamCtx) -> None:
    for role in ("viewer", "engineer"):
        token = await team.user(role)
        assert (await team.req("POST", "/v1/webhooks", token, json=body())).status_code == 403
        assert (await team.req("GET", "/v1/webhooks", token)).status_code == 403


async def test_another_teams_webhook_is_not_found(
    team: TeamCtx, other_team: TeamCtx, settings: Settings
) -> None:
    settings.webhook_allow_private = True
    created = (await other_team.req("POST", "/v1/webhooks", json=body(LOCAL_URL))).json()
    hook = f"/v1/webhooks/{created['id']}"
    for method, url in (
        ("GET", hook),
        ("DELETE", hook),
        ("GET", f"{hook}/deliveries"),
        ("POST", f"{hook}/test"),
    ):
        assert (await team.req(method, url)).status_code == 404, (method, url)
    assert (await team.req("GET", "/v1/webhooks")).json()["items"] == []
    assert (await other_team.req("GET", hook)).status_code == 200
    unknown = f"/v1/webhooks/{uuid.uuid4()}"
    assert (await team.req("GET", unknown)).status_code == 404


async def test_the_test_route_queues_a_ping_with_its_message_id(
    team: TeamCtx, settings: Settings
) -> None:
    settings.webhook_allow_private = True
    created = (await team.req("POST", "/v1/webhooks", json=body(LOCAL_URL))).json()
    r = await team.req("POST", f"/v1/webhooks/{created['id']}/test")
    assert r.status_code == 202, r.text
    sent = r.json()
    deliveries = (await team.req("GET", f"/v1/webhooks/{created['id']}/deliveries")).json()
    (delivery,) = deliveries["items"]
    assert delivery["id"] == sent["delivery_id"] and delivery["event"] == "ping"
    assert (
        delivery["message_id"] == sent["message_id"] == f"msg_{uuid.UUID(sent['delivery_id']).hex}"
    )
    assert delivery["status"] == "queued" and delivery["attempts"] == 0
    assert delivery["attempt_log"] == []
    async with team.sessions() as db:
        payloads = list(
            await db.scalars(sa.select(Outbox.payload).where(Outbox.kind == DELIVER_WEBHOOKS.name))
        )
    assert payloads == [{"delivery_ids": [sent["delivery_id"]]}]


async def test_the_routes_have_stable_operation_ids(team: TeamCtx) -> None:
    spec = (await team.client.get("/openapi.json")).json()
    ids = {
        op["operationId"]
        for path, ops in spec["paths"].items()
        if path.startswith("/v1/webhooks")
        for op in ops.values()
    }
    assert ids == {
        "webhooks_create",
        "webhooks_list",
        "webhooks_get",
        "webhooks_delete",
        "webhooks_deliveries",
        "webhooks_test",
    }
