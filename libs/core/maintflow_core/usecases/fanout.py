"""The worker side of a fire: resolve a batch's target and steps snapshot and list the targets
that still have no session, then, once the store counts every target (`SessionStatements`),
mark the batch ready with its one "run ready" event — exactly once, guarded by a
conditional UPDATE and the event's unique cause."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from maintflow_core.db.store import Store
from maintflow_core.models import Batch, Flow, Session, TargetList
from maintflow_core.usecases.completion import complete_if_done
from maintflow_core.usecases.events import Event, raise_event


@dataclass(frozen=True)
class Resolved:
    batch_id: uuid.UUID
    target_count: int
    ready: bool  # already, before this drive
    missing: list[dict[str, Any]]


async def resolve_batch(db: AsyncSession, batch_id: uuid.UUID, now: datetime) -> Resolved | None:
    """Take the snapshot once (the first delivery wins; later ones reuse it) and return the
    targets still lacking a session. None when the batch no longer exists. When none is
    missing, the caller completes the batch as the last `create_session` would."""
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
    await db.flush()
    return Resolved(batch.id, batch.target_count, ready, missing)


async def mark_ready(
    db: AsyncSession, store: Store, batch_id: uuid.UUID, now: datetime
) -> datetime | None:
    """Set ready_at once and write the one "run ready" notification. If this call did it, the
    batch's creation time (its fan-out took `now` minus that), else None."""
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
                Batch.created_at,
            )
        )
    ).one_or_none()
    if row is None:
        return None
    flow_name = row.flow_name or "(deleted)"
    n = row.target_count
    message = f"Maintenance run ready: {flow_name} — {n} session{'s' if n != 1 else ''} created"
    if n == 0:
        message += (
            " (the schedule has no target list)"
            if row.target_list_id is None
            else " (its target list no longer exists)"
        )
    await raise_event(
        db,
        store,
        now,
        row.team_id,
        Event.BATCH_READY,
        {"batch_id": str(batch_id), "flow_id": str(row.flow_id), "sessions": n},
        batch_id,
        title=f"Maintenance run ready: {flow_name}",
        message=message,
        batch_id=batch_id,
    )
    # Its sessions may all be final already (worked while the fan-out ran; or there are none).
    await complete_if_done(db, store, now, batch_id)
    created_at: datetime = row.created_at
    return created_at
