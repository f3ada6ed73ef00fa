"""Launching a batch by hand (all sessions in one transaction) and reading batches with their
status rollups, which are computed by the database."""

from __future__ import annotations

import operator
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from functools import cache
from typing import Any, Protocol

import sqlalchemy as sa
from pydantic import TypeAdapter
from sqlalchemy.ext.asyncio import AsyncSession

from maintflow_core.clock import Clock
from maintflow_core.db.store import Store
from maintflow_core.errors import BadRequest, InvalidField, NotFound
from maintflow_core.models import Batch, Flow, Session
from maintflow_core.models.sessions import STATUSES
from maintflow_core.records import session_rows
from maintflow_core.schemas.batches import BatchLaunch
from maintflow_core.schemas.targets import Target
from maintflow_core.usecases.flows import get_flow
from maintflow_core.usecases.pagination import keyset, keyset_params
from maintflow_core.usecases.target_lists import get_target_list


@dataclass(frozen=True)
class Launched:
    batch_id: uuid.UUID
    sessions: list[dict[str, Any]]


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


def require_maintenance(flow: Flow) -> None:
    if flow.flow_type != "maintenance":
        raise BadRequest(
            f"flow {flow.id} is a {flow.flow_type} flow; only maintenance flows run as batches"
        )


async def targets_of_batch(db: AsyncSession, batch_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = await db.execute(
        sa.select(Session.target_label, Session.target_notes)
        .where(Session.batch_id == batch_id)
        .order_by(Session.target_label)
    )
    return [{"label": label, "notes": notes} for label, notes in rows]


_TARGETS = TypeAdapter(list[Target])


async def _resolve_targets(
    db: AsyncSession, team_id: uuid.UUID, data: BatchLaunch, now: datetime
) -> list[dict[str, Any]]:
    if data.targets is not None:
        dumped: list[dict[str, Any]] = _TARGETS.dump_python(data.targets)  # one call, ≤ 10,000
        return dumped
    if data.target_list_id is not None:
        target_list = await get_target_list(db, team_id, data.target_list_id)
        target_list.last_used_at = now
        return list(target_list.targets)
    assert data.from_batch_id is not None
    source = await get_batch(db, team_id, data.from_batch_id)
    targets = await targets_of_batch(db, source.id)
    if not targets:
        raise InvalidField("from_batch_id", "that batch has no sessions to copy targets from")
    return targets


async def launch_batch(
    db: AsyncSession, clock: Clock, store: Store, team_id: uuid.UUID, data: BatchLaunch
) -> Launched:
    now = clock.now()
    flow = await get_flow(db, team_id, data.flow_id)
    require_maintenance(flow)
    targets = await _resolve_targets(db, team_id, data, now)
    batch = Batch(
        id=uuid.uuid4(),
        team_id=team_id,
        flow_id=flow.id,
        trigger="manual",
        target_list_id=data.target_list_id,
        steps=None,
        intake=data.intake,
        target_count=len(targets),
        sessions_created=len(targets),
        created_at=now,
        ready_at=now,
    )
    db.add(batch)
    await db.flush()
    rows = session_rows(
        team_id=team_id,
        batch_id=batch.id,
        flow_id=flow.id,
        targets=targets,
        steps=flow.steps,
        intake=data.intake,
        now=now,
    )
    await store.insert_sessions(db, rows)
    return Launched(
        batch_id=batch.id,
        sessions=[
            {
                "id": r["id"],
                "batch_id": batch.id,
                "target_label": r["target_label"],
                "flow_id": flow.id,
                "status": "pending",
            }
            for r in rows
        ],
    )


async def get_batch(db: AsyncSession, team_id: uuid.UUID, batch_id: uuid.UUID) -> Batch:
    batch = await db.scalar(sa.select(Batch).where(Batch.id == batch_id, Batch.team_id == team_id))
    if batch is None:
        raise NotFound("batch not found")
    return batch


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


async def session_briefs(db: AsyncSession, batch_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = await db.execute(
        sa.select(
            Session.id, Session.batch_id, Session.target_label, Session.flow_id, Session.status
        )
        .where(Session.batch_id == batch_id)
        .order_by(Session.target_label)
    )
    return [dict(r._mapping) for r in rows]
