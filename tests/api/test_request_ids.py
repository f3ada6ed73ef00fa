"""Every answer carries an X-Request-ID: the client's when it is a sane one (1 to 128 printable
characters), else a new UUID — a 401, a 404 and a refused body included."""

from __future__ import annotations

import uuid

import httpx

from tests.conftest import TeamCtx

HEADER = "X-Request-ID"


async def test_a_sane_request_id_is_returned_as_sent(team: TeamCtx) -> None:
    r = await team.req("GET", "/v1/flows", headers={HEADER: "change-1234/step 2"})
    assert r.status_code == 200 and r.headers[HEADER] == "change-1234/step 2"


async def test_an_unusable_request_id_is_replaced_by_a_new_one(client: httpx.AsyncClient) -> None:
    for sent in ("x" * 129, "tab\there", ""):
        r = await client.get("/healthz", headers={HEADER: sent})
        assert r.status_code == 200
        assert r.headers[HEADER] != sent and uuid.UUID(r.headers[HEADER])


async def test_errors_carry_a_request_id_too(client: httpx.AsyncClient, team: TeamCtx) -> None:
    unauthenticated = await client.get("/v1/flows")
    missing = await team.req("GET", f"/v1/batches/{uuid.uuid4()}")
    too_big = await team.req(
        "POST", "/v1/flows", content=b"x" * (9 * 1024 * 1024), headers={HEADER: "big-one"}
    )
    assert unauthenticated.status_code == 401 and uuid.UUID(unauthenticated.headers[HEADER])
    assert missing.status_code == 404 and uuid.UUID(missing.headers[HEADER])
    assert too_big.status_code == 413 and too_big.headers[HEADER] == "big-one"
