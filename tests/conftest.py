"""Fixtures: a fresh PostgreSQL database per test run (migrated once, truncated before each test),
Redis with a per-test key namespace, a fake clock, and an HTTP client on the real app."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from maintflow_api.app import create_app
from maintflow_core.clock import FakeClock
from maintflow_core.db import migrate
from maintflow_core.db.base import Base
from maintflow_core.db.session import create_engine, create_sessionmaker
from maintflow_core.settings import Settings
from maintflow_core.usecases.teams import create_team, create_user
from tests.kit.broker import drop_namespace
from tests.kit.seed import STEPS, new_flow, new_target_list

__all__ = ["STEPS", "new_flow", "new_target_list"]  # tests import them from here too

SERVER_URL = os.environ.get(
    "MAINTFLOW_TEST_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("MAINTFLOW_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
UNLIMITED = "1000000/1 second"  # a per-token rate limit no test reaches


def _plain(url: sa.URL) -> str:
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


async def create_database(name: str) -> str:
    server = make_url(SERVER_URL)
    conn = await asyncpg.connect(_plain(server))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return server.set(database=name).render_as_string(hide_password=False)


async def drop_database(name: str) -> None:
    conn = await asyncpg.connect(_plain(make_url(SERVER_URL)))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(scope="session")
async def database_url() -> AsyncIterator[str]:
    name = f"maintflow_test_{uuid.uuid4().hex[:12]}"
    url = await create_database(name)
    await migrate.upgrade_async(url)
    yield url
    await drop_database(name)


@pytest.fixture(scope="session")
def base_settings(database_url: str) -> Settings:
    # The in-process API tests (and the fuzzer) send requests faster than a person would with
    # one token: the per-token limit is raised here; tests/api/test_rate_limit.py and the
    # running-system tests use the shipped one.
    return Settings(
        database_url=database_url,
        redis_url=None,
        db_pool_size=5,
        rate_limit=UNLIMITED,
        launch_rate_limit=UNLIMITED,
    )


@pytest.fixture
def settings(base_settings: Settings) -> Settings:
    return base_settings.model_copy()


@pytest.fixture(scope="session")
async def engine(base_settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(base_settings)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_sessionmaker(engine)


@pytest.fixture(autouse=True)
async def clean_database(request: pytest.FixtureRequest) -> None:
    """Every test that touches PostgreSQL starts from empty tables."""
    if "engine" not in request.fixturenames:
        return
    engine: AsyncEngine = request.getfixturevalue("engine")
    names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    async with engine.begin() as conn:
        await conn.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture(scope="session")
def redis_url() -> str:
    return REDIS_URL


@pytest.fixture
def redis_namespace(redis_url: str) -> Iterator[str]:
    """A Dramatiq key namespace of this test only, deleted afterwards."""
    namespace = f"mftest-{uuid.uuid4().hex[:10]}"
    yield namespace
    drop_namespace(redis_url, namespace)


@dataclass
class TeamCtx:
    team_id: uuid.UUID
    user_id: uuid.UUID
    token: str
    client: httpx.AsyncClient
    sessions: async_sessionmaker[AsyncSession]
    clock: FakeClock

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def req(
        self, method: str, url: str, token: str | None = None, **kw: Any
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token or self.token}", **kw.pop("headers", {})}
        return await self.client.request(method, url, headers=headers, **kw)

    async def user(self, role: str) -> str:
        """A new user of this team with `role`; returns their token."""
        async with self.sessions() as db, db.begin():
            _user, token = await create_user(
                db, self.clock, self.team_id, f"{role}-{uuid.uuid4().hex[:6]}@example.com", role
            )
        return token


@pytest.fixture
async def client(
    settings: Settings, clock: FakeClock, engine: AsyncEngine
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            yield c


MakeTeam = Callable[[str], Awaitable[TeamCtx]]


@pytest.fixture
def make_team(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], clock: FakeClock
) -> MakeTeam:
    async def make(name: str = "Team") -> TeamCtx:
        async with sessions() as db, db.begin():
            new = await create_team(db, clock, name)
        return TeamCtx(new.team.id, new.admin.id, new.token, client, sessions, clock)

    return make


@pytest.fixture
async def team(make_team: MakeTeam) -> TeamCtx:
    return await make_team("Alpha")


@pytest.fixture
async def other_team(make_team: MakeTeam) -> TeamCtx:
    return await make_team("Bravo")
