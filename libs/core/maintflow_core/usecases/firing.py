"""The claim transaction of a scheduler tick: lock due schedules (SKIP LOCKED), insert one batch
per (schedule, instant) under a unique index, an outbox row per new batch, and advance
next_run_at. Overlapping leaders are harmless: the loser's batch insert conflicts and does
nothing."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from maintflow_core import cron
from maintflow_core.errors import DomainError
from maintflow_core.models import Batch, MaintenanceSchedule, Outbox
from maintflow_core.scheduling import Bounds, plan
from maintflow_core.settings import Settings
from maintflow_core.usecases.schedules import FIRE_KIND

log = logging.getLogger("maintflow.scheduler")
S = MaintenanceSchedule


@dataclass
class ClaimResult:
    claimed: int = 0
    batch_ids: list[uuid.UUID] = field(default_factory=list)
    duplicates: int = 0
    missed: int = 0
    lag_seconds: list[float] = field(default_factory=list)


def dialect_insert(db: AsyncSession | AsyncConnection, table: Any) -> Any:
    name = db.get_bind().dialect.name if isinstance(db, AsyncSession) else db.dialect.name
    return (postgresql.insert if name == "postgresql" else sqlite.insert)(table)


async def claim_due(
    db: AsyncSession, now: datetime, settings: Settings, limit: int | None = None
) -> ClaimResult:
    """One claim pass in the caller's transaction. The caller commits (and may first check the
    leader fence in the same transaction)."""
    result = ClaimResult()
    rows = (
        await db.execute(
            sa.select(
                S.id,
                S.team_id,
                S.flow_id,
                S.target_list_id,
                S.cron_expression,
                S.timezone,
                S.misfire_policy,
                S.start_at,
                S.end_at,
                S.next_run_at,
            )
            .where(S.is_active, S.next_run_at.is_not(None), S.next_run_at <= now)
            .order_by(S.next_run_at)
            .limit(limit or settings.scheduler_claim_batch)
            .with_for_update(skip_locked=True, of=S)
        )
    ).all()
    result.claimed = len(rows)
    if not rows:
        return result
    batches: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    for row in rows:
        try:
            spec = cron.parse(row.cron_expression, row.timezone)
            fire_plan = plan(
                spec,
                row.next_run_at,
                now,
                policy=row.misfire_policy,
                grace=timedelta(seconds=settings.misfire_grace_s),
                max_catchup=settings.max_catchup_fires,
                bounds=Bounds(row.start_at, row.end_at),
            )
        except DomainError:
            # A stored rule that no longer parses (e.g. tzdata dropped a zone) must not stall
            # every other schedule: park it and say so.
            log.exception("schedule_rule_invalid", extra={"schedule_id": str(row.id)})
            updates.append({"b_id": row.id, "next_run_at": None, "last_run_at": None})
            continue
        result.missed += int(fire_plan.missed)
        for instant in fire_plan.instants:
            batches.append(
                {
                    "id": uuid.uuid4(),
                    "team_id": row.team_id,
                    "flow_id": row.flow_id,
                    "schedule_id": row.id,
                    "trigger": "schedule",
                    "scheduled_for": instant,
                    "target_list_id": row.target_list_id,
                    "target_count": 0,
                    "sessions_created": 0,
                    "created_at": now,
                }
            )
            result.lag_seconds.append((now - instant).total_seconds())
        updates.append(
            {
                "b_id": row.id,
                "next_run_at": fire_plan.next_run_at,
                "last_run_at": max(fire_plan.instants) if fire_plan.instants else None,
            }
        )
    if batches:
        # executemany with RETURNING: SQLAlchemy batches it into few multi-row statements
        # ("insertmanyvalues") without compiling one giant VALUES clause per claim.
        inserted = await db.execute(
            dialect_insert(db, Batch)
            .on_conflict_do_nothing(
                index_elements=["schedule_id", "scheduled_for"],
                index_where=sa.text("trigger = 'schedule'"),
            )
            .returning(Batch.id),
            batches,
        )
        new_ids = list(inserted.scalars())
        result.batch_ids = new_ids
        result.duplicates = len(batches) - len(new_ids)
        if new_ids:
            await db.execute(
                sa.insert(Outbox),
                [
                    {
                        "kind": FIRE_KIND,
                        "batch_id": bid,
                        "payload": {"batch_id": str(bid)},
                        "created_at": now,
                        "attempts": 0,
                    }
                    for bid in new_ids
                ],
            )
    table = cast(sa.Table, S.__table__)
    await db.execute(
        sa.update(table)
        .where(table.c.id == sa.bindparam("b_id"))
        .values(
            next_run_at=sa.bindparam("next_run_at"),
            last_run_at=sa.func.coalesce(sa.bindparam("last_run_at"), table.c.last_run_at),
        ),
        updates,
    )
    return result
