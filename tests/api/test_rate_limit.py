"""The per-token request limit in one process (the in-memory store of `maintflow dev`); the
distributed mode's, shared through Redis by two API processes, is in tests/e2e/test_api_contract.py.
The limits are set per test with a long window, so that how fast the requests go does not matter."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from pydantic import ValidationError

from maintflow_api.app import create_app
from maintflow_core.clock import FakeClock
from maintflow_core.settings import Settings
from tests.conftest import MakeTeam, TeamCtx, new_flow


@pytest.fixture
async def limited(settings: Settings, clock: FakeClock) -> AsyncIterator[httpx.AsyncClient]:
    tight = settings.model_copy(
        update={"rate_limit": "5/60 seconds", "launch_rate_limit": "2/60 seconds"}
    )
    app = create_app(tight, clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            yield c


def auth(t: TeamCtx, token: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token or t.token}"}


async def test_a_token_over_its_limit_gets_429_with_when_to_retry(
    limited: httpx.AsyncClient, make_team: MakeTeam
) -> None:
    team = await make_team("Alpha")
    statuses = [
        (await limited.get("/v1/users/me", headers=auth(team))).status_code for _ in range(5)
    ]
    assert statuses == [200] * 5
    refused = await limited.get("/v1/flows", headers=auth(team))
    assert refused.status_code == 429 and "too many requests" in refused.json()["detail"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.headers["RateLimit-Limit"] == "5"
    assert refused.headers["RateLimit-Remaining"] == "0"
    assert refused.headers["RateLimit-Reset"] == refused.headers["Retry-After"]
    assert refused.headers["RateLimit-Policy"] == "5;w=60"
    # Another token (of the same team) has its own budget; requests without one are not counted.
    other = await team.user("viewer")
    assert (await limited.get("/v1/users/me", headers=auth(team, other))).status_code == 200
    assert (await limited.get("/healthz")).status_code == 200


async def test_launches_have_a_lower_limit_of_their_own(
    limited: httpx.AsyncClient, make_team: MakeTeam
) -> None:
    team = await make_team("Alpha")
    flow = await new_flow(team)
    body = {"flow_id": flow["id"], "targets": [{"label": "web-01"}]}
    launches = [
        (await limited.post("/v1/sessions/batch", json=body, headers=auth(team))).status_code
        for _ in range(3)
    ]
    assert launches == [201, 201, 429]
    # Other requests still have budget left (5 in all: 3 launches counted, 2 more).
    assert (await limited.get("/v1/flows", headers=auth(team))).status_code == 200


def test_a_limit_that_cannot_be_read_stops_the_settings_naming_it() -> None:
    for value in ("fast", "0/1 second", "100/2 fortnights"):
        with pytest.raises(ValidationError, match="rate_limit"):
            Settings(rate_limit=value)
    assert Settings(rate_limit="10 per minute", launch_rate_limit="").launch_rate_limit == ""
