"""What an actor needs at run time: settings, a clock and a database engine that belongs to the
worker's own event loop. Set once per worker process by `configure`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
)

from maintflow_core.clock import Clock, SystemClock
from maintflow_core.db.session import create_engine, create_sessionmaker
from maintflow_core.settings import Settings


@dataclass
class WorkerContext:
    settings: Settings
    clock: Clock = field(default_factory=SystemClock)
    # The broker actors enqueue follow-up messages on (None: Dramatiq's global broker).
    broker: Any = None
    _engine: AsyncEngine | None = None
    _sessions: async_sessionmaker[AsyncSession] | None = None

    @property
    def engine(self) -> AsyncEngine:
        # Built lazily, on first use, so it is created on the loop thread that runs the actors.
        if self._engine is None:
            # No pre-ping: a connection broken by a database restart fails one message, which
            # is retried; pinging would add a round trip to every one of them.
            options: dict[str, Any] = {"pool_pre_ping": False}
            if not self.settings.is_sqlite:
                # Everything a worker writes can be derived again from the batch's snapshot: a
                # PostgreSQL crash that loses the last few hundred ms of commits leaves a batch
                # short of sessions (or not marked ready), which the reconciler re-drives. So
                # the workers skip the WAL flush per commit, which otherwise bounds fan-out.
                options["connect_args"] = {"server_settings": {"synchronous_commit": "off"}}
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
    async def single_statement(self) -> AsyncIterator[AsyncConnection]:
        """A connection for statements that are atomic on their own. On PostgreSQL it runs in
        autocommit (no BEGIN/COMMIT round trips); SQLite, whose portable paths take several
        statements, gets a transaction committed at the end."""
        if self.engine.dialect.name == "postgresql":
            async with self.engine.connect() as conn:
                yield await conn.execution_options(isolation_level="AUTOCOMMIT")
        else:
            async with self.engine.begin() as conn:
                yield conn

    async def dispose(self) -> None:
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
