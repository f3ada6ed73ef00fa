"""The worker side of a fire: resolve a batch's target and steps snapshot, list the targets that
still have no session, create one session idempotently, and mark the batch ready (with its one
"run ready" notification) exactly once — guarded by a conditional UPDATE and a unique index."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from maintflow_core.db.base import UTCDateTime
from maintflow_core.models import Batch, BatchProgress, Flow, Notification, Session, TargetList
from maintflow_core.usecases.bulk import SESSION_COLUMNS
from maintflow_core.usecases.firing import dialect_insert

READY_EVENT = "batch.ready"


def dialect_of(db: AsyncSession | AsyncConnection) -> str:
    return db.get_bind().dialect.name if isinstance(db, AsyncSession) else db.dialect.name


@dataclass(frozen=True)
class Resolved:
    batch_id: uuid.UUID
    target_count: int
    ready: bool
    missing: list[dict[str, Any]]


async def resolve_batch(db: AsyncSession, batch_id: uuid.UUID, now: datetime) -> Resolved | None:
    """Take the snapshot once (the first delivery wins; later ones reuse it) and return the
    targets still lacking a session. None when the batch no longer exists."""
    batch = await db.scalar(sa.select(Batch).where(Batch.id == batch_id).with_for_update())
    if batch is None:
        return None
    first_drive = batch.targets is None
    if first_drive:
        # The flow's steps and the list's targets as they are now, in one round trip.
        steps, targets = (
            await db.execute(
                sa.select(
                    sa.select(Flow.steps).where(Flow.id == batch.flow_id).scalar_subquery(),
                    sa.select(TargetList.targets)
                    .where(
                        TargetList.id == batch.target_list_id, TargetList.team_id == batch.team_id
                    )
                    .scalar_subquery(),
                )
            )
        ).one()
        if targets is not None:
            await db.execute(
                sa.update(TargetList)
                .where(TargetList.id == batch.target_list_id)
                .values(last_used_at=now)
            )
        batch.targets = list(targets or [])
        batch.steps = steps if steps is not None else []
        batch.target_count = len(batch.targets)
    batch.driven_at = now
    ready = batch.ready_at is not None
    missing: list[dict[str, Any]] = []
    if not ready:
        # Sessions are made only from a resolved batch: on the first drive there are none yet.
        have: set[str] = set()
        if not first_drive:
            have = set(
                await db.scalars(
                    sa.select(Session.target_label).where(Session.batch_id == batch.id)
                )
            )
        missing = [t for t in batch.targets or [] if t["label"] not in have]
        if not missing:
            # Every session exists (a zero-target batch, or a re-drive after the last
            # create_session died between its commit and its completion check).
            ready = await mark_ready(db, batch.id, now)
    await db.flush()
    return Resolved(batch.id, batch.target_count, ready, missing)


PROGRESS_SHARDS = 32

# PostgreSQL: insert the session from the batch's snapshot and count it in a progress shard in
# one statement (a data-modifying CTE), atomic on its own: one round trip, no BEGIN/COMMIT. The
# SQL is in the driver's own `$n` form so the workers' hot path can run it as an asyncpg
# prepared statement (no SQLAlchemy layer per message); SQLAlchemy callers run the same text.
CREATE_SESSION_PG = """
    WITH ins AS (
        INSERT INTO sessions (id, team_id, batch_id, flow_id, target_label, target_notes, status,
                              steps, intake, created_at, updated_at)
        SELECT $1::uuid, b.team_id, b.id, b.flow_id, $3::text, $4::text, 'pending', b.steps,
               b.intake, $5::timestamptz, $5::timestamptz
          FROM batches b
         WHERE b.id = $2::uuid AND b.steps IS NOT NULL
        ON CONFLICT (batch_id, target_label) DO NOTHING
        RETURNING batch_id
    )
    INSERT INTO batch_progress AS p (batch_id, shard, created, updated_at)
    SELECT batch_id, $6::int, 1, $5::timestamptz FROM ins
    ON CONFLICT (batch_id, shard)
        DO UPDATE SET created = p.created + 1, updated_at = excluded.updated_at
    RETURNING created
"""

# Is every target of the resolved, not yet ready batch counted? (See `counts_complete`.)
COUNTS_COMPLETE_PG = """
    SELECT b.ready_at IS NULL
           AND (SELECT coalesce(sum(p.created), 0) FROM batch_progress p
                 WHERE p.batch_id = $1::uuid) >= b.target_count
      FROM batches b
     WHERE b.id = $1::uuid AND b.steps IS NOT NULL
