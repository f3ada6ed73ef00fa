"""The outbox relay and the reconciler. The relay publishes rows written by committed
transactions and marks them dispatched; a crash in between republishes, which idempotent actors
absorb. The reconciler re-drives fired batches whose fan-out stalled (e.g. Redis lost messages)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from maintflow_core.models import Batch, BatchProgress, Outbox
from maintflow_core.usecases.schedules import FIRE_KIND

OutboxMessage = tuple[int, str, dict[str, Any]]
Publisher = Callable[[Sequence[OutboxMessage]], Awaitable[None]]


async def relay_once(db: AsyncSession, publish: Publisher, now: datetime, limit: int = 500) -> int:
    """Publish up to `limit` pending rows in the caller's transaction; returns how many."""
    rows = (
        await db.execute(
            sa.select(Outbox.id, Outbox.kind, Outbox.payload)
            .where(Outbox.dispatched_at.is_(None))
            .order_by(Outbox.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    ).all()
    if not rows:
        return 0
    await publish([(r.id, r.kind, r.payload) for r in rows])
    await db.execute(
        sa.update(Outbox)
        .where(Outbox.id.in_([r.id for r in rows]))
        .values(dispatched_at=now, attempts=Outbox.attempts + 1)
    )
    return len(rows)


async def pending_count(db: AsyncSession) -> int:
    return int(
        await db.scalar(sa.select(sa.func.count()).where(Outbox.dispatched_at.is_(None))) or 0
    )


async def reconcile(
    db: AsyncSession, now: datetime, stalled_after: timedelta, limit: int = 200
) -> list[uuid.UUID]:
    """Write a new outbox row for each fired batch that is not ready and has made no progress
    (no drive, no new session) for `stalled_after`; fire_schedule then enqueues only the
    targets that lack a session."""
    cutoff = now - stalled_after
    last_progress = (
        sa.select(sa.func.max(BatchProgress.updated_at))
        .where(BatchProgress.batch_id == Batch.id)
        .scalar_subquery()
    )
    ids = list(
        (
            await db.scalars(
                sa.select(Batch.id)
                .where(
                    Batch.ready_at.is_(None),
                    Batch.trigger.in_(("schedule", "run_now")),
                    sa.func.coalesce(Batch.driven_at, Batch.created_at) < cutoff,
                    sa.or_(last_progress.is_(None), last_progress < cutoff),
                )
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        ).all()
    )
    if not ids:
        return []
    await db.execute(sa.update(Batch).where(Batch.id.in_(ids)).values(driven_at=now))
    await db.execute(
        sa.insert(Outbox),
        [
            {
                "kind": FIRE_KIND,
                "batch_id": bid,
                "payload": {"batch_id": str(bid), "redrive": True},
                "created_at": now,
                "attempts": 0,
            }
            for bid in ids
        ],
    )
    return ids


async def purge_dispatched(db: AsyncSession, older_than: datetime, limit: int = 5000) -> int:
    """Delete relayed rows past their usefulness (keeps the outbox table small)."""
    ids = sa.select(Outbox.id).where(Outbox.dispatched_at < older_than).limit(limit)
    result = await db.execute(sa.delete(Outbox).where(Outbox.id.in_(ids)))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
