"""Maintenance schedules: create and edit (validating cron and timezone with the scheduler's own
code), pause and resume, run now, preview, stats. Every change is a row update; the running
scheduler reads rows on each tick, so edits apply on its next tick."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from maintflow_core import cron
from maintflow_core.clock import Clock
from maintflow_core.db.store import Store
from maintflow_core.errors import Conflict, InvalidCron, InvalidField, NotFound
from maintflow_core.models import Batch, MaintenanceSchedule, Session
from maintflow_core.records import fire
from maintflow_core.scheduling import Bounds, first_fire, upcoming
from maintflow_core.schemas.schedules import ScheduleCreate, ScheduleUpdate
from maintflow_core.settings import Settings
from maintflow_core.usecases.batches import require_maintenance
from maintflow_core.usecases.flows import get_flow
from maintflow_core.usecases.pagination import paginate
from maintflow_core.usecases.target_lists import get_target_list


def spec_of(schedule: MaintenanceSchedule) -> cron.CronSpec:
    return cron.parse(schedule.cron_expression, schedule.timezone)


def bounds_of(schedule: MaintenanceSchedule) -> Bounds:
    return Bounds(schedule.start_at, schedule.end_at)


@dataclass(frozen=True)
class _Rule:
    spec: cron.CronSpec
    # A one-off recurrence: its one instant, which pins the schedule's start_at and end_at.
    once_at: datetime | None = None


def _rule(
    cron_expression: str | None,
    recurrence: dict[str, Any] | None,
    timezone: str,
    settings: Settings,
    now: datetime,
) -> _Rule:
    cron.validate_timezone(timezone)
    if recurrence is not None:
        spec = cron.parse(cron.recurrence_to_cron(recurrence, timezone), timezone)
        if recurrence["type"] != "once":
            return _Rule(spec)
        at = cron.one_off_instant(datetime.fromisoformat(recurrence["run_at"]))
        if first_fire(spec, now, Bounds(at, at)) != at:
            raise InvalidField("recurrence.run_at", "is in the past")
        return _Rule(spec, at)
    assert cron_expression is not None
    spec = cron.parse(cron_expression, timezone)
    if len(spec.expression.split()) > 6:
        # parse() also reads croniter's 7-field year form; the API takes 5 fields + seconds.
        raise InvalidCron("expected 5 or 6 fields, got 7")
    gap = cron.min_interval_seconds(spec, now)
    if gap < settings.min_schedule_interval_s:
        raise InvalidCron(
            f"fires every {gap:g} s; this server allows at most one fire per "
            f"{settings.min_schedule_interval_s:g} s (MAINTFLOW_MIN_SCHEDULE_INTERVAL_S)"
        )
    return _Rule(spec)


def _refuse_bounds(given: set[str]) -> None:
    """A one-off schedule's bounds are its instant; bounds given with it would contradict it."""
    for name in ("start_at", "end_at"):
        if name in given:
            raise InvalidField(name, "a one-off schedule fires at recurrence.run_at only")


def _check_bounds(start_at: datetime | None, end_at: datetime | None) -> None:
    for name, value in (("start_at", start_at), ("end_at", end_at)):
        if value is not None and value.tzinfo is None:
            raise InvalidField(name, "needs a UTC offset (RFC 3339)")
    # Both bounds are inclusive: equal ones allow that one instant (a one-off schedule's form).
    if start_at is not None and end_at is not None and end_at < start_at:
        raise InvalidField("end_at", "must not be before start_at")


def local_view(schedule: MaintenanceSchedule) -> dict[str, Any]:
    """The API representation: the row plus next_run_at in the schedule's own zone."""
    data = {c.key: getattr(schedule, c.key) for c in MaintenanceSchedule.__table__.columns}
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
    rule = _rule(data.cron_expression, recurrence, data.timezone, settings, now)
    bounds = Bounds(data.start_at, data.end_at)
    if rule.once_at is not None:
        _refuse_bounds({name for name in ("start_at", "end_at") if getattr(data, name) is not None})
        bounds = Bounds(rule.once_at, rule.once_at)
    _check_bounds(bounds.start_at, bounds.end_at)
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
    query = sa.select(MaintenanceSchedule).where(
        MaintenanceSchedule.id == schedule_id, MaintenanceSchedule.team_id == team_id
    )
    if for_update:
        query = query.with_for_update()
    schedule = await db.scalar(query)
    if schedule is None:
        raise NotFound("maintenance schedule not found")
    return schedule


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
    was_once = _is_once(schedule.recurrence)
    rule_changed = bool(changes & {"cron_expression", "recurrence", "timezone"})
    if rule_changed:
        _apply_rule(schedule, data, settings, now)
    elif was_once:
        _refuse_bounds(changes)
    _apply_bounds(schedule, data, left_once=was_once and not _is_once(schedule.recurrence))
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


