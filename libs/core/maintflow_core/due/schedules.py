"""Maintenance schedules as a due-work source. A schedule is due when it is active and its
next_run_at has come. A claim is three steps: lock the due schedules, plan their fires (the
misfire policy and the bounds; pure, given `now`), and have the store write one batch and one
outbox row per instant and move each schedule to its next instant — all in the claim
transaction. Two leaders that overlap are harmless: the loser's batch insert conflicts with the
unique (schedule_id, scheduled_for) and does nothing."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple, cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from maintflow_core import cron
from maintflow_core.db.store import Store
from maintflow_core.due.base import ClaimResult
from maintflow_core.errors import DomainError
from maintflow_core.models import MaintenanceSchedule
from maintflow_core.records import Advance, Fire, fire
from maintflow_core.scheduling import Bounds, FirePlan, plan
from maintflow_core.settings import Settings

log = logging.getLogger("maintflow.scheduler")
S = MaintenanceSchedule


def is_due(now: datetime) -> sa.ColumnElement[bool]:
    """The due predicate, for the claim and the backlog alike; the partial index
    ix_maintenance_schedules_due holds exactly these rows' next_run_at, so both read only it."""
    return sa.and_(S.is_active, S.next_run_at.is_not(None), S.next_run_at <= now)


class DueSchedule(NamedTuple):
    """What a claim reads of a due schedule."""

    id: uuid.UUID
    team_id: uuid.UUID
    flow_id: uuid.UUID
    target_list_id: uuid.UUID | None
    cron_expression: str
    timezone: str
    misfire_policy: str
    start_at: datetime | None
    end_at: datetime | None
    next_run_at: datetime


_DUE_COLUMNS = tuple(getattr(S, name) for name in DueSchedule._fields)


async def lock_due(db: AsyncSession, now: datetime, limit: int) -> list[DueSchedule]:
    """Up to `limit` due schedules, the most overdue first, locked until the caller's commit;
    rows another transaction holds are skipped (SKIP LOCKED), not waited for."""
    rows = await db.execute(
        sa.select(*_DUE_COLUMNS)
        .where(is_due(now))
        .order_by(S.next_run_at)
        .limit(limit)
        .with_for_update(skip_locked=True, of=S)
    )
    # The rows are named tuples with DueSchedule's fields already: no copy per row.
    return cast(list[DueSchedule], rows.all())


@dataclass
class ClaimPlan:
    """What a claim writes: its fires, each schedule moved on, and what to report."""

    fires: list[Fire] = field(default_factory=list)
    advances: list[Advance] = field(default_factory=list)
    missed: int = 0
    lag_seconds: list[float] = field(default_factory=list)
    # Schedules whose stored rule no longer parses (e.g. tzdata dropped a zone), with why:
    # parked (no next_run_at) so that they cannot stall every other schedule.
    invalid: list[tuple[uuid.UUID, str]] = field(default_factory=list)


def plan_claim(
    schedules: Sequence[DueSchedule], now: datetime, *, grace: timedelta, max_catchup: int
) -> ClaimPlan:
    """Pure: the fires of `schedules` at `now` (see `scheduling.plan`) and their next instants."""
    result = ClaimPlan()
    # `plan` is pure given `now`: schedules with the same rule, due instant, policy and bounds
    # get the same plan (with the same newest instant and lags). In a top-of-the-hour storm
    # that is most of the pass.
    plans: dict[tuple[Any, ...], tuple[FirePlan, datetime | None, list[float]]] = {}
    for s in schedules:
        key = (s.cron_expression, s.timezone, s.next_run_at, s.misfire_policy, s.start_at, s.end_at)
        planned = plans.get(key)
        if planned is None:
            try:
                fire_plan = plan(
                    cron.parse(s.cron_expression, s.timezone),
                    s.next_run_at,
                    now,
                    policy=s.misfire_policy,
                    grace=grace,
                    max_catchup=max_catchup,
                    bounds=Bounds(s.start_at, s.end_at),
                )
            except DomainError as exc:
                result.invalid.append((s.id, str(exc)))
                result.advances.append(Advance(s.id, None, None))
                continue
            instants = fire_plan.instants
            lags = [(now - instant).total_seconds() for instant in instants]
            planned = plans[key] = (fire_plan, max(instants) if instants else None, lags)
        fire_plan, last, lags = planned
        result.missed += fire_plan.missed
        for instant in fire_plan.instants:
            result.fires.append(
                fire(
                    trigger="schedule",
                    team_id=s.team_id,
                    flow_id=s.flow_id,
                    schedule_id=s.id,
                    target_list_id=s.target_list_id,
                    instant=instant,
                    now=now,
                )
            )
        result.lag_seconds += lags
        result.advances.append(Advance(s.id, fire_plan.next_run_at, last))
    return result


class MaintenanceSchedules:
    """The due-work source of maintenance schedules (see `DueSource`)."""

    name = "schedules"
    event = "schedules_fired"
    fired_as = "batches"

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.grace = timedelta(seconds=settings.misfire_grace_s)
        self.max_catchup = settings.max_catchup_fires

    async def claim(self, db: AsyncSession, now: datetime, limit: int) -> ClaimResult:
        due = await lock_due(db, now, limit)
        if not due:
            return ClaimResult()
        planned = plan_claim(due, now, grace=self.grace, max_catchup=self.max_catchup)
        for schedule_id, error in planned.invalid:
            log.error(
                "schedule_rule_invalid", extra={"schedule_id": str(schedule_id), "error": error}
            )
        fired = await self.store.write_fires(db, planned.fires, planned.advances)
        return ClaimResult(
            claimed=len(due),
            fired=fired,
            duplicates=len(planned.fires) - len(fired),
            missed=planned.missed,
            lag_seconds=planned.lag_seconds,
        )

    async def backlog(self, db: AsyncSession, now: datetime) -> int:
        return int(await db.scalar(sa.select(sa.func.count()).where(is_due(now))) or 0)
