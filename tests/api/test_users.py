from __future__ import annotations

from tests.conftest import TeamCtx


async def test_me_returns_the_caller(team: TeamCtx) -> None:
    r = await team.req("GET", "/v1/users/me")
    assert r.status_code == 200
    assert r.json()["id"] == str(team.user_id)
    assert r.json()["role"] == "admin"
    assert r.json()["team_id"] == str(team.team_id)


async def test_admin_creates_a_user_whose_token_works_once_shown(team: TeamCtx) -> None:
    r = await team.req("POST", "/v1/users", json={"email": "eng@example.com", "role": "engineer"})
    assert r.status_code == 201
    body = r.json()
    assert body["role"] == "engineer" and body["token"].startswith("mf_")
    me = await team.req("GET", "/v1/users/me", token=body["token"])
    assert me.json()["email"] == "eng@example.com"
    listed = await team.req("GET", "/v1/users")
    assert all("token" not in u for u in listed.json()["items"])
    assert {u["email"] for u in listed.json()["items"]} >= {"eng@example.com"}


async def test_duplicate_email_in_team_is_a_conflict(team: TeamCtx) -> None:
    body = {"email": "dup@example.com", "role": "viewer"}
    assert (await team.req("POST", "/v1/users", json=body)).status_code == 201
    assert (await team.req("POST", "/v1/users", json=body)).status_code == 409


async def test_user_validation_names_the_field(team: TeamCtx) -> None:
    r = await team.req("POST", "/v1/users", json={"email": "not-an-email", "role": "owner"})
    assert r.status_code == 422
    fields = {tuple(e["loc"]) for e in r.json()["detail"]}
    assert ("body", "email") in fields and ("body", "role") in fields


async def test_deleted_users_token_stops_working_at_once(team: TeamCtx) -> None:
    r = await team.req("POST", "/v1/users", json={"email": "gone@example.com", "role": "engineer"})
    token, user_id = r.json()["token"], r.json()["id"]
    assert (await team.req("GET", "/v1/users/me", token=token)).status_code == 200
    assert (await team.req("DELETE", f"/v1/users/{user_id}")).status_code == 204
    assert (await team.req("GET", "/v1/users/me", token=token)).status_code == 401


async def test_tokens_are_stored_only_as_hashes(team: TeamCtx) -> None:
    import sqlalchemy as sa

    async with team.sessions() as db:
        stored = list(await db.scalars(sa.text("SELECT token_hash FROM api_tokens")))
    assert team.token not in stored
    assert all(len(h) == 64 for h in stored)


async def test_users_list_paginates(team: TeamCtx) -> None:
    for i in range(5):
        await team.req("POST", "/v1/users", json={"email": f"u{i}@example.com", "role": "viewer"})
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await team.req("GET", "/v1/users", params=params)).json()
        seen += [u["id"] for u in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 6 and len(set(seen)) == 6


async def test_ops_endpoints_answer(team: TeamCtx) -> None:
    assert (await team.client.get("/healthz")).json() == {"status": "ok"}
    ready = await team.client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["database"] == "ok"
    queues = (await team.req("GET", "/v1/ops/queues")).json()
    assert {q["name"] for q in queues} == {"fanout", "sessions", "webhooks", "system"}
    status = (await team.req("GET", "/v1/ops/scheduler")).json()
    assert status == {
        "leader_id": None,
        "leader_since": None,
        "last_tick_at": None,
        "due_backlog": 0,
    }