def _apply_bounds(schedule: MaintenanceSchedule, data: ScheduleUpdate, *, left_once: bool) -> None:
    for name in ("start_at", "end_at"):
        if name in data.model_fields_set:
            setattr(schedule, name, getattr(data, name))
        elif left_once:
            setattr(schedule, name, None)  # the one-off's instant, not a bound the client set
    _check_bounds(schedule.start_at, schedule.end_at)


def _is_once(recurrence: dict[str, Any] | None) -> bool:
    return recurrence is not None and recurrence.get("type") == "once"


def _apply_rule(
    schedule: MaintenanceSchedule, data: ScheduleUpdate, settings: Settings, now: datetime
) -> None:
    timezone = data.timezone or schedule.timezone
    recurrence = data.recurrence.model_dump(mode="json") if data.recurrence else None
    if data.cron_expression is None and recurrence is None:
        # Only the timezone changed: re-read the stored rule in the new zone.
        recurrence = schedule.recurrence
        expression = None if recurrence else schedule.cron_expression
        if _is_once(recurrence):
            raise InvalidField("timezone", "a one-off schedule's zone is fixed; give run_at")
    else:
        expression = data.cron_expression
    rule = _rule(expression, recurrence, timezone, settings, now)
    if rule.once_at is not None:
        _refuse_bounds(data.model_fields_set)
        schedule.start_at = schedule.end_at = rule.once_at
    schedule.cron_expression = rule.spec.expression
    schedule.recurrence = recurrence
    schedule.timezone = timezone


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
    result = await db.execute(
        sa.delete(MaintenanceSchedule).where(
            MaintenanceSchedule.id == schedule_id, MaintenanceSchedule.team_id == team_id
        )
    )
    if result.rowcount == 0:  # type: ignore[attr-defined]
        raise NotFound("maintenance schedule not found")


async def run_now(
    db: AsyncSession, clock: Clock, store: Store, team_id: uuid.UUID, schedule_id: uuid.UUID
) -> uuid.UUID:
    """A batch for right now, fanned out by the same workers as a scheduled fire. Its targets
    and steps are those of the moment of the request (the list may be edited or deleted before
    the fan-out starts), as for a batch launched by hand."""
    schedule = await get_schedule(db, team_id, schedule_id)
    now = clock.now()
    flow = await get_flow(db, team_id, schedule.flow_id)
    targets: list[dict[str, Any]] = []
    if schedule.target_list_id is not None:
        target_list = await get_target_list(db, team_id, schedule.target_list_id)
        target_list.last_used_at = now
        targets = list(target_list.targets)
    new = fire(
        trigger="run_now",
        team_id=team_id,
        flow_id=schedule.flow_id,
        schedule_id=schedule.id,
        target_list_id=schedule.target_list_id,
        instant=now,
        now=now,
        snapshot=(targets, flow.steps),
    )
    await store.write_fires(db, [new])
    return new.id


def preview(
    schedule: MaintenanceSchedule, after: datetime, count: int
) -> list[dict[str, datetime]]:
    spec = spec_of(schedule)
    return [
        {"utc": instant, "local": cron.to_local(spec, instant)}
        for instant in upcoming(spec, after, count, bounds_of(schedule))
    ]


async def stats(db: AsyncSession, team_id: uuid.UUID) -> dict[str, Any]:
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
    unfinished = (
        sa.select(Session.id)
        .where(Session.batch_id == Batch.id, Session.status.in_(("pending", "in_progress")))
        .exists()
    )
    b = (
        await db.execute(
            sa.select(
                sa.func.count().filter(Batch.ready_at.is_(None)),
                sa.func.count().filter(Batch.ready_at.is_not(None), unfinished),
                sa.func.count().filter(Batch.ready_at.is_not(None), sa.not_(unfinished)),
            ).where(Batch.team_id == team_id, Batch.trigger.in_(("schedule", "run_now")))
        )
    ).one()
    return {
        "total": row[0],
        "active": row[1],
        "paused": row[2],
        "finished": row[3],
        "batches": {"fanning_out": b[0], "in_progress": b[1], "completed": b[2]},
    }
