"""Reading batches: one by id, pages with their status rollups (computed by the database), and
the fired batches by progress. Launching one is `launch`."""

from __future__ import annotations

import operator
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from functools import cache
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from maintflow_core.models import Batch, Session
from maintflow_core.models.sessions import STATUSES
from maintflow_core.usecases.owned import get_owned
from maintflow_core.usecases.pagination import keyset, keyset_params


class BatchFields(Protocol):
    """What a batch view reads: a `Batch` entity or a row of `_BATCH_COLUMNS`."""

    id: uuid.UUID
    flow_id: uuid.UUID
    schedule_id: uuid.UUID | None
    trigger: str
    scheduled_for: datetime | None
    created_at: datetime
    target_count: int
    ready_at: datetime | None


@dataclass
class BatchView:
    batch: BatchFields
    status_counts: dict[str, int] = field(default_factory=dict)

    @property
    def progress(self) -> str:
        return f"{self.status_counts.get('completed', 0)}/{self.batch.target_count}"

    def as_dict(self) -> dict[str, Any]:
        b = self.batch
        return {
            "batch_id": b.id,
            "flow_id": b.flow_id,
            "schedule_id": b.schedule_id,
            "trigger": b.trigger,
            "scheduled_for": b.scheduled_for,
            "created_at": b.created_at,
            "target_count": b.target_count,
            # Counted from the sessions themselves, so a fan-out in progress shows its progress.
            "sessions_created": sum(self.status_counts.values()),
            "ready_at": b.ready_at,
            "status_counts": {s: self.status_counts.get(s, 0) for s in STATUSES},
            "progress": self.progress,
        }


async def get_batch(db: AsyncSession, team_id: uuid.UUID, batch_id: uuid.UUID) -> Batch:
    return await get_owned(db, Batch, team_id, batch_id, "batch")


async def status_counts(
    db: AsyncSession, batch_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, dict[str, int]]:
    if not batch_ids:
        return {}
    rows = await db.execute(
        sa.select(Session.batch_id, Session.status, sa.func.count())
        .where(Session.batch_id.in_(batch_ids))
        .group_by(Session.batch_id, Session.status)
    )
    counts: dict[uuid.UUID, dict[str, int]] = {}
    for batch_id, status, n in rows:
        counts.setdefault(batch_id, {})[status] = n
    return counts


_BATCH_COLUMNS = (
    Batch.id,
    Batch.team_id,
    Batch.flow_id,
    Batch.schedule_id,
    Batch.trigger,
    Batch.scheduled_for,
    Batch.created_at,
    Batch.target_count,
    Batch.sessions_created,
    Batch.ready_at,
)


@dataclass(frozen=True)
class BatchFilter:
    flow_id: uuid.UUID | None = None
    schedule_id: uuid.UUID | None = None
    trigger: str | None = None
    created_after: datetime | None = None  # exclusive
    created_before: datetime | None = None  # exclusive


_BATCH_FILTERS: tuple[tuple[str, Any, Callable[[Any, Any], Any]], ...] = (
    ("flow_id", Batch.flow_id, operator.eq),
    ("schedule_id", Batch.schedule_id, operator.eq),
    ("trigger", Batch.trigger, operator.eq),
    ("created_after", Batch.created_at, operator.gt),
    ("created_before", Batch.created_at, operator.lt),
)


@cache
def _batch_page(filters: frozenset[str], after: bool) -> sa.Select[Any]:
    """A page of batches (only the listed columns; the snapshots can be large) joined to its
    sessions and counted per status: one statement, built once per combination of filters
    (`filters`: the names of the BatchFilter fields given)."""
    query = sa.select(*_BATCH_COLUMNS).where(Batch.team_id == sa.bindparam("team_id"))
    for name, column, compare in _BATCH_FILTERS:
        if name in filters:
            query = query.where(compare(column, sa.bindparam(name, type_=column.type)))
    page = keyset(query, Batch.created_at, Batch.id, after=after).cte("page")
    counts = [sa.func.count(Session.id).filter(Session.status == s) for s in STATUSES]
    return (
        sa.select(page, *counts)
        .select_from(page.outerjoin(Session, Session.batch_id == page.c.id))
        .group_by(*page.c)
        .order_by(page.c.created_at.desc(), page.c.id.desc())
    )


async def list_batches(
    db: AsyncSession,
    team_id: uuid.UUID,
    limit: int,
    cursor: str | None,
    where: BatchFilter = BatchFilter(),
) -> list[BatchView]:
    """A page of batches with their status rollups, in one statement."""
    params = keyset_params(limit, cursor)
    given = {name: value for name, value in asdict(where).items() if value is not None}
    params.update(team_id=team_id, **given)
    query = _batch_page(frozenset(given), bool(cursor))
    width = len(_BATCH_COLUMNS)
    views = []
    for row in await db.execute(query, params):
        counts = {s: n for s, n in zip(STATUSES, row[width:], strict=True) if n}
        views.append(BatchView(row, counts))
    return views


async def fired_batch_counts(db: AsyncSession, team_id: uuid.UUID) -> dict[str, int]:
    """The team's fired batches (scheduled or run now): still fanning out, ready with sessions
    to work through, and completed (`completion`: ready with every session final)."""
    row = (
        await db.execute(
            sa.select(
                sa.func.count().filter(Batch.ready_at.is_(None)),
                sa.func.count().filter(Batch.ready_at.is_not(None), Batch.completed_at.is_(None)),
                sa.func.count().filter(Batch.completed_at.is_not(None)),
            ).where(Batch.team_id == team_id, Batch.trigger.in_(("schedule", "run_now")))
        )
    ).one()
    return {"fanning_out": row[0], "in_progress": row[1], "completed": row[2]}
