"""retention_cleanup: delete what is finished and older than `MAINTFLOW_RETENTION_DAYS`, team by
team, in chunks of about `MAINTFLOW_RETENTION_CHUNK_ROWS` rows, each chunk its own short
transaction (a crash loses at most the chunk under way, which the next run deletes):

- batches whose fan-out is done, created before the cutoff, whose sessions are all final and
  none changed since the cutoff, with their sessions — but never a schedule's newest batch (the
  one a launch `from_batch_id` of its last run reads, whatever its age), nor a batch with an
  open session;
- read notifications created before the cutoff (unread ones stay, even when their batch goes:
  they lose the link, not the message);
- finished webhook deliveries (succeeded or failed) created before the cutoff, with their
  attempts;
- relayed outbox rows (deployment-wide: they belong to no team).

The result holds totals only: per kind, rows deleted and rows older than the cutoff kept."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from maintflow_core.clock import Clock
from maintflow_core.db.store import Store
from maintflow_core.models import (
    Batch,
    Notification,
    Outbox,
    Session,
    Team,
    Webhook,
    WebhookDelivery,
)
from maintflow_core.settings import Settings
from maintflow_core.usecases.sessions import FINAL

Transaction = Callable[[], AbstractAsyncContextManager[AsyncSession]]
# What a system job type runs: given transactions to open, the store, the clock and the
# settings; returns its result (totals only).
JobFunction = Callable[[Transaction, Store, Clock, Settings], Awaitable[dict[str, Any]]]
KINDS = ("batches", "sessions", "notifications", "webhook_deliveries", "outbox")
Totals = dict[str, dict[str, int]]


def expired_batches(team_id: uuid.UUID, cutoff: datetime) -> sa.ColumnElement[bool]:
    """The team's batches retention may delete (see the module's docstring)."""
    newer = aliased(Batch)
    unfinished_or_recent = sa.exists().where(
        Session.batch_id == Batch.id,
        sa.or_(Session.status.not_in(FINAL), Session.updated_at >= cutoff),
    )
    superseded = sa.exists().where(
        newer.schedule_id == Batch.schedule_id, newer.created_at > Batch.created_at
    )
    return sa.and_(
        Batch.team_id == team_id,
        Batch.created_at < cutoff,
        Batch.ready_at.is_not(None),
        ~unfinished_or_recent,
        sa.or_(Batch.schedule_id.is_(None), superseded),
    )


def _rowcount(result: Any) -> int:
    return int(result.rowcount or 0)


@dataclass
class _Scan:
    """Where a team's scan of its batches is: a keyset on (created_at, id), so that every batch
    is judged about once per run whatever stays behind; and how many to judge next (as many as
    the last chunk took, plus one: batches have few sizes)."""

    chunk: int
    after: tuple[datetime, uuid.UUID] | None = None
    look: int = 0

    def __post_init__(self) -> None:
        self.look = self.chunk


async def _delete_batches(
    db: AsyncSession, team_id: uuid.UUID, cutoff: datetime, scan: _Scan, totals: Totals
) -> bool:
    """One chunk: the next expired batches whose sessions add up to about `scan.chunk`, with
    their sessions and read notifications. True when there may be more."""
    query = sa.select(Batch.id, Batch.target_count, Batch.created_at).where(
        expired_batches(team_id, cutoff)
    )
    if scan.after is not None:
        query = query.where(sa.tuple_(Batch.created_at, Batch.id) > sa.tuple_(*scan.after))
    rows = (
        await db.execute(
            query.order_by(Batch.created_at, Batch.id)
            .limit(scan.look)
            .with_for_update(skip_locked=True, of=Batch)
        )
    ).all()
    ids: list[uuid.UUID] = []
    size = 0
    for batch_id, target_count, created in rows:
        if ids and size + target_count > scan.chunk:
            break
        ids.append(batch_id)
        size += target_count
        scan.after = (created, batch_id)
    if not ids:
        return False
    scan.look = len(ids) + 1
    deleted = await db.execute(sa.delete(Session).where(Session.batch_id.in_(ids)))
    totals["sessions"]["deleted"] += _rowcount(deleted)
    read = await db.execute(
        sa.delete(Notification).where(
            Notification.batch_id.in_(ids), Notification.read_at.is_not(None)
        )
    )
    totals["notifications"]["deleted"] += _rowcount(read)
    await db.execute(
        sa.update(Notification).where(Notification.batch_id.in_(ids)).values(batch_id=None)
    )
    totals["batches"]["deleted"] += _rowcount(
        await db.execute(sa.delete(Batch).where(Batch.id.in_(ids)))
    )
    return True


async def _delete_chunk(
    db: AsyncSession, model: Any, condition: sa.ColumnElement[bool], chunk: int
) -> int:
    ids = sa.select(model.id).where(condition).limit(chunk).scalar_subquery()
    return _rowcount(await db.execute(sa.delete(model).where(model.id.in_(ids))))


def _old_read_notifications(team_id: uuid.UUID, cutoff: datetime) -> sa.ColumnElement[bool]:
    n = Notification
    return sa.and_(n.team_id == team_id, n.created_at < cutoff, n.read_at.is_not(None))


def _old_finished_deliveries(team_id: uuid.UUID, cutoff: datetime) -> sa.ColumnElement[bool]:
    d = WebhookDelivery
    of_team = sa.select(Webhook.id).where(Webhook.team_id == team_id)
    return sa.and_(d.webhook_id.in_(of_team), d.created_at < cutoff, d.next_attempt_at.is_(None))


async def _until_done(
    transaction: Transaction, step: Callable[[AsyncSession], Awaitable[int]], chunk: int
) -> int:
    """Run `step` (one chunk, returning rows deleted) in transactions of its own until a chunk
    deletes fewer than `chunk` rows."""
    total = 0
    while True:
        async with transaction() as db:
            n = await step(db)
        total += n
        if n < chunk:
            return total


async def _count(transaction: Transaction, query: sa.Select[Any]) -> int:
    async with transaction() as db:
        return int(await db.scalar(query) or 0)


async def _clean_team(
    transaction: Transaction, team_id: uuid.UUID, cutoff: datetime, chunk: int, totals: Totals
) -> None:
    scan, more = _Scan(chunk), True
    while more:
        async with transaction() as db:
            more = await _delete_batches(db, team_id, cutoff, scan, totals)
    totals["notifications"]["deleted"] += await _until_done(
        transaction,
        lambda db: _delete_chunk(db, Notification, _old_read_notifications(team_id, cutoff), chunk),
        chunk,
    )
    totals["webhook_deliveries"]["deleted"] += await _until_done(
        transaction,
        lambda db: _delete_chunk(
            db, WebhookDelivery, _old_finished_deliveries(team_id, cutoff), chunk
        ),
        chunk,
    )
    count = sa.select(sa.func.count())
    kept = {
        "batches": count.where(Batch.team_id == team_id, Batch.created_at < cutoff),
        "sessions": count.where(Session.team_id == team_id, Session.created_at < cutoff),
        "notifications": count.where(
            Notification.team_id == team_id, Notification.created_at < cutoff
        ),
        "webhook_deliveries": count.where(
            WebhookDelivery.webhook_id.in_(sa.select(Webhook.id).where(Webhook.team_id == team_id)),
            WebhookDelivery.created_at < cutoff,
        ),
    }
    for kind, query in kept.items():
        totals[kind]["kept"] += await _count(transaction, query)


async def retention_cleanup(
    transaction: Transaction, store: Store, clock: Clock, settings: Settings
) -> dict[str, Any]:
    now = clock.now()
    cutoff = now - timedelta(days=settings.retention_days)
    chunk = settings.retention_chunk_rows
    totals: Totals = {kind: {"deleted": 0, "kept": 0} for kind in KINDS}
    async with transaction() as db:
        teams = list((await db.scalars(sa.select(Team.id).order_by(Team.id))).all())
    for team_id in teams:
        await _clean_team(transaction, team_id, cutoff, chunk, totals)
    relayed = sa.and_(Outbox.dispatched_at.is_not(None), Outbox.dispatched_at < cutoff)
    totals["outbox"]["deleted"] = await _until_done(
        transaction, lambda db: _delete_chunk(db, Outbox, relayed, chunk), chunk
    )
    totals["outbox"]["kept"] = await _count(
        transaction, sa.select(sa.func.count()).where(Outbox.created_at < cutoff)
    )
    return {
        "retention_days": settings.retention_days,
        "cutoff": cutoff.isoformat(),
        "teams": len(teams),
        **totals,
    }
