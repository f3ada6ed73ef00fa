"""Maintenance schedules: create and edit (the rule through `schedule_rules`), pause and resume,
preview, the API's view, stats. Every change is a row update; the running scheduler reads rows on
each tick, so edits apply on its next tick. Run-now is a launch (`launch.run_now`)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from maintflow_core import cron
from maintflow_core.clock import Clock
from maintflow_core.errors import Conflict, NotFound
from maintflow_core.models import MaintenanceSchedule
from maintflow_core.scheduling import Bounds, first_fire, upcoming
from maintflow_core.schemas.schedules import ScheduleCreate, ScheduleUpdate
from maintflow_core.settings import Settings
from maintflow_core.usecases.batches import fired_batch_counts
from maintflow_core.usecases.flows import get_flow, require_maintenance
from maintflow_core.usecases.owned import delete_owned, get_owned
from maintflow_core.usecases.pagination import paginate
from maintflow_core.usecases.schedule_rules import (
    apply_bounds,
    apply_rule,
    bounds_of,
    check_bounds,
    is_once,
    parse_rule,
    refuse_bounds,
    spec_of,
)
from maintflow_core.usecases.target_lists import get_target_list


def local_view(schedule: MaintenanceSchedule) -> dict[str, Any]:
    """The API representation: the row plus next_run_at in the schedule's own zone."""
    data = {c.key: getattr(schedule, c.key) for c in MaintenanceSchedule.__table__.columns}
    data["skipped_months"] = cron.months_without_day(schedule.recurrence)
    data["next_run_at_local"] = (
        cron.to_local(spec_of(schedule), schedule.next_run_at) if schedule.next_run_at else None
    )
    return data


async def create_schedule(
    db: AsyncSession, clock: Clock, settings: Settings, team_id: uuid.UUID, data: ScheduleCreate
) -> MaintenanceSchedule:
    now = clock.now()
    flow = await get_flow(db, team_id, data.flow_id)
    require_maintenance(flow)
    if data.target_list_id is not None:
        await get_target_list(db, team_id, data.target_list_id)
    recurrence = data.recurrence.model_dump(mode="json") if data.recurrence else None
    rule = parse_rule(data.cron_expression, recurrence, data.timezone, settings, now)
    bounds = Bounds(data.start_at, data.end_at)
    if rule.once_at is not None:
        refuse_bounds({name for name in ("start_at", "end_at") if getattr(data, name) is not None})
        bounds = Bounds(rule.once_at, rule.once_at)
    check_bounds(bounds.start_at, bounds.end_at)
    schedule = MaintenanceSchedule(
        id=uuid.uuid4(),
        team_id=team_id,
        flow_id=flow.id,
        target_list_id=data.target_list_id,
        cron_expression=rule.spec.expression,
        recurrence=recurrence,
        timezone=data.timezone,
        misfire_policy=data.misfire_policy,
        start_at=bounds.start_at,
        end_at=bounds.end_at,
        is_active=True,
        next_run_at=first_fire(rule.spec, now, bounds),
        created_at=now,
        updated_at=now,
    )
    try:
        async with db.begin_nested():
            db.add(schedule)
            await db.flush()
    except IntegrityError as exc:
        # The flow got a schedule meanwhile (one per flow), or stopped being a maintenance flow
        # (the (flow_id, flow_type) key): the savepoint keeps the session usable to tell which.
        await db.refresh(flow)
        require_maintenance(flow)
        raise Conflict(f"flow {data.flow_id} already has a maintenance schedule") from exc
    return schedule


async def get_schedule(
    db: AsyncSession, team_id: uuid.UUID, schedule_id: uuid.UUID, *, for_update: bool = False
) -> MaintenanceSchedule:
    return await get_owned(
        db, MaintenanceSchedule, team_id, schedule_id, "maintenance schedule", for_update=for_update
    )


async def schedule_of_flow(
    db: AsyncSession, team_id: uuid.UUID, flow_id: uuid.UUID
) -> MaintenanceSchedule:
    await get_flow(db, team_id, flow_id)
    schedule = await db.scalar(
        sa.select(MaintenanceSchedule).where(
            MaintenanceSchedule.flow_id == flow_id, MaintenanceSchedule.team_id == team_id
        )
    )
    if schedule is None:
        raise NotFound("this flow has no maintenance schedule")
    return schedule


