"""When a batch is complete — the one judgement: it is ready (every target has its session) and
every session is final (`batches.sessions_final`, counted under the batch's row lock as each
session reaches a final state, equals its target count). The transaction that makes it so sets
`completed_at` with a conditional UPDATE and raises `batch.completed`; sessions that fail raise
`session.failed`. Both in the transaction of the change that causes them.

Exactly once, also when the last two sessions finish together: each counts itself with an UPDATE
of the batch's row, so the second waits for the first to commit and then counts on top of it —
only the last one sees the count reach the target count."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from maintflow_core.db.store import Store
from maintflow_core.models import Batch, Flow, Session
from maintflow_core.models.sessions import STATUSES
from maintflow_core.usecases.batches import status_counts
from maintflow_core.usecases.events import Event, raise_event

# The condition `completed_at` is set under (readers of completion read `completed_at`).
_DONE = sa.and_(
    Batch.completed_at.is_(None),
    Batch.ready_at.is_not(None),
    Batch.sessions_final >= Batch.target_count,
)


async def session_finished(db: AsyncSession, store: Store, now: datetime, session: Session) -> None:
    """`session` has just moved to a final state (in this transaction, under its row lock):
    count it in its batch, raise `session.failed` if it failed, and complete the batch if it
    was the last."""
    await db.execute(
        sa.update(Batch)
        .where(Batch.id == session.batch_id)
        .values(sessions_final=Batch.sessions_final + 1)
    )
    if session.status == "failed":
        await raise_event(
            db,
            store,
            now,
            session.team_id,
            Event.SESSION_FAILED,
            {
                "session_id": str(session.id),
                "batch_id": str(session.batch_id),
                "flow_id": str(session.flow_id),
                "target_label": session.target_label,
                "current_step_id": session.current_step_id,
            },
            session.id,
            title=f"Session failed: {session.target_label}",
            message=f"The session of {session.target_label} failed"
            + (f" at step {session.current_step_id}" if session.current_step_id else ""),
            batch_id=session.batch_id,
        )
    await complete_if_done(db, store, now, session.batch_id)


async def complete_if_done(
    db: AsyncSession, store: Store, now: datetime, batch_id: uuid.UUID
) -> bool:
    """Mark the batch completed and raise `batch.completed` if it now is (see the module). Called
    by whatever can make it so: a session reaching a final state, the fan-out marking the batch
    ready. True if this call completed it."""
    name_of_flow = sa.select(Flow.name).where(Flow.id == Batch.flow_id).scalar_subquery()
    row = (
        await db.execute(
            sa.update(Batch)
            .where(Batch.id == batch_id, _DONE)
            .values(completed_at=now)
            .returning(Batch.team_id, Batch.flow_id, Batch.trigger, name_of_flow.label("flow"))
        )
    ).one_or_none()
    if row is None:
        return False
    counts = (await status_counts(db, [batch_id])).get(batch_id, {})
    by_status = {s: counts.get(s, 0) for s in STATUSES}
    total = sum(by_status.values())
    flow_name = row.flow or "(deleted)"
    summary = ", ".join(f"{by_status[s]} {s}" for s in ("completed", "failed", "cancelled"))
    await raise_event(
        db,
        store,
        now,
        row.team_id,
        Event.BATCH_COMPLETED,
        {
            "batch_id": str(batch_id),
            "flow_id": str(row.flow_id),
            "trigger": row.trigger,
            "sessions": total,
            "status_counts": by_status,
        },
        batch_id,
        title=f"Maintenance run completed: {flow_name}",
        message=f"Maintenance run completed: {flow_name} — {summary}",
        batch_id=batch_id,
    )
    return True
