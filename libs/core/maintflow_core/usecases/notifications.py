"""In-app notifications: list (optionally unread only), mark one or all read."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from maintflow_core.clock import Clock
from maintflow_core.models import Notification, Team
from maintflow_core.usecases.owned import get_owned
from maintflow_core.usecases.pagination import paginate


async def list_notifications(
    db: AsyncSession, team_id: uuid.UUID, limit: int, cursor: str | None, unread: bool = False
) -> list[Notification]:
    query = sa.select(Notification).where(Notification.team_id == team_id)
    if unread:
        query = query.where(Notification.read_at.is_(None))
    query = paginate(query, Notification.created_at, Notification.id, limit, cursor)
    return list((await db.scalars(query)).all())


async def mark_read(
    db: AsyncSession, clock: Clock, team_id: uuid.UUID, notification_id: uuid.UUID
) -> Notification:
    note = await get_owned(db, Notification, team_id, notification_id, "notification")
    if note.read_at is None:
        note.read_at = clock.now()
        await db.flush()
    return note


async def mark_all_read(db: AsyncSession, clock: Clock, team_id: uuid.UUID) -> int:
    result = await db.execute(
        sa.update(Notification)
        .where(Notification.team_id == team_id, Notification.read_at.is_(None))
        .values(read_at=clock.now())
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


# --- The live stream's reads (see usecases/events: per team, `seq` order is commit order) ---


async def stream_start(db: AsyncSession, team_id: uuid.UUID, last_event_id: str | None) -> int:
    """The `seq` a team's stream starts after: that of the notification `last_event_id` names
    (a resume), else the team's newest committed one (a new stream gets what happens from now;
    an id that is no notification of the team's — forgotten, or never one — counts as none)."""
    if last_event_id:
        try:
            note_id = uuid.UUID(last_event_id.strip())
        except ValueError:
            note_id = None
        if note_id is not None:
            seq = await db.scalar(
                sa.select(Notification.seq).where(
                    Notification.id == note_id, Notification.team_id == team_id
                )
            )
            if seq is not None:
                return int(seq)
    newest = await db.scalar(sa.select(Team.notification_seq).where(Team.id == team_id))
    return int(newest or 0)


async def notifications_after(
    db: AsyncSession, team_id: uuid.UUID, seq: int, limit: int
) -> list[Notification]:
    """The team's committed notifications after `seq`, oldest first, at most `limit`."""
    rows = await db.scalars(
        sa.select(Notification)
        .where(Notification.team_id == team_id, Notification.seq > seq)
        .order_by(Notification.seq)
        .limit(limit)
    )
    return list(rows.all())