"""


class RawConnection(Protocol):
    """What the hot path needs of a driver connection (asyncpg.Connection has it)."""

    async def fetchval(self, query: str, *args: Any) -> Any: ...


Executor = AsyncSession | AsyncConnection | RawConnection


async def _fetchval(db: Executor, sql: str, *args: Any) -> Any:
    if isinstance(db, AsyncSession):
        db = await db.connection()
    if isinstance(db, AsyncConnection):
        return (await db.exec_driver_sql(sql, args)).scalar()
    return await db.fetchval(sql, *args)


def _is_postgres(db: Executor) -> bool:
    return not isinstance(db, AsyncSession | AsyncConnection) or dialect_of(db) == "postgresql"


async def create_session(
    db: Executor, batch_id: uuid.UUID, label: str, notes: str | None, now: datetime
) -> bool:
    """Insert the target's session unless it exists, and count it. Returns True if this call
    created it; the caller commits, then calls `counts_complete` (or `complete_if_done`).

    `db` is a SQLAlchemy session/connection, or on PostgreSQL a raw asyncpg connection in
    autocommit (the workers' path). Sessions are made only from a resolved batch (steps snapshot
    taken), so the count is always compared with the real target count. The count lives in one
    of PROGRESS_SHARDS rows picked at random, so concurrent workers rarely wait on each other's
    row locks."""
    shard = random.randrange(PROGRESS_SHARDS)
    if _is_postgres(db):
        created = await _fetchval(
            db, CREATE_SESSION_PG, uuid.uuid4(), batch_id, label, notes, now, shard
        )
        return created is not None
    assert isinstance(db, AsyncSession | AsyncConnection)
    params = {
        "id": uuid.uuid4(),
        "batch_id": batch_id,
        "label": label,
        "notes": notes,
        "now": now,
        "shard": shard,
    }
    return await _create_portable(db, params)


async def _create_portable(db: AsyncSession | AsyncConnection, params: dict[str, Any]) -> bool:
    b = Batch
    source = sa.select(
        sa.literal(params["id"], sa.Uuid),
        b.team_id,
        b.id,
        b.flow_id,
        sa.literal(params["label"]),
        sa.literal(params["notes"], sa.Text),
        sa.literal("pending"),
        b.steps,
        b.intake,
        sa.literal(params["now"], UTCDateTime),
        sa.literal(params["now"], UTCDateTime),
    ).where(b.id == params["batch_id"], b.steps.is_not(None))
    inserted = await db.execute(
        dialect_insert(db, Session)
        .from_select(
            list(SESSION_COLUMNS),
            source,
        )
        .on_conflict_do_nothing(index_elements=["batch_id", "target_label"])
        .returning(Session.id)
    )
    if inserted.scalar_one_or_none() is None:
        return False
    upsert = dialect_insert(db, BatchProgress).values(
        batch_id=params["batch_id"], shard=params["shard"], created=1, updated_at=params["now"]
    )
    await db.execute(
        upsert.on_conflict_do_update(
            index_elements=["batch_id", "shard"],
            set_={"created": BatchProgress.created + 1, "updated_at": params["now"]},
        )
    )
    return True


async def counts_complete(db: Executor, batch_id: uuid.UUID) -> bool:
    """True when every target of the resolved, not yet ready batch has been counted. Read AFTER
    the creating statement committed: of several sessions committed at once, the one that
    commits last then sees every count, so the last session is never missed."""
    if _is_postgres(db):
        return bool(await _fetchval(db, COUNTS_COMPLETE_PG, batch_id))
    row = (
        await db.execute(  # type: ignore[union-attr]
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


async def complete_if_done(db: AsyncSession, batch_id: uuid.UUID, now: datetime) -> bool:
    """`counts_complete`, then `mark_ready` (which makes repeats harmless) in one transaction."""
    return await counts_complete(db, batch_id) and await mark_ready(db, batch_id, now)


async def mark_ready(db: AsyncSession, batch_id: uuid.UUID, now: datetime) -> bool:
    """Set ready_at once and write the one "run ready" notification. True if this call did it."""
    name_of_flow = sa.select(Flow.name).where(Flow.id == Batch.flow_id).scalar_subquery()
    row = (
        await db.execute(
            sa.update(Batch)
            .where(Batch.id == batch_id, Batch.ready_at.is_(None))
            .values(ready_at=now, sessions_created=Batch.target_count)
            .returning(
                Batch.team_id,
                Batch.flow_id,
                Batch.target_count,
                Batch.target_list_id,
                name_of_flow.label("flow_name"),
            )
        )
    ).one_or_none()
    if row is None:
        return False
    flow_name = row.flow_name or "(deleted)"
    n = row.target_count
    message = f"Maintenance run ready: {flow_name} — {n} session{'s' if n != 1 else ''} created"
    if n == 0:
        message += (
            " (the schedule has no target list)"
            if row.target_list_id is None
            else " (its target list no longer exists)"
        )
    await db.execute(
        dialect_insert(db, Notification)
        .values(
            id=uuid.uuid4(),
            team_id=row.team_id,
            event=READY_EVENT,
            title=f"Maintenance run ready: {flow_name}",
            message=message,
            batch_id=batch_id,
            data={"batch_id": str(batch_id), "flow_id": str(row.flow_id), "sessions": n},
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=["batch_id", "event"])
    )
    return True
