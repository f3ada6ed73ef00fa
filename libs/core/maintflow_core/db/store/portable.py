"""The portable store: SQLAlchemy Core only, for SQLite (the embedded mode) and any database
SQLAlchemy can write `INSERT … ON CONFLICT` for. A claim's writes are a few executemany
statements; the fan-out's per-target statements share one SQLAlchemy transaction."""

from __future__ import annotations

import threading
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from sqlalchemy.orm import Session as OrmSession

from maintflow_core.db.session import create_engine
from maintflow_core.db.store.base import (
    ClaimedRow,
    SessionWriter,
    Store,
    Wake,
    WorkerStatements,
)
from maintflow_core.models import (
    Batch,
    BatchProgress,
    MaintenanceSchedule,
    Outbox,
    Session,
    Webhook,
    WebhookAttempt,
    WebhookDelivery,
)
from maintflow_core.records import Advance, Fire, progress_shard, session_rows


def _on_conflict_insert(db: AsyncSession | AsyncConnection, table: Any) -> Any:
    """An INSERT that can take ON CONFLICT: SQLAlchemy spells it per dialect."""
    name = db.get_bind().dialect.name if isinstance(db, AsyncSession) else db.dialect.name
    return (postgresql.insert if name == "postgresql" else sqlite.insert)(table)


class _LocalAnnouncements:
    """Announcements within this process (the embedded mode runs the API and the workers in
    one): the teams a transaction raised events for, told to every listener on its commit. A
    SQLite file has no way to tell other processes; their streams find new rows by polling."""

    KEY = "maintflow.announce"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._listeners: list[Wake] = []
        sa.event.listen(OrmSession, "after_commit", self._committed)
        sa.event.listen(OrmSession, "after_rollback", self._rolled_back)

    def pending(self, db: AsyncSession) -> set[uuid.UUID]:
        teams: set[uuid.UUID] = db.info.setdefault(self.KEY, set())
        return teams

    def _committed(self, session: OrmSession) -> None:
        teams = session.info.pop(self.KEY, None)
        if not teams:
            return
        with self._lock:
            listeners = list(self._listeners)
        for wake in listeners:
            for team_id in teams:
                wake(team_id)

    def _rolled_back(self, session: OrmSession) -> None:
        session.info.pop(self.KEY, None)

    @asynccontextmanager
    async def listening(self, wake: Wake) -> AsyncIterator[None]:
        with self._lock:
            self._listeners.append(wake)
        try:
            yield
        finally:
            with self._lock:
                self._listeners.remove(wake)


_local = _LocalAnnouncements()


