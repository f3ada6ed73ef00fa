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
from maintflow_core.queues import FIRE_BATCH
from maintflow_core.scheduling import Bounds, FirePlan, plan
from maintflow_core.settings import Settings

log = logging.getLogger("maintflow.scheduler")
S = MaintenanceSchedule


@dataclass
class ClaimResult:
    claimed: int = 0
    batch_ids: list[uuid.UUID] = field(default_factory=list)
    duplicates: int = 0
    missed: int = 0
    lag_seconds: list[float] = field(default_factory=list)

    def add(self, other: ClaimResult) -> None:
        self.claimed += other.claimed
        self.batch_ids += other.batch_ids
        self.duplicates += other.duplicates
        self.missed += other.missed
        self.lag_seconds += other.lag_seconds


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
    # `plan` is pure given `now`: schedules with the same rule, due instant, policy and bounds
    # get the same plan. In a top-of-the-hour storm that is most of the pass.
    plans: dict[tuple[Any, ...], FirePlan] = {}
    grace = timedelta(seconds=settings.misfire_grace_s)
    for row in rows:
        key = (
            row.cron_expression,
            row.timezone,
            row.next_run_at,
            row.misfire_policy,
            row.start_at,
            row.end_at,
        )
        try:
            fire_plan = plans.get(key)
            if fire_plan is None:
                fire_plan = plans[key] = plan(
                    cron.parse(row.cron_expression, row.timezone),
                    row.next_run_at,
                    now,
                    policy=row.misfire_policy,
                    grace=grace,
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
    if db.get_bind().dialect.name == "postgresql":
        new_ids = await _write_pg(db, batches, updates, now)
    else:
        new_ids = await _write_portable(db, batches, updates, now)
    result.batch_ids = new_ids
    result.duplicates = len(batches) - len(new_ids)
    return result


_TS_ARRAY = postgresql.ARRAY(sa.DateTime(timezone=True))
_UUID_ARRAY = postgresql.ARRAY(sa.Uuid)

# All of a claim pass's writes in one statement: batches (a duplicate instant is skipped by the
# partial unique index), one outbox row per batch actually inserted, and the schedules'
# next_run_at. Arrays instead of many VALUES rows keep it one short round trip for 500 rows.
_CLAIM_WRITE_PG = sa.text(
    """
    WITH fired AS (
        SELECT * FROM unnest(:ids, :team_ids, :flow_ids, :schedule_ids, :instants, :list_ids)
            AS t(id, team_id, flow_id, schedule_id, scheduled_for, target_list_id)
    ), ins AS (
        INSERT INTO batches (id, team_id, flow_id, schedule_id, trigger, scheduled_for,
                             target_list_id, target_count, sessions_created, created_at)
        SELECT id, team_id, flow_id, schedule_id, 'schedule', scheduled_for, target_list_id,
               0, 0, :now
          FROM fired
        ON CONFLICT (schedule_id, scheduled_for) WHERE trigger = 'schedule' DO NOTHING
        RETURNING id
    ), outbox_rows AS (
        INSERT INTO outbox (kind, batch_id, payload, created_at, attempts)
        SELECT :kind, id, jsonb_build_object('batch_id', id::text), :now, 0 FROM ins
    ), moved AS (
        UPDATE maintenance_schedules AS s
           SET next_run_at = u.next_run_at,
               last_run_at = coalesce(u.last_run_at, s.last_run_at)
          FROM unnest(:upd_ids, :upd_next, :upd_last) AS u(id, next_run_at, last_run_at)
         WHERE s.id = u.id
    )
    SELECT id FROM ins
    """
).bindparams(
    sa.bindparam("ids", type_=_UUID_ARRAY),
    sa.bindparam("team_ids", type_=_UUID_ARRAY),
    sa.bindparam("flow_ids", type_=_UUID_ARRAY),
    sa.bindparam("schedule_ids", type_=_UUID_ARRAY),
    sa.bindparam("instants", type_=_TS_ARRAY),
    sa.bindparam("list_ids", type_=_UUID_ARRAY),
    sa.bindparam("now", type_=sa.DateTime(timezone=True)),
    sa.bindparam("upd_ids", type_=_UUID_ARRAY),
    sa.bindparam("upd_next", type_=_TS_ARRAY),
    sa.bindparam("upd_last", type_=_TS_ARRAY),
)


async def _write_pg(
    db: AsyncSession, batches: list[dict[str, Any]], updates: list[dict[str, Any]], now: datetime
) -> list[uuid.UUID]:
    rows = await db.execute(
        _CLAIM_WRITE_PG,
        {
            "ids": [b["id"] for b in batches],
            "team_ids": [b["team_id"] for b in batches],
            "flow_ids": [b["flow_id"] for b in batches],
            "schedule_ids": [b["schedule_id"] for b in batches],
            "instants": [b["scheduled_for"] for b in batches],
            "list_ids": [b["target_list_id"] for b in batches],
            "now": now,
            "kind": FIRE_BATCH.name,
            "upd_ids": [u["b_id"] for u in updates],
            "upd_next": [u["next_run_at"] for u in updates],
            "upd_last": [u["last_run_at"] for u in updates],
        },
    )
    return list(rows.scalars())


async def _write_portable(
    db: AsyncSession, batches: list[dict[str, Any]], updates: list[dict[str, Any]], now: datetime
) -> list[uuid.UUID]:
    new_ids: list[uuid.UUID] = []
    if batches:
        # executemany with RETURNING: SQLAlchemy batches it into few multi-row statements.
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
    if new_ids:
        await db.execute(
            sa.insert(Outbox),
            [
                {
                    "kind": FIRE_BATCH.name,
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
    return new_ids
