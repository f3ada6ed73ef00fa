"""The worker side of a fire: resolve a batch's target and steps snapshot, list the targets that
still have no session, create one session idempotently, and mark the batch ready (with its one
"run ready" notification) exactly once — guarded by a conditional UPDATE and a unique index."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from maintflow_core.db.base import UTCDateTime
from maintflow_core.models import Batch, Flow, Notification, Session, TargetList
from maintflow_core.usecases.firing import dialect_insert

READY_EVENT = "batch.ready"


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
    if batch.targets is None:
        flow = await db.scalar(sa.select(Flow).where(Flow.id == batch.flow_id))
        targets: list[dict[str, Any]] = []
        if batch.target_list_id is not None:
            target_list = await db.scalar(
                sa.select(TargetList).where(
                    TargetList.id == batch.target_list_id, TargetList.team_id == batch.team_id
                )
            )
            if target_list is not None:
                targets = list(target_list.targets)
                target_list.last_used_at = now
        batch.targets = targets
        batch.steps = flow.steps if flow is not None else []
        batch.target_count = len(targets)
    batch.driven_at = now
    ready = batch.ready_at is not None
    if not ready and batch.sessions_created >= batch.target_count:
        ready = await mark_ready(db, batch.id, now)
    missing: list[dict[str, Any]] = []
    if not ready:
        have = set(
            await db.scalars(sa.select(Session.target_label).where(Session.batch_id == batch.id))
        )
        missing = [t for t in batch.targets or [] if t["label"] not in have]
    await db.flush()
    return Resolved(batch.id, batch.target_count, ready, missing)


# PostgreSQL: insert the session from the batch's snapshot and count it in one statement (a
# data-modifying CTE), so one create_session costs one round trip plus the commit.
_CREATE_PG = sa.text(
    """
    WITH ins AS (
        INSERT INTO sessions (id, team_id, batch_id, flow_id, target_label, target_notes, status,
                              steps, intake, created_at, updated_at)
        SELECT :id, b.team_id, b.id, b.flow_id, :label, :notes, 'pending', b.steps, b.intake,
               :now, :now
          FROM batches b
         WHERE b.id = :batch_id AND b.steps IS NOT NULL
        ON CONFLICT (batch_id, target_label) DO NOTHING
        RETURNING batch_id
    )
    UPDATE batches
       SET sessions_created = sessions_created + 1, driven_at = :now
     WHERE id = (SELECT batch_id FROM ins)
    RETURNING sessions_created, target_count, ready_at
    """
).bindparams(
    sa.bindparam("id", type_=sa.Uuid),
    sa.bindparam("batch_id", type_=sa.Uuid),
    sa.bindparam("now", type_=UTCDateTime),
)


async def create_session(
    db: AsyncSession, batch_id: uuid.UUID, label: str, notes: str | None, now: datetime
) -> bool:
    """Insert the target's session unless it exists. Returns True if this call created it.

    Sessions are made only from a resolved batch (steps snapshot taken), so the count that
    decides "ready" is always compared with the real target count. Counting in the batch row
    (not count(*) over sessions) keeps each message O(1); the row lock serialises the
    increments, so exactly one of them sees the last session. driven_at records progress, so
    the reconciler leaves a slow but moving fan-out alone."""
    params = {"id": uuid.uuid4(), "batch_id": batch_id, "label": label, "notes": notes, "now": now}
    if db.get_bind().dialect.name == "postgresql":
        counts = (await db.execute(_CREATE_PG, params)).one_or_none()
    else:
        counts = await _create_portable(db, params)
    if counts is None:
        return False
    if counts.ready_at is None and counts.sessions_created >= counts.target_count:
        await mark_ready(db, batch_id, now)
    return True


async def _create_portable(db: AsyncSession, params: dict[str, Any]) -> Any:
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
            [
                "id",
                "team_id",
                "batch_id",
                "flow_id",
                "target_label",
                "target_notes",
                "status",
                "steps",
                "intake",
                "created_at",
                "updated_at",
            ],
            source,
        )
        .on_conflict_do_nothing(index_elements=["batch_id", "target_label"])
        .returning(Session.id)
    )
    if inserted.scalar_one_or_none() is None:
        return None
    return (
        await db.execute(
            sa.update(b)
            .where(b.id == params["batch_id"])
            .values(sessions_created=b.sessions_created + 1, driven_at=params["now"])
            .returning(b.sessions_created, b.target_count, b.ready_at)
        )
    ).one()


async def mark_ready(db: AsyncSession, batch_id: uuid.UUID, now: datetime) -> bool:
    """Set ready_at once and write the one "run ready" notification. True if this call did it."""
    row = (
        await db.execute(
            sa.update(Batch)
            .where(Batch.id == batch_id, Batch.ready_at.is_(None))
            .values(ready_at=now)
            .returning(Batch.team_id, Batch.flow_id, Batch.target_count, Batch.target_list_id)
        )
    ).one_or_none()
    if row is None:
        return False
    flow_name = await db.scalar(sa.select(Flow.name).where(Flow.id == row.flow_id)) or "(deleted)"
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
