"""What an actor needs at run time: settings, a clock and a database engine that belongs to the
worker's own event loop. Set once per worker process by `configure`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
)

from maintflow_core.clock import Clock, SystemClock
from maintflow_core.db.session import create_engine, create_sessionmaker
from maintflow_core.settings import Settings
from maintflow_core.usecases import fanout

# Everything a worker writes can be derived again from the batch's snapshot: a PostgreSQL crash
# that loses the last few hundred ms of commits leaves a batch short of sessions (or not marked
# ready), which the reconciler re-drives. So the workers skip the WAL flush per commit, which
# otherwise bounds fan-out.
SERVER_SETTINGS = {"synchronous_commit": "off"}


async def _keep_session_state(conn: asyncpg.Connection) -> None:
    """Pool release hook: the hot path leaves no session state behind (no LISTEN, cursors,
    advisory locks or SETs), so skip asyncpg's default reset query — a round trip per message.
    An open transaction is still rolled back by asyncpg before this runs."""


@dataclass
class WorkerContext:
    settings: Settings
    clock: Clock = field(default_factory=SystemClock)
    # The broker actors enqueue follow-up messages on (None: Dramatiq's global broker).
    broker: Any = None
    _engine: AsyncEngine | None = None
    _sessions: async_sessionmaker[AsyncSession] | None = None
    _pool: asyncpg.Pool | None = None

    @property
    def connections_per_pool(self) -> int:
        """A worker process runs at most `worker_threads` actors at once, each using one
        connection at a time: more would only hold PostgreSQL backends idle (the connection
        budget is in docs/operations.md)."""
        return self.settings.worker_threads

    @property
    def engine(self) -> AsyncEngine:
        # Built lazily, on first use, so it is created on the loop thread that runs the actors.
        if self._engine is None:
            # No pre-ping: a connection broken by a database restart fails one message, which
            # is retried; pinging would add a round trip to every one of them.
            options: dict[str, Any] = {"pool_pre_ping": False}
            if not self.settings.is_sqlite:
                # See SERVER_SETTINGS and `connections_per_pool`.
                options["connect_args"] = {"server_settings": SERVER_SETTINGS}
                options["pool_size"] = self.connections_per_pool
                options["max_overflow"] = 0
            self._engine = create_engine(self.settings, **options)
            self._sessions = create_sessionmaker(self._engine)
        return self._engine

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        self.engine  # noqa: B018  (ensures the sessionmaker exists)
        assert self._sessions is not None
        async with self._sessions() as db, db.begin():
            yield db

    @asynccontextmanager
    async def single_statement(self) -> AsyncIterator[fanout.Executor]:
        """A connection for statements that are atomic on their own (the per-message hot path).
        On PostgreSQL: a raw asyncpg connection in autocommit, from a pool of the worker's own,
        so each statement is one prepared-statement round trip with no ORM layer, no
        BEGIN/COMMIT and no reset query on release. SQLite, whose portable paths take several
        statements, gets a SQLAlchemy transaction committed at the end."""
        if self.settings.is_sqlite:
            async with self.engine.begin() as conn:
                yield conn
            return
        if self._pool is None:
            self._pool = await asyncpg.create_pool(
                make_url(self.settings.database_url)
                .set(drivername="postgresql")
                .render_as_string(hide_password=False),
                min_size=0,
                max_size=self.connections_per_pool,
                server_settings=SERVER_SETTINGS,
                reset=_keep_session_state,
                max_inactive_connection_lifetime=300,
            )
        async with self._pool.acquire() as conn:
            yield conn

    async def dispose(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None
            self._sessions = None


_context: WorkerContext | None = None


def configure(context: WorkerContext) -> None:
    global _context
    _context = context


def current() -> WorkerContext:
    if _context is None:
        raise RuntimeError(
            "worker context not configured: call maintflow_workers.context.configure"
        )
    return _context