class PortableStore(Store):
    name = "portable"

    def worker_engine(self, pool_size: int) -> AsyncEngine:
        return create_engine(self.settings, pool_pre_ping=False)

    def session_writer(self, engine: AsyncEngine, pool_size: int) -> SessionWriter:
        return _PortableSessionWriter(engine)

    async def write_fires(
        self, db: AsyncSession, fires: Sequence[Fire], advances: Sequence[Advance] = ()
    ) -> list[uuid.UUID]:
        new_ids: list[uuid.UUID] = []
        if fires:
            # executemany with RETURNING: SQLAlchemy batches it into few multi-row statements.
            inserted = await db.execute(
                _on_conflict_insert(db, Batch)
                .on_conflict_do_nothing(
                    index_elements=["schedule_id", "scheduled_for"],
                    index_where=sa.text("trigger = 'schedule'"),
                )
                .returning(Batch.id),
                [f.batch for f in fires],
            )
            new_ids = list(inserted.scalars())
        if new_ids:
            new = set(new_ids)
            await db.execute(sa.insert(Outbox), [f.message for f in fires if f.id in new])
        if advances:
            table = cast(sa.Table, MaintenanceSchedule.__table__)
            await db.execute(
                sa.update(table)
                .where(table.c.id == sa.bindparam("b_id"))
                .values(
                    next_run_at=sa.bindparam("next_run_at"),
                    last_run_at=sa.func.coalesce(sa.bindparam("last_run_at"), table.c.last_run_at),
                ),
                [
                    {
                        "b_id": a.schedule_id,
                        "next_run_at": a.next_run_at,
                        "last_run_at": a.last_run_at,
                    }
                    for a in advances
                ],
            )
        return new_ids

    async def insert_sessions(self, db: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            await db.execute(sa.insert(Session), list(rows))

    def conflict_insert(self, db: AsyncSession, table: type[Any]) -> Any:
        return _on_conflict_insert(db, table)

    async def announce_notification(self, db: AsyncSession, team_id: uuid.UUID) -> None:
        _local.pending(db).add(team_id)

    def notification_wakeups(self, wake: Wake) -> AbstractAsyncContextManager[None]:
        return _local.listening(wake)


def _claim_delivery() -> sa.Update:
    # SQLite's RETURNING may not name an UPDATE's FROM table, but may hold subqueries.
    d = WebhookDelivery
    url = sa.select(Webhook.url).where(Webhook.id == d.webhook_id).scalar_subquery()
    secret = sa.select(Webhook.secret).where(Webhook.id == d.webhook_id).scalar_subquery()
    enabled = sa.exists().where(Webhook.id == d.webhook_id, Webhook.disabled_at.is_(None))
    return (
        sa.update(d)
        .where(d.id.in_(sa.bindparam("delivery_ids", expanding=True)), d.status == "queued")
        .where(enabled)
        .values(
            status="delivering",
            attempts=d.attempts + 1,
            next_attempt_at=sa.bindparam("lease_until"),
        )
        .returning(d.id, d.webhook_id, d.attempts, d.body, url, secret)
    )


# Built once: building them per delivery costs more than running them.
_CLAIM_DELIVERY = _claim_delivery()
_SETTLE_DELIVERY = (
    sa.update(WebhookDelivery)
    .where(
        WebhookDelivery.id == sa.bindparam("delivery_id"),
        WebhookDelivery.status == "delivering",
        WebhookDelivery.attempts == sa.bindparam("number"),
    )
    .values(
        {
            name: sa.bindparam(f"moved_{name}")
            for name in (
                "status",
                "last_status_code",
                "last_error",
                "next_attempt_at",
                "finished_at",
            )
        }
    )
)
_ADD_ATTEMPT = sa.insert(WebhookAttempt)


class _PortableStatements:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def claim_deliveries(
        self, delivery_ids: Sequence[uuid.UUID], lease_until: datetime
    ) -> list[ClaimedRow]:
        taken = await self.conn.execute(
            _CLAIM_DELIVERY, {"delivery_ids": list(delivery_ids), "lease_until": lease_until}
        )
        return [ClaimedRow(*row) for row in taken]

    async def settle_delivery(self, attempt: dict[str, Any], moved: dict[str, Any]) -> bool:
        values = {f"moved_{name}": value for name, value in moved.items()}
        updated = await self.conn.execute(
            _SETTLE_DELIVERY,
            {"delivery_id": attempt["delivery_id"], "number": attempt["number"], **values},
        )
        if updated.rowcount == 0:
            return False
        await self.conn.execute(_ADD_ATTEMPT, attempt)
        return True

    async def create_session(
        self, batch_id: uuid.UUID, label: str, notes: str | None, now: datetime
    ) -> bool:
        batch = (
            await self.conn.execute(
                sa.select(Batch.team_id, Batch.flow_id, Batch.steps, Batch.intake).where(
                    Batch.id == batch_id, Batch.steps.is_not(None)
                )
            )
        ).one_or_none()
        if batch is None:
            return False
        (row,) = session_rows(
            team_id=batch.team_id,
            batch_id=batch_id,
            flow_id=batch.flow_id,
            targets=[{"label": label, "notes": notes}],
            steps=batch.steps,
            intake=batch.intake,
            now=now,
        )
        inserted = await self.conn.execute(
            _on_conflict_insert(self.conn, Session)
            .values(row)
            .on_conflict_do_nothing(index_elements=["batch_id", "target_label"])
            .returning(Session.id)
        )
        if inserted.scalar_one_or_none() is None:
            return False
        upsert = _on_conflict_insert(self.conn, BatchProgress).values(
            batch_id=batch_id, shard=progress_shard(), created=1, updated_at=now
        )
        await self.conn.execute(
            upsert.on_conflict_do_update(
                index_elements=["batch_id", "shard"],
                set_={"created": BatchProgress.created + 1, "updated_at": now},
            )
        )
        return True

    async def counts_complete(self, batch_id: uuid.UUID) -> bool:
        row = (
            await self.conn.execute(
                sa.select(
                    Batch.target_count,
                    Batch.ready_at,
                    sa.select(sa.func.coalesce(sa.func.sum(BatchProgress.created), 0))
                    .where(BatchProgress.batch_id == batch_id)
                    .scalar_subquery(),
                ).where(Batch.id == batch_id, Batch.steps.is_not(None))
            )
        ).one_or_none()
        return row is not None and row[1] is None and row[2] >= row[0]


class _PortableSessionWriter(SessionWriter):
    """Both statements in one transaction of the actors' engine, committed at the end (SQLite
    has one writer; each statement alone would not be atomic with its count)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[WorkerStatements]:
        async with self.engine.begin() as conn:
            yield _PortableStatements(conn)
