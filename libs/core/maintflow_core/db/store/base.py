"""The store: the fire path's writes and hot reads, on one kind of database. It is where
PostgreSQL and SQLite differ — a claim's writes in one statement or several, sessions by COPY or
executemany, the fan-out's per-target statements on raw asyncpg connections or in SQLAlchemy
transactions, `INSERT … ON CONFLICT` spelled per dialect — so that nothing else has to ask which
database it is on. Each entry point picks one implementation once (`open_store`) and passes it
in; both are run by the same integration tests."""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any, NamedTuple, Protocol

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from maintflow_core.records import Advance, Fire
from maintflow_core.settings import Settings

# Told that a team has new notifications (None: any team may have; announcements were missed).
# May be called from any thread.
Wake = Callable[[uuid.UUID | None], None]


class SessionStatements(Protocol):
    """The fan-out's two statements for one target, each atomic on its own."""

    async def create_session(
        self, batch_id: uuid.UUID, label: str, notes: str | None, now: datetime
    ) -> bool:
        """Insert the target's session from the batch's snapshot unless it exists, and count it
        in the batch's progress. True if this call created it. Nothing is made for a batch
        whose snapshot is not taken yet (or that no longer exists), so the count is always
        compared with the batch's real target count."""
        ...

    async def counts_complete(self, batch_id: uuid.UUID) -> bool:
        """The one judgment of "the fan-out is complete": the batch is resolved, not yet ready,
        and every target is counted. Read after the creating statement committed: of several
        sessions committed at once, the one that commits last then sees every count, so the
        last session is never missed."""
        ...


class ClaimedRow(NamedTuple):
    id: uuid.UUID
    webhook_id: uuid.UUID
    attempts: int
    body: str
    url: str
    secret: str


class DeliveryStatements(Protocol):
    """A webhook delivery attempt's two hot statements (`usecases.webhook_delivery`), each
    atomic on its own."""

    async def claim_deliveries(
        self, delivery_ids: Sequence[uuid.UUID], lease_until: datetime
    ) -> list[ClaimedRow]:
        """Take the next attempt of each of these deliveries that is queued and whose webhook
        is enabled: `delivering`, one more attempt, leased until `lease_until`. The others
        (taken, finished, webhook disabled) are left alone and not returned."""
        ...

    async def settle_delivery(self, attempt: dict[str, Any], moved: dict[str, Any]) -> bool:
        """If the attempt (`attempt`: delivery_id, number, started_at, duration_ms,
        status_code, error) is still its delivery's current one (`delivering`, that many
        attempts), move the delivery on (`moved`: status, last_status_code, last_error,
        next_attempt_at, finished_at) and add the attempt row, together. False: it was not
        (the leader drove the delivery again meanwhile), and nothing is written."""
        ...


class WorkerStatements(SessionStatements, DeliveryStatements, Protocol):
    """The statements of a worker's hot paths, on the worker's own connections."""


class SessionWriter(ABC):
    """Where a worker process runs its hot-path statements (`WorkerStatements`): connections of
    its own, opened on first use (on the event loop of the actors) and closed by `dispose`."""

    @abstractmethod
    def connect(self) -> AbstractAsyncContextManager[WorkerStatements]: ...

    async def dispose(self) -> None:
        return None


class Store(ABC):
    """One database's way of doing the fire path. Callers own the transactions of the methods
    that take a `db`; `SessionWriter` manages its own."""

    name: str

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @abstractmethod
    def worker_engine(self, pool_size: int) -> AsyncEngine:
        """The engine of a worker process's actors (at most `pool_size` of them run at once)."""

    @abstractmethod
    def session_writer(self, engine: AsyncEngine, pool_size: int) -> SessionWriter:
        """The fan-out's per-target statements for a worker process whose actors use `engine`
        (see `worker_engine`)."""

    def read_sessionmaker(self, engine: AsyncEngine) -> async_sessionmaker[AsyncSession] | None:
        """Sessions for requests that only read, when the database can skip their transaction
        (None: read in ordinary transactions)."""
        return None

    @abstractmethod
    async def write_fires(
        self, db: AsyncSession, fires: Sequence[Fire], advances: Sequence[Advance] = ()
    ) -> list[uuid.UUID]:
        """Insert the fires' batches — a scheduled instant already fired (the unique index on
        (schedule_id, scheduled_for)) is skipped — and the outbox row of each batch inserted;
        move the claimed schedules on. Returns the ids of the batches inserted."""

    @abstractmethod
    async def insert_sessions(self, db: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
        """Insert new sessions (`records.session_rows`) in one round trip, inside the caller's
        transaction (which must already have begun)."""

    async def insert_once(
        self, db: AsyncSession, table: type[Any], values: dict[str, Any], key: Sequence[str]
    ) -> bool:
        """Insert a row unless one with the same `key` (a unique constraint) exists. True if
        this call inserted it."""
        return bool(await self.insert_many_once(db, table, [values], key))

    async def insert_many_once(
        self,
        db: AsyncSession,
        table: type[Any],
        rows: Sequence[dict[str, Any]],
        key: Sequence[str],
    ) -> list[Any]:
        """Insert `rows` (each with its `id`) in one statement, skipping each whose `key` (a
        unique constraint) another row already has. Returns the ids of the rows inserted."""
        if not rows:
            return []
        insert = self.conflict_insert(db, table).on_conflict_do_nothing(index_elements=key)
        return list((await db.execute(insert.returning(table.id), list(rows))).scalars())

    @abstractmethod
    def conflict_insert(self, db: AsyncSession, table: type[Any]) -> Any:
        """An INSERT into `table` that can take ON CONFLICT, as this database spells it."""

    @abstractmethod
    async def announce_notification(self, db: AsyncSession, team_id: uuid.UUID) -> None:
        """Wake the live streams of `team_id` — on every API process — once the caller's
        transaction commits (never before, never if it rolls back). Only a wake-up: streams
        read the notifications from the table, so a lost announcement delays, never loses."""

    @abstractmethod
    def notification_wakeups(self, wake: Wake) -> AbstractAsyncContextManager[None]:
        """While open, call `wake(team_id)` for each notification announced (see
        `announce_notification`) by every process this store's database can hear from, and
        `wake(None)` whenever some may have been missed."""
