"""One migration history for PostgreSQL and SQLite: `upgrade head` produces exactly the models'
schema on both, and down/up round trips work."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from maintflow_core.db import migrate
from maintflow_core.db.base import Base
from tests.conftest import create_database, drop_database


async def _diff_and_tables(url: str) -> tuple[list[Any], set[str]]:
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:

            def inspect(sync_conn: sa.Connection) -> tuple[list[Any], set[str]]:
                context = MigrationContext.configure(sync_conn, opts={"compare_type": True})
                diff = compare_metadata(context, Base.metadata)
                return diff, set(sa.inspect(sync_conn).get_table_names())

            return await conn.run_sync(inspect)
    finally:
        await engine.dispose()


async def _round_trip(url: str) -> None:
    await migrate.upgrade_async(url)
    diff, tables = await _diff_and_tables(url)
    assert diff == [], diff
    assert tables >= {t.name for t in Base.metadata.sorted_tables}
    await migrate.downgrade_async(url, "base")
    _diff, tables = await _diff_and_tables(url)
    assert tables <= {"alembic_version"}
    await migrate.upgrade_async(url)
    diff, _tables = await _diff_and_tables(url)
    assert diff == []


async def test_migrations_match_the_models_on_postgresql() -> None:
    name = f"maintflow_mig_{uuid.uuid4().hex[:10]}"
    url = await create_database(name)
    try:
        await _round_trip(url)
    finally:
        await drop_database(name)


async def test_migrations_match_the_models_on_sqlite(tmp_path: Path) -> None:
    await _round_trip(f"sqlite+aiosqlite:///{tmp_path / 'nested' / 'm.db'}")


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
async def test_the_partial_unique_index_allows_run_now_at_a_scheduled_instant(
    backend: str, tmp_path: Path
) -> None:
    """A run-now batch may share its instant with a scheduled one; two scheduled may not."""
    name = f"maintflow_mig_{uuid.uuid4().hex[:10]}"
    url = (
        await create_database(name)
        if backend == "postgresql"
        else f"sqlite+aiosqlite:///{tmp_path / 'u.db'}"
    )
    try:
        await migrate.upgrade_async(url)
        engine = create_async_engine(url, poolclass=NullPool)
        tables = Base.metadata.tables
        team, flow, sched = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        now = datetime(2026, 6, 1, 9, tzinfo=UTC)
        async with engine.begin() as conn:
            await conn.execute(
                tables["teams"].insert(), {"id": team, "name": "t", "created_at": now}
            )
            await conn.execute(
                tables["flows"].insert(),
                {
                    "id": flow,
                    "team_id": team,
                    "name": "f",
                    "flow_type": "maintenance",
                    "steps": [],
                    "created_at": now,
                    "updated_at": now,
                },
            )
            await conn.execute(
                tables["maintenance_schedules"].insert(),
                {
                    "id": sched,
                    "team_id": team,
                    "flow_id": flow,
                    "cron_expression": "0 9 * * *",
                    "timezone": "UTC",
                    "misfire_policy": "skip",
                    "is_active": True,
                    "created_at": now,
                    "updated_at": now,
                },
            )

        def batch(trigger: str) -> dict[str, Any]:
            return {
                "id": uuid.uuid4(),
                "team_id": team,
                "flow_id": flow,
                "schedule_id": sched,
                "trigger": trigger,
                "scheduled_for": now,
                "target_count": 0,
                "sessions_created": 0,
                "created_at": now,
            }

        async with engine.begin() as conn:
            await conn.execute(tables["batches"].insert(), batch("schedule"))
            await conn.execute(tables["batches"].insert(), batch("run_now"))
        with pytest.raises(sa.exc.IntegrityError):
            async with engine.begin() as conn:
                await conn.execute(tables["batches"].insert(), batch("schedule"))
        await engine.dispose()
    finally:
        if backend == "postgresql":
            await drop_database(name)
