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
from maintflow_core.records import fire_message

OutboxMessage = tuple[int, str, dict[str, Any]]
Publisher = Callable[[Sequence[OutboxMessage]], Awaitable[None]]


async def relay_once(db: AsyncSession, publish: Publisher, now: datetime, limit: int) -> int:
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


async def backlog(db: AsyncSession) -> tuple[int, datetime | None]:
    """Rows waiting for the relay, and the creation time of the oldest (ids grow with time, so
    it is the smallest pending id's: one probe of the pending index). (0, None) when none."""
    count = await pending_count(db)
    if not count:
        return 0, None
    oldest = await db.scalar(
        sa.select(Outbox.created_at)
        .where(Outbox.dispatched_at.is_(None))
        .order_by(Outbox.id)
        .limit(1)
    )
    return count, oldest


# Messages are created a little after the drive they belong to (the relay runs every
# `relay_interval_s`; fire_schedule enqueues after its commit). A batch counts as fully delivered
# only if it was driven at least this long before the oldest message still queued.
SEND_MARGIN = timedelta(seconds=10)


async def reconcile(
    db: AsyncSession,
    now: datetime,
    stalled_after: timedelta,
    *,
    queued_since: datetime | None = None,
    limit: int = 200,
) -> list[uuid.UUID]:
    """Write a new outbox row for each fired batch whose fan-out stalled; fire_schedule then
    enqueues only the targets that lack a session. Returns the batches re-driven.

    Stalled means: not ready, no drive and no new session for `stalled_after`, no outbox row
    still waiting for the relay, and none of its messages can still be in the broker's queues.
    The broker's queues are FIFO, so the last condition is: the batch was last driven (or
    created) before `queued_since`, the creation time of the oldest message still waiting in
    the fan-out queues, less SEND_MARGIN. None means the queues are empty. Without that
    condition a backlog longer than `stalled_after` would be re-enqueued on top of itself."""
    cutoff = now - stalled_after
    last_drive = sa.func.coalesce(Batch.driven_at, Batch.created_at)
    last_progress = (
        sa.select(sa.func.max(BatchProgress.updated_at))
        .where(BatchProgress.batch_id == Batch.id)
        .scalar_subquery()
    )
    relay_pending = sa.exists().where(Outbox.batch_id == Batch.id, Outbox.dispatched_at.is_(None))
    conditions = [
        Batch.ready_at.is_(None),
        Batch.trigger.in_(("schedule", "run_now")),
        last_drive < cutoff,
        sa.or_(last_progress.is_(None), last_progress < cutoff),
        ~relay_pending,
    ]
    if queued_since is not None:
        conditions.append(last_drive < queued_since - SEND_MARGIN)
    ids = list(
        (
            await db.scalars(
                sa.select(Batch.id)
                .where(*conditions)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        ).all()
    )
    if not ids:
        return []
    await db.execute(sa.update(Batch).where(Batch.id.in_(ids)).values(driven_at=now))
    await db.execute(sa.insert(Outbox), [fire_message(bid, now) for bid in ids])
    return ids


async def purge_dispatched(db: AsyncSession, older_than: datetime, limit: int = 5000) -> int:
    """Delete relayed rows past their usefulness (keeps the outbox table small)."""
    ids = sa.select(Outbox.id).where(Outbox.dispatched_at < older_than).limit(limit)
    result = await db.execute(sa.delete(Outbox).where(Outbox.id.in_(ids)))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
