"""The API without its database: a lost or refused connection is a 503 the client may retry,
and the API recovers on its own (it does not ping pooled connections before use)."""

from __future__ import annotations

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from maintflow_api.app import create_app
from maintflow_core.clock import FakeClock
from maintflow_core.settings import Settings
from tests.conftest import TeamCtx


async def test_a_dropped_connection_is_a_503_to_retry_and_the_next_request_works(
    team: TeamCtx, engine: AsyncEngine
) -> None:
    assert (await team.req("GET", "/v1/flows")).status_code == 200
    async with engine.connect() as conn:  # the database restarts, as far as the API can tell
        await conn.execute(
            sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
    lost = await team.req("GET", "/v1/flows")
    assert lost.status_code == 503
    assert lost.headers["Retry-After"] == "1"
    assert lost.json() == {"detail": "database unavailable, retry"}
    assert (await team.req("GET", "/v1/flows")).status_code == 200


async def test_a_refused_connection_is_a_503(settings: Settings, clock: FakeClock) -> None:
    url = sa.make_url(settings.database_url).set(host="127.0.0.1", port=9)  # nothing listens
    down = settings.model_copy(update={"database_url": url.render_as_string(False)})
    app = create_app(down, clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            r = await c.get("/v1/flows", headers={"Authorization": "Bearer mf_" + "x" * 40})
    assert r.status_code == 503
    assert r.headers["Retry-After"] == "1"
