"""Brute-force reference for cron fire times in a timezone; shares no code with croniter or cron.py.

It walks every UTC minute (or second) of a span, reads the local wall time with zoneinfo, and
applies the DST rule literally. Supports only `*`, values, names, lists, ranges and steps.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")

# (low, high, names) per field, in cron order: minute hour day month weekday [second]
_BOUNDS: tuple[tuple[int, int, dict[str, int]], ...] = (
    (0, 59, {}),
    (0, 23, {}),
    (1, 31, {}),
    (1, 12, {name: i + 1 for i, name in enumerate(MONTH_NAMES)}),
    (0, 7, {name: i for i, name in enumerate(DAY_NAMES)}),
    (0, 59, {}),
)


def _number(token: str, names: dict[str, int]) -> int:
    return names[token] if token in names else int(token)


def field_values(text: str, index: int) -> frozenset[int]:
    """The set of values a field matches. Day of week 7 is Sunday (0)."""
    low, high, names = _BOUNDS[index]
    if index == 4:
        high = 6  # '*' and '*/n' in the weekday field run over 0..6
    values: set[int] = set()
    for item in text.lower().split(","):
        body, _, step_text = item.partition("/")
        step = int(step_text) if step_text else 1
        if body == "*":
            first, last = low, high
        elif "-" in body:
            a, b = body.split("-")
            first, last = _number(a, names), _number(b, names)
            assert first <= last, "the reference only reads ascending ranges"
        else:
            first = _number(body, names)
            last = high if step_text else first  # "a/n" runs from a to the top of the field
        values.update(range(first, last + 1, step))
    if index == 4:
        values = {0 if v == 7 else v for v in values}
    return frozenset(values)


@dataclass(frozen=True)
class RefCron:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    seconds: frozenset[int]
    day_or: bool  # both day fields restricted: a day matches if EITHER matches (Vixie cron)
    fixed_hour: bool  # hour field does not start with '*'

    def matches(self, wall: datetime) -> bool:
        if wall.second not in self.seconds or wall.minute not in self.minutes:
            return False
        if wall.hour not in self.hours or wall.month not in self.months:
            return False
        day_ok = wall.day in self.days
        weekday_ok = (wall.isoweekday() % 7) in self.weekdays
        return (day_ok or weekday_ok) if self.day_or else (day_ok and weekday_ok)


def compile_cron(expression: str) -> RefCron:
    fields = expression.split()
    assert len(fields) in (5, 6)
    sets = [field_values(text, i) for i, text in enumerate(fields)]
    seconds = sets[5] if len(fields) == 6 else frozenset({0})
    days_restricted = sets[2] != frozenset(range(1, 32))
    weekdays_restricted = sets[4] != frozenset(range(7))
    return RefCron(
        minutes=sets[0],
        hours=sets[1],
        days=sets[2],
        months=sets[3],
        weekdays=sets[4],
        seconds=seconds,
        day_or=days_restricted and weekdays_restricted,
        fixed_hour=not fields[1].startswith("*"),
    )


@dataclass(frozen=True, slots=True)
class Tick:
    """One step of the walk: a UTC instant, its local wall time and fold, the UTC-offset change
    that happened at this instant, and the wall times a jump forward skipped just before it."""

    instant: datetime  # aware UTC
    wall: datetime  # naive local
    fold: int
    change: timedelta  # zero unless the offset changed exactly at this instant
    skipped: tuple[datetime, ...]


def walk(zone: ZoneInfo, start: datetime, end: datetime, step: timedelta) -> Iterator[Tick]:
    """Every instant start, start+step, ..., <= end (aware UTC, aligned to `step`)."""
    previous = (start - step).astimezone(zone)
    previous_offset = previous.utcoffset()
    assert previous_offset is not None
    instant = start
    while instant <= end:
        local = instant.astimezone(zone)
        offset = local.utcoffset()
        assert offset is not None
        jump = offset - previous_offset
        skipped: tuple[datetime, ...] = ()
        if jump:
            # The walk must see every change exactly at a step, or it would read walls wrongly.
            just_before = (instant - timedelta(seconds=1)).astimezone(zone)
            assert just_before.utcoffset() == previous_offset, (zone, instant)
            if jump > timedelta(0):
                first = previous.replace(tzinfo=None) + step
                skipped = tuple(first + k * step for k in range(int(jump / step)))
        yield Tick(instant, local.replace(tzinfo=None), local.fold, jump, skipped)
        previous, previous_offset = local, offset
        instant += step


def reference_fires(crons: list[RefCron], ticks: Iterator[Tick]) -> list[list[datetime]]:
    """Fire instants of each expression over the walk.

    Hour field starting with '*': every instant whose wall time matches (both passes of a
    repeated hour, nothing for skipped wall times). Otherwise: matching wall times at their
    first pass (fold=0), plus the instant of a jump forward once if any skipped wall matches.
    """
    out: list[list[datetime]] = [[] for _ in crons]
    for tick in ticks:
        minute = tick.wall.minute
        for cron, fires in zip(crons, out, strict=True):
            if minute not in cron.minutes and not tick.skipped:
                continue  # cheap early exit; the full rule is below
            if cron.fixed_hour:
                hit = (tick.fold == 0 and cron.matches(tick.wall)) or any(
                    cron.matches(wall) for wall in tick.skipped
                )
            else:
                hit = cron.matches(tick.wall)
            if hit:
                fires.append(tick.instant)
    return out
