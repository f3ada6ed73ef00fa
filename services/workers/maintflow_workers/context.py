"""What an actor needs at run time: settings, the store, a clock, the broker to enqueue follow-up
messages on, and database connections that belong to the worker's own event loop. Set once per
worker process by `configure`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from maintflow_core import ssrf
from maintflow_core.clock import Clock, SystemClock
from maintflow_core.db.session import create_sessionmaker
from maintflow_core.db.store import SessionWriter, Store, WorkerStatements
from maintflow_core.settings import Settings
from maintflow_workers.webhooks import WebhookSender


@dataclass
class WorkerContext:
    settings: Settings
    clock: Clock = field(default_factory=SystemClock)
    # The broker actors enqueue follow-up messages on (None: Dramatiq's global broker).
    broker: Any = None
    store: Store = field(kw_only=True)
    # How webhook hosts are resolved at connect time (tests pin DNS answers with it).
    resolver: ssrf.Resolver = field(default=ssrf.system_resolver, kw_only=True)
    _engine: AsyncEngine | None = None
    _open_db: async_sessionmaker[AsyncSession] | None = None
    _writer: SessionWriter | None = None
    _sender: WebhookSender | None = None

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
            self._engine = self.store.worker_engine(self.connections_per_pool)
            self._open_db = create_sessionmaker(self._engine)
        return self._engine

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        self.engine  # noqa: B018  (ensures the sessionmaker exists)
        assert self._open_db is not None
        async with self._open_db() as db, db.begin():
            yield db

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[AsyncConnection]:
        """A transaction on a plain connection of the actors' engine, for Core statements
        only (no ORM session)."""
        async with self.engine.begin() as conn:
            yield conn

    def statements(self) -> AbstractAsyncContextManager[WorkerStatements]:
        """The hot paths' statements (the fan-out's per target, a webhook delivery's claim and
        outcome), on the store's connections."""
        if self._writer is None:
            self._writer = self.store.session_writer(self.engine, self.connections_per_pool)
        return self._writer.connect()

    @property
    def webhooks(self) -> WebhookSender:
        """The webhook sender; built on first use, on the loop thread that runs the actors."""
        if self._sender is None:
            self._sender = WebhookSender(self.settings, self.clock, self.resolver)
        return self._sender

    async def dispose(self) -> None:
        if self._sender is not None:
            # Requests in flight finish (or are cancelled after the timeout) before the pools
            # their outcomes are recorded through close.
            await self._sender.aclose()
            self._sender = None
        if self._writer is not None:
            await self._writer.dispose()
            self._writer = None
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None
            self._open_db = None


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
