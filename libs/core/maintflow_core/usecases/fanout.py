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


async def create_session(
    db: AsyncSession, batch_id: uuid.UUID, label: str, notes: str | None, now: datetime
) -> bool:
    """Insert the target's session unless it exists. Returns True if this call created it."""
    batch = (
        await db.execute(
            sa.select(Batch.team_id, Batch.flow_id, Batch.steps, Batch.intake).where(
                Batch.id == batch_id
            )
        )
    ).one_or_none()
    if batch is None or batch.steps is None:
        # Gone, or not resolved yet: sessions are only made from a resolved snapshot, so the
        # count that decides "ready" is always compared with the real target count.
        return False
    inserted = await db.execute(
        dialect_insert(db, Session)
        .values(
            id=uuid.uuid4(),
            team_id=batch.team_id,
            batch_id=batch_id,
            flow_id=batch.flow_id,
            target_label=label,
            target_notes=notes,
            status="pending",
            steps=batch.steps or [],
            intake=batch.intake,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=["batch_id", "target_label"])
        .returning(Session.id)
    )
    if inserted.scalar_one_or_none() is None:
        return False
    # Counting in the batch row (not count(*) over sessions) keeps each message O(1); the
    # row lock serialises the increments, so exactly one of them sees the last session.
    # driven_at records progress, so the reconciler leaves a slow but moving fan-out alone.
    counts = (
        await db.execute(
            sa.update(Batch)
            .where(Batch.id == batch_id)
            .values(sessions_created=Batch.sessions_created + 1, driven_at=now)
            .returning(Batch.sessions_created, Batch.target_count, Batch.ready_at)
        )
    ).one()
    if counts.ready_at is None and counts.sessions_created >= counts.target_count:
        await mark_ready(db, batch_id, now)
    return True


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
