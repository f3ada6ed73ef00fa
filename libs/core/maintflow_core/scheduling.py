"""Pure scheduling decisions: which instants a due schedule fires now (the misfire policy) and
where its next_run_at moves. No I/O; "now" is an argument. The scheduler's tick and the API's
preview both go through here and through `cron`, so they can never disagree."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from maintflow_core import cron

_TICK = timedelta(microseconds=1)
# Upper bound of on-time instants fired for one schedule in one claim: an every-second schedule
# that is `misfire_grace_s` behind has that many; the rest are fired on the next pass.
MAX_ON_TIME_PER_CLAIM = 1000


@dataclass(frozen=True, slots=True)
class Bounds:
    start_at: datetime | None = None
    end_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class FirePlan:
    instants: list[datetime]
    missed: bool  # some instants were older than the grace and went through the policy
    next_run_at: datetime | None


@lru_cache(maxsize=65_536)
def _next(spec: cron.CronSpec, after: datetime) -> datetime | None:
    # Pure, so memoised: a top-of-the-hour storm is thousands of schedules with the same rule
    # due at the same instant, and they all need the same answer.
    return cron.next_fire(spec, after)


def first_fire(spec: cron.CronSpec, after: datetime, bounds: Bounds) -> datetime | None:
    """The schedule's first instant strictly after `after` that lies within its bounds."""
    if bounds.start_at is not None and bounds.start_at > after:
        # start_at itself may be a fire instant: search from just before it.
        after = bounds.start_at - _TICK
    instant = _next(spec, after)
    if instant is None or (bounds.end_at is not None and instant > bounds.end_at):
        return None
    return instant


def upcoming(spec: cron.CronSpec, after: datetime, count: int, bounds: Bounds) -> list[datetime]:
    result: list[datetime] = []
    cursor = after
    while len(result) < count:
        instant = first_fire(spec, cursor, bounds)
        if instant is None:
            break
        result.append(instant)
        cursor = instant
    return result


def plan(
    spec: cron.CronSpec,
    next_run_at: datetime,
    now: datetime,
    *,
    policy: str,
    grace: timedelta,
    max_catchup: int,
    bounds: Bounds,
) -> FirePlan:
    """Instants to fire for a schedule due at `next_run_at` (a fire instant of its rule, ≤ now).

    Instants no older than `grace` fire late but normally. Older ones were missed while nothing
    ran and follow the policy: skip (none), run_once (the newest), run_all (the newest
    `max_catchup`)."""
    cutoff = now - grace
    instants: list[datetime] = []
    missed_any = False
    upcoming_instant: datetime | None
    if next_run_at < cutoff:
        keep = {"skip": 0, "run_once": 1, "run_all": max_catchup}[policy]
        # Count only what we need; newest_fires never walks a long outage instant by instant.
        missed = cron.newest_fires(spec, cutoff - _TICK, next_run_at - _TICK, max(keep, 1))
        missed_any = bool(missed)
        instants.extend(missed[len(missed) - keep :] if keep else [])
        upcoming_instant = _next(spec, cutoff - _TICK)
    else:
        # next_run_at is always written as an instant of the current rule (create, edit and
        # every tick compute it with the same code), so it needs no recomputation here.
        upcoming_instant = next_run_at
    fired_on_time = 0
    while (
        upcoming_instant is not None
        and upcoming_instant <= now
        and fired_on_time < MAX_ON_TIME_PER_CLAIM
    ):
        instants.append(upcoming_instant)
        fired_on_time += 1
        upcoming_instant = _next(spec, upcoming_instant)
    if bounds.end_at is not None:
        instants = [i for i in instants if i <= bounds.end_at]
    if bounds.start_at is not None:
        instants = [i for i in instants if i >= bounds.start_at]
    if upcoming_instant is not None:
        # Still within bounds? (an instant not yet fired stays due for the next pass)
        upcoming_instant = first_fire(spec, upcoming_instant - _TICK, bounds)
    return FirePlan(instants=instants, missed=missed_any, next_run_at=upcoming_instant)
