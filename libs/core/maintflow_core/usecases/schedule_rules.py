"""A schedule's rule and bounds as the API gives them: a cron expression or a recurrence preset
in an IANA zone, validated with the scheduler's own code (and against the server's smallest
interval), and a one-off recurrence pinned to its instant by start_at = end_at = run_at."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from maintflow_core import cron
from maintflow_core.errors import InvalidCron, InvalidField
from maintflow_core.models import MaintenanceSchedule
from maintflow_core.scheduling import Bounds, first_fire
from maintflow_core.schemas.schedules import ScheduleUpdate
from maintflow_core.settings import Settings


def spec_of(schedule: MaintenanceSchedule) -> cron.CronSpec:
    return cron.parse(schedule.cron_expression, schedule.timezone)


def bounds_of(schedule: MaintenanceSchedule) -> Bounds:
    return Bounds(schedule.start_at, schedule.end_at)


@dataclass(frozen=True)
class Rule:
    spec: cron.CronSpec
    # A one-off recurrence: its one instant, which pins the schedule's start_at and end_at.
    once_at: datetime | None = None


def parse_rule(
    cron_expression: str | None,
    recurrence: dict[str, Any] | None,
    timezone: str,
    settings: Settings,
    now: datetime,
) -> Rule:
    cron.validate_timezone(timezone)
    if recurrence is not None:
        spec = cron.parse(cron.recurrence_to_cron(recurrence, timezone), timezone)
        if recurrence["type"] != "once":
            return Rule(spec)
        at = cron.one_off_instant(datetime.fromisoformat(recurrence["run_at"]))
        if first_fire(spec, now, Bounds(at, at)) != at:
            raise InvalidField("recurrence.run_at", "is in the past")
        return Rule(spec, at)
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
    return Rule(spec)


def refuse_bounds(given: set[str]) -> None:
    """A one-off schedule's bounds are its instant; bounds given with it would contradict it."""
    for name in ("start_at", "end_at"):
        if name in given:
            raise InvalidField(name, "a one-off schedule fires at recurrence.run_at only")


def check_bounds(start_at: datetime | None, end_at: datetime | None) -> None:
    for name, value in (("start_at", start_at), ("end_at", end_at)):
        if value is not None and value.tzinfo is None:
            raise InvalidField(name, "needs a UTC offset (RFC 3339)")
    # Both bounds are inclusive: equal ones allow that one instant (a one-off schedule's form).
    if start_at is not None and end_at is not None and end_at < start_at:
        raise InvalidField("end_at", "must not be before start_at")


def apply_bounds(schedule: MaintenanceSchedule, data: ScheduleUpdate, *, left_once: bool) -> None:
    for name in ("start_at", "end_at"):
        if name in data.model_fields_set:
            setattr(schedule, name, getattr(data, name))
        elif left_once:
            setattr(schedule, name, None)  # the one-off's instant, not a bound the client set
    check_bounds(schedule.start_at, schedule.end_at)


def is_once(recurrence: dict[str, Any] | None) -> bool:
    return recurrence is not None and recurrence.get("type") == "once"


def apply_rule(
    schedule: MaintenanceSchedule, data: ScheduleUpdate, settings: Settings, now: datetime
) -> None:
    timezone = data.timezone or schedule.timezone
    recurrence = data.recurrence.model_dump(mode="json") if data.recurrence else None
    if data.cron_expression is None and recurrence is None:
        # Only the timezone changed: re-read the stored rule in the new zone.
        recurrence = schedule.recurrence
        expression = None if recurrence else schedule.cron_expression
        if is_once(recurrence):
            raise InvalidField("timezone", "a one-off schedule's zone is fixed; give run_at")
    else:
        expression = data.cron_expression
    rule = parse_rule(expression, recurrence, timezone, settings, now)
    if rule.once_at is not None:
        refuse_bounds(data.model_fields_set)
        schedule.start_at = schedule.end_at = rule.once_at
    schedule.cron_expression = rule.spec.expression
    schedule.recurrence = recurrence
    schedule.timezone = timezone
