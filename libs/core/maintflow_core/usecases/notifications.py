"""In-app notifications: list (optionally unread only), mark one or all read."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from maintflow_core.clock import Clock
from maintflow_core.models import Notification
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
