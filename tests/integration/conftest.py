"""The fire path's integration tests run on both databases maintflow supports, and so on both
stores: PostgreSQL (the distributed mode's, PostgresStore) and SQLite (the embedded mode's,
PortableStore). Each test that uses the database is run once on each; on SQLite it gets a fresh
copy of a migrated database file."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from maintflow_core.db import migrate
from maintflow_core.db.base import Base
from maintflow_core.db.session import create_engine, create_sessionmaker
from maintflow_core.db.store import PortableStore, PostgresStore, Store, open_store
from maintflow_core.settings import Settings

DATABASES = ("postgres", "sqlite")


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite database, copied for each test (a copy takes a millisecond)."""
    path = tmp_path_factory.mktemp("sqlite-template") / "maintflow.db"
    migrate.upgrade(sqlite_url(path))
    return path


@pytest.fixture(params=DATABASES)
def database(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def settings(
    base_settings: Settings, database: str, sqlite_template: Path, tmp_path: Path
) -> Settings:
    if database == "postgres":
        return base_settings.model_copy()
    path = tmp_path / "maintflow.db"
    shutil.copyfile(sqlite_template, path)
    return base_settings.model_copy(update={"database_url": sqlite_url(path)})


@pytest.fixture
def store(settings: Settings, database: str) -> Store:
    """The store an entry point would choose for this database: each test runs on both."""
    chosen = open_store(settings)
    assert isinstance(chosen, PostgresStore if database == "postgres" else PortableStore)
    return chosen


@pytest.fixture
async def engine(
    engine: AsyncEngine, settings: Settings, database: str
) -> AsyncIterator[AsyncEngine]:
    """PostgreSQL: the session's engine (tests/conftest.py), its tables emptied first. SQLite:
    an engine on this test's copy."""
    if database == "postgres":
        names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
        async with engine.begin() as conn:
            await conn.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        yield engine
        return
    sqlite = create_engine(settings)
    yield sqlite
    await sqlite.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_sessionmaker(engine)


@pytest.fixture(autouse=True)
def clean_database() -> None:
    """Replaces the suite's own (which empties PostgreSQL's tables): `engine` does it here."""