async def list_schedules(
    db: AsyncSession,
    team_id: uuid.UUID,
    limit: int,
    cursor: str | None,
    flow_id: uuid.UUID | None = None,
) -> list[MaintenanceSchedule]:
    query = sa.select(MaintenanceSchedule).where(MaintenanceSchedule.team_id == team_id)
    if flow_id:
        query = query.where(MaintenanceSchedule.flow_id == flow_id)
    query = paginate(query, MaintenanceSchedule.created_at, MaintenanceSchedule.id, limit, cursor)
    return list((await db.scalars(query)).all())


async def update_schedule(
    db: AsyncSession,
    clock: Clock,
    settings: Settings,
    team_id: uuid.UUID,
    schedule_id: uuid.UUID,
    data: ScheduleUpdate,
) -> MaintenanceSchedule:
    now = clock.now()
    schedule = await get_schedule(db, team_id, schedule_id, for_update=True)
    changes = data.model_fields_set
    if "target_list_id" in changes:
        if data.target_list_id is not None:
            await get_target_list(db, team_id, data.target_list_id)
        schedule.target_list_id = data.target_list_id
    if "misfire_policy" in changes and data.misfire_policy is not None:
        schedule.misfire_policy = data.misfire_policy
    was_once = is_once(schedule.recurrence)
    rule_changed = bool(changes & {"cron_expression", "recurrence", "timezone"})
    if rule_changed:
        apply_rule(schedule, data, settings, now)
    elif was_once:
        refuse_bounds(changes)
    apply_bounds(schedule, data, left_once=was_once and not is_once(schedule.recurrence))
    if rule_changed or changes & {"start_at", "end_at"}:
        # A new rule applies from now on; instants of the old rule are not owed.
        schedule.next_run_at = first_fire(spec_of(schedule), now, bounds_of(schedule))
    schedule.updated_at = now
    if data.is_active is False:
        _pause(schedule, now, None)
    elif data.is_active is True:
        _resume(schedule, now)
    await db.flush()
    return schedule


def _pause(schedule: MaintenanceSchedule, now: datetime, reason: str | None) -> None:
    if schedule.is_active:
        schedule.is_active = False
        schedule.paused_at = now
    schedule.paused_reason = reason
    schedule.updated_at = now


def _resume(schedule: MaintenanceSchedule, now: datetime) -> None:
    if not schedule.is_active:
        # Instants that fell inside the pause were not owed: pick up from now.
        schedule.is_active = True
        schedule.paused_at = None
        schedule.paused_reason = None
        schedule.next_run_at = first_fire(spec_of(schedule), now, bounds_of(schedule))
        schedule.updated_at = now


async def pause_schedule(
    db: AsyncSession, clock: Clock, team_id: uuid.UUID, schedule_id: uuid.UUID, reason: str | None
) -> MaintenanceSchedule:
    schedule = await get_schedule(db, team_id, schedule_id, for_update=True)
    _pause(schedule, clock.now(), reason)
    await db.flush()
    return schedule


async def resume_schedule(
    db: AsyncSession, clock: Clock, team_id: uuid.UUID, schedule_id: uuid.UUID
) -> MaintenanceSchedule:
    schedule = await get_schedule(db, team_id, schedule_id, for_update=True)
    _resume(schedule, clock.now())
    await db.flush()
    return schedule


async def delete_schedule(db: AsyncSession, team_id: uuid.UUID, schedule_id: uuid.UUID) -> None:
    await delete_owned(db, MaintenanceSchedule, team_id, schedule_id, "maintenance schedule")


def preview(schedule: MaintenanceSchedule, after: datetime, count: int) -> dict[str, Any]:
    """The next `count` fire times after `after`, and the months up to the last of them that a
    monthly recurrence on day 29-31 skips."""
    spec = spec_of(schedule)
    times = [
        {"utc": instant, "local": cron.to_local(spec, instant)}
        for instant in upcoming(spec, after, count, bounds_of(schedule))
    ]
    skipped = (
        cron.skipped_months(schedule.recurrence, cron.to_local(spec, after), times[-1]["local"])
        if times
        else []
    )
    return {"fire_times": times, "skipped_months": skipped}


async def stats(db: AsyncSession, team_id: uuid.UUID) -> dict[str, Any]:
    """The team's schedules by state, and the batches they fired by progress."""
    s = MaintenanceSchedule
    row = (
        await db.execute(
            sa.select(
                sa.func.count(),
                sa.func.count().filter(s.is_active, s.next_run_at.is_not(None)),
                sa.func.count().filter(sa.not_(s.is_active)),
                sa.func.count().filter(s.is_active, s.next_run_at.is_(None)),
            ).where(s.team_id == team_id)
        )
    ).one()
    return {
        "total": row[0],
        "active": row[1],
        "paused": row[2],
        "finished": row[3],
        "batches": await fired_batch_counts(db, team_id),
    }
