"""A test's own access to a run's PostgreSQL database, outside the processes under test."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url


def plain_pg_url(database_url: str) -> str:
    """postgresql+asyncpg://… (SQLAlchemy) → postgresql://… (asyncpg)."""
    url = make_url(database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


class Probe:
    """A small asyncpg pool that survives a PostgreSQL restart (a query on a dead connection
    fails once; the pool reconnects on the next)."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._pool: asyncpg.Pool | None = None
        self.errors: Counter[str] = Counter()  # failed try_fetch calls by exception type

    async def fetch(self, query: str, *args: Any, timeout: float = 10.0) -> list[asyncpg.Record]:
        if self._pool is None:
            self._pool = await asyncpg.create_pool(self.dsn, min_size=0, max_size=4)
        async with self._pool.acquire(timeout=timeout) as conn:
            return list(await conn.fetch(query, *args, timeout=timeout))

    async def fetchval(self, query: str, *args: Any, timeout: float = 10.0) -> Any:
        rows = await self.fetch(query, *args, timeout=timeout)
        return rows[0][0] if rows else None

    async def try_fetch(self, query: str, *args: Any) -> list[asyncpg.Record] | None:
        """`fetch`, or None while the database is unreachable. Any error counts as unreachable
        (a restart surfaces as many exception types, from the pool as well as the driver); the
        types are counted for the report."""
        try:
            return await self.fetch(query, *args, timeout=3.0)
        except Exception as exc:
            self.errors[type(exc).__name__] += 1
            return None

    async def connects(self) -> bool:
        """Whether a new connection can be opened and answer within a second (no pool)."""
        try:
            conn = await asyncpg.connect(self.dsn, timeout=1.0)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
            return False
        try:
            await conn.fetchval("SELECT 1", timeout=1.0)
            return True
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
            return False
        finally:
            conn.terminate()

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(pool.close(), 5)
            pool.terminate()
