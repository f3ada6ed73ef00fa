"""Cron expressions read in an IANA timezone, with the classic cron rule for DST changes.

croniter enumerates naive local wall times; this module maps each wall time to UTC instants
itself, so the DST rule stays explicit. Pure: no I/O beyond tzdata; "now" is always an argument.
"""

from __future__ import annotations

import calendar
import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache, lru_cache
from itertools import pairwise
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from croniter import CroniterBadDateError, CroniterError, croniter

from maintflow_core.errors import InvalidCron, InvalidField, InvalidTimezone

__all__ = [
    "CronSpec",
    "fire_times",
    "fires_between",
    "min_interval_seconds",
    "newest_fires",
    "next_fire",
    "one_off_instant",
    "parse",
    "recurrence_to_cron",
    "to_local",
    "validate_timezone",
]

MAX_EXPRESSION_LENGTH = 200  # the stored column is VARCHAR(200)
NEVER_FIRES_YEARS = 5
# croniter gives up after this many years without a match. Validation already rejects
# expressions that find no date within NEVER_FIRES_YEARS of the anchor, so this only bounds the
# rare legitimately sparse ones (29 February skips 2100) and keeps CPU use finite.
_SEARCH_YEARS = 30
# Fixed start of the "never fires" search (keeps parse() pure). Naive on purpose: a wall time.
_ANCHOR = datetime(2000, 1, 1)  # noqa: DTZ001
# Probe step when looking for a UTC-offset change between two instants. It must be shorter than
# the shortest time between two offset changes of any zone, or a pair of changes that cancel out
# could hide inside one step. In tzdata that is ~4 days (Africa/Freetown, 1939) and 7 days since
# 1970; tests/unit/test_cron.py checks it against the installed tzdata.
PROBE_STEP = timedelta(days=1)
_SECOND = timedelta(seconds=1)

_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


class _Field(NamedTuple):
    name: str
    low: int
    high: int
    names: Mapping[str, int]


_FIELDS = (
    _Field("minute", 0, 59, {}),
    _Field("hour", 0, 23, {}),
    _Field("day-of-month", 1, 31, {}),
    _Field("month", 1, 12, {n: i + 1 for i, n in enumerate(_MONTHS)}),
    _Field("day-of-week", 0, 7, {n: i for i, n in enumerate(_WEEKDAYS)}),  # 0 and 7 = Sunday
    _Field("second", 0, 59, {}),
    _Field("year", 1970, 2099, {}),  # croniter's year range
)
_DOM, _DOW = 2, 4

_ITEM_RE = re.compile(r"^(\*|[0-9a-z]+)(?:-([0-9a-z]+))?(?:/([0-9]+))?$", re.ASCII)
_HASH_RE = re.compile(r"^[hr](?:$|[(/])", re.ASCII)
_NEAREST_WEEKDAY_RE = re.compile(r"^(?:([0-9]+)w|w([0-9]+))$", re.ASCII)
_LAST_WEEKDAY_RE = re.compile(r"^l([0-9]+)$", re.ASCII)
_NTH_WEEKDAY_RE = re.compile(r"^([0-9a-z]+)#([0-9]+)$", re.ASCII)
_TIME_RE = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$", re.ASCII)


# --------------------------------------------------------------------------------------------
# Timezones
# --------------------------------------------------------------------------------------------


@cache
def _known_timezones() -> frozenset[str]:
    # "localtime" names whatever zone the host is set to: a schedule must not change meaning
    # when it is read on another machine.
    return (frozenset(available_timezones()) | {"UTC"}) - {"localtime"}


def validate_timezone(name: str) -> ZoneInfo:
    """The ZoneInfo for an IANA name; InvalidTimezone if it is empty or unknown."""
    if not isinstance(name, str):
        raise InvalidTimezone("timezone must be a string")
    if not name.strip():
        raise InvalidTimezone("timezone is empty")
    if name not in _known_timezones():
        raise InvalidTimezone(f"unknown IANA timezone {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:  # listed but unreadable
        raise InvalidTimezone(f"unknown IANA timezone {name!r}") from exc


# --------------------------------------------------------------------------------------------
# Parsing and validation
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CronSpec:
    """A validated cron expression and the zone its wall times are read in. Build with parse()."""

    expression: str  # normalised stored form (macros expanded, whitespace collapsed)
    timezone: str
    has_seconds: bool
    fixed_hour: bool  # hour field does not start with '*': the fixed-time DST rule applies
    _zone: ZoneInfo = field(init=False, repr=False, compare=False)
    # croniter is mutable: every query works on a shallow copy, so a spec can be shared by threads.
    _template: Any = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_zone", validate_timezone(self.timezone))
        try:
            template = croniter(
                self.expression,
                _ANCHOR,
                ret_type=datetime,
                max_years_between_matches=_SEARCH_YEARS,
            )
        except CroniterError as exc:
            raise InvalidCron(f"invalid cron expression: {exc}") from exc
        object.__setattr__(self, "_template", template)


def parse(expression: str, timezone: str = "UTC") -> CronSpec:
    """Validate `expression` (5 fields, a 6th = seconds, a 7th = year) and `timezone`.

    `@hourly`, `@daily`/`@midnight`, `@weekly`, `@monthly`, `@yearly`/`@annually` are expanded to
    five fields. Errors are InvalidCron / InvalidTimezone with a message naming the problem. An
    expression that finds no date within 5 years of 2000-01-01 (for a year field: of 1 January
    of its first year) is rejected as never firing. Two deliberate departures from croniter:
    `a-a` means just `a` (croniter reads an equal range as the whole field, so `5-5 * * * *`
    would fire every minute), and H/R (hashed/random) values are refused.
    """
    if not isinstance(expression, str):
        raise InvalidCron("cron expression must be a string")
    validate_timezone(timezone)  # before the cache: its key must be a hashable str
    # The scheduler re-parses stored schedules on every tick; specs are immutable, so cache them.
    return _parse(expression, timezone)


@lru_cache(maxsize=4096)
def _parse(expression: str, timezone: str) -> CronSpec:
    zone = validate_timezone(timezone)
    fields = _split(expression)
    normalised = " ".join(_check_field(i, text) for i, text in enumerate(fields))
    _check_with_croniter(normalised)
    _check_fires(normalised, fields)
    return CronSpec(
        expression=normalised,
        timezone=zone.key,
        has_seconds=len(fields) > 5,
        fixed_hour=not normalised.split()[1].startswith("*"),
    )


def _split(expression: str) -> list[str]:
    text = expression.strip()
    if not text:
        raise InvalidCron("cron expression is empty")
    if len(text) > MAX_EXPRESSION_LENGTH:
        raise InvalidCron(f"cron expression is longer than {MAX_EXPRESSION_LENGTH} characters")
    if text.startswith("@"):
        macro = text.lower()
        if macro == "@reboot":
            raise InvalidCron("@reboot is not supported: schedules fire at times, not at start-up")
        if macro not in _MACROS:
            known = ", ".join(sorted(_MACROS))
            raise InvalidCron(f"unknown macro {text!r}; expected one of {known}")
        text = _MACROS[macro]
    fields = text.split()
    if len(fields) not in (5, 6, 7):  # 7 (seconds + year): croniter's form, not the API's
        raise InvalidCron(f"expected 5 or 6 fields, got {len(fields)}")
    return fields


def _check_field(index: int, text: str) -> str:
    """Check one field and return its normalised text; InvalidCron names the field on error."""
    spec = _FIELDS[index]
    lowered = text.lower()
    if lowered == "?":
        if index not in (_DOM, _DOW):
            raise InvalidCron(f"{spec.name} field: '?' is only allowed in the day fields")
        return text
    items = lowered.split(",")
    originals = text.split(",")
    out: list[str] = []
    for item, original in zip(items, originals, strict=True):
        if not item:
            raise InvalidCron(f"{spec.name} field: empty list item in {text!r}")
        if _HASH_RE.match(item):
            raise InvalidCron(
                f"{spec.name} field: hashed/random values ('H', 'R') are not supported"
            )
        if index == _DOM and (item == "l" or _NEAREST_WEEKDAY_RE.match(item)):
            _check_dom_special(spec, item, len(items))
            out.append(original)
            continue
        if index == _DOW and (_LAST_WEEKDAY_RE.match(item) or _NTH_WEEKDAY_RE.match(item)):
            _check_dow_special(spec, item)
            out.append(original)
            continue
        out.append(_check_item(spec, index, item, original))
    return ",".join(out)


def _check_item(spec: _Field, index: int, item: str, original: str) -> str:
    match = _ITEM_RE.match(item)
    if match is None:
        raise InvalidCron(f"{spec.name} field: cannot read {original!r}")
    start, end, step = match.groups()
    if step is not None and int(step) < 1:
        raise InvalidCron(f"{spec.name} field: step must be at least 1, got {step}")
    if start == "*":
        if end is not None:
            raise InvalidCron(f"{spec.name} field: cannot read {original!r}")
        return original
    low = _value(spec, start)
    if end is None:
        return original
    high = spec.high if index == _DOM and end == "l" else _value(spec, end)
    if low == high:
        # Workaround: croniter reads an equal range ("5-5", "mon-mon") as the WHOLE field (every
        # minute / every day); cron and any reader mean the single value.
        return original.split("-", 1)[0]
    return original


def _value(spec: _Field, token: str) -> int:
    if token.isdigit():
        number = int(token)
    elif token in spec.names:
        number = spec.names[token]
    else:
        raise InvalidCron(f"{spec.name} field: unknown value {token!r}")
    if not spec.low <= number <= spec.high:
        raise InvalidCron(f"{spec.name} field: value {number} out of range {spec.low}-{spec.high}")
    return number


def _check_dom_special(spec: _Field, item: str, items: int) -> None:
    match = _NEAREST_WEEKDAY_RE.match(item)
    if match is None:  # "L": last day of the month
        return
    _value(spec, match.group(1) or match.group(2))
    if items > 1:
        raise InvalidCron(f"{spec.name} field: 'W' only works with a single day, not a list")


def _check_dow_special(spec: _Field, item: str) -> None:
    last = _LAST_WEEKDAY_RE.match(item)
    if last is not None:  # "L5": the last Friday of the month
        _value(spec, last.group(1))
        return
    nth = _NTH_WEEKDAY_RE.match(item)
    assert nth is not None
    _value(spec, nth.group(1))
    if not 1 <= int(nth.group(2)) <= 5:
        raise InvalidCron(f"{spec.name} field: '#{nth.group(2)}' out of range #1-#5")


def _check_with_croniter(expression: str) -> None:
    if croniter.is_valid(expression, strict=True):
        return
    if croniter.is_valid(expression):
        # Only the strict day/month cross-check failed ("0 0 30 2 *", "0 0 31 4 *").
        raise InvalidCron(f"never fires: no date matches within {NEVER_FIRES_YEARS} years")
    try:
        croniter.expand(expression)
    except CroniterError as exc:
        raise InvalidCron(f"invalid cron expression: {exc}") from exc
    raise InvalidCron("invalid cron expression")  # pragma: no cover - is_valid said no


def _check_fires(expression: str, fields: list[str]) -> None:
    """Reject expressions with no matching wall time within NEVER_FIRES_YEARS of an anchor.

    A bounded search, so a sparse expression cannot burn CPU. The anchor is fixed (not "now")
    to keep parse() pure; for a year field it is 1 January of the first year listed.
    """
    anchor = _ANCHOR
    if len(fields) == 7:
        years = croniter.expand(expression)[0][6]
        if years != ["*"]:
            anchor = datetime(min(int(y) for y in years), 1, 1)  # noqa: DTZ001 - a wall time
    probe = croniter(
        expression,
        anchor - _SECOND,
        ret_type=datetime,
        max_years_between_matches=NEVER_FIRES_YEARS,
    )
    try:
        probe.get_next(datetime)
    except CroniterBadDateError as exc:
        raise InvalidCron(f"never fires: no date matches within {NEVER_FIRES_YEARS} years") from exc


# --------------------------------------------------------------------------------------------
# Fire times. Internally every instant is a naive UTC datetime and every wall time a naive
# local one; aware datetimes only cross the public API.
# --------------------------------------------------------------------------------------------


def next_fire(spec: CronSpec, after: datetime) -> datetime | None:
    """First fire instant strictly after `after` (aware; any tz). Returns aware UTC, or None when
    the expression has no more fires (year field exhausted).

    DST rule. Hour field not starting with '*' (a time of day): a wall time skipped by a jump
    forward fires once, at the instant of the jump (02:30 on a 02:00->03:00 night fires at 03:00),
    all skipped wall times of one gap collapse into that instant, and a wall time that occurs
    twice fires at its first occurrence only. Hour field starting with '*': real time is
    followed, so skipped wall times never fire and repeated ones fire at each occurrence.
    """
    instant = _next(spec, _naive_utc(after, "after"))
    return None if instant is None else instant.replace(tzinfo=UTC)


def fire_times(spec: CronSpec, after: datetime, count: int) -> list[datetime]:
    """The next `count` fire instants after `after`, ascending, aware UTC (fewer if exhausted)."""
    return [t.replace(tzinfo=UTC) for t in _walk(spec, _naive_utc(after, "after"), None, count)]


def fires_between(
    spec: CronSpec, start_exclusive: datetime, end_inclusive: datetime, limit: int
) -> list[datetime]:
    """Ascending instants in (start, end], at most `limit` (the earliest ones)."""
    start = _naive_utc(start_exclusive, "start_exclusive")
    end = _naive_utc(end_inclusive, "end_inclusive")
    return [t.replace(tzinfo=UTC) for t in _walk(spec, start, end, limit)]


def newest_fires(
    spec: CronSpec, not_after: datetime, not_before_exclusive: datetime, count: int
) -> list[datetime]:
    """Up to `count` NEWEST instants in (not_before_exclusive, not_after], returned ascending.

    Cheap even when the range holds millions of instants: it looks back from `not_after` through
    a window that doubles until it holds at least `count` fires, and if a doubling overshoots
    (more than `cap` fires) it bisects the window width. Fire instants are whole seconds, one per
    second at most, so widening the window by a second adds at most one fire: the bisection
    always lands on a width holding between `count` and `cap` fires, and no probe enumerates
    more than `cap + 1`.
    """
    if count <= 0:
        return []
    end = _naive_utc(not_after, "not_after")
    floor = _naive_utc(not_before_exclusive, "not_before_exclusive")
    if end <= floor:
        return []
    span = end - floor
    cap = 2 * count + 16

    def window(width: timedelta) -> list[datetime]:
        return _walk(spec, end - width, end, cap + 1)

    too_few = timedelta(0)  # a width known to hold fewer than `count` fires
    width = timedelta(seconds=count)
    while True:
        width = min(width, span)
        fires = window(width)
        if len(fires) > cap:
            break
        if len(fires) >= count or width == span:
            return [t.replace(tzinfo=UTC) for t in fires[-count:]]
        too_few, width = width, width * 2
    too_many = width
    while True:
        middle = too_few + (too_many - too_few) // 2
        fires = window(middle)
        if len(fires) > cap:
            too_many = middle
        elif len(fires) < count:
            too_few = middle
        else:
            return [t.replace(tzinfo=UTC) for t in fires[-count:]]


def min_interval_seconds(spec: CronSpec, after: datetime, sample: int = 200) -> float:
    """Smallest gap between consecutive fires among the next `sample` fires after `after`
    (inf if there are fewer than 2)."""
    times = _walk(spec, _naive_utc(after, "after"), None, sample)
    gaps = [(b - a).total_seconds() for a, b in pairwise(times)]
    return min(gaps, default=float("inf"))


def to_local(spec: CronSpec, instant: datetime) -> datetime:
    """`instant` (aware) as an aware datetime in the schedule's timezone."""
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError("instant must be timezone-aware")
    return instant.astimezone(spec._zone)


def _naive_utc(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")
    return value.astimezone(UTC).replace(tzinfo=None)


def _walk(spec: CronSpec, after: datetime, end: datetime | None, limit: int) -> list[datetime]:
    out: list[datetime] = []
    current: datetime | None = after
    while len(out) < limit and current is not None:
        current = _next(spec, current)
        if current is None or (end is not None and current > end):
            break
        out.append(current)
    return out


def _next(spec: CronSpec, after: datetime) -> datetime | None:
    try:
        if spec.fixed_hour:
            return _next_fixed_hour(spec, after)
        return _next_real_time(spec, after)
    except OverflowError:  # past datetime.max: nothing more to fire
        return None


def _next_wall(spec: CronSpec, start: datetime, *, inclusive: bool) -> datetime | None:
    """First matching wall time after `start` (or at it when `inclusive`), or None if none.

    croniter given a naive datetime does plain wall-clock arithmetic (no zone, no DST), which is
    exactly the enumeration we want. Matches are whole seconds, so `start` is first reduced to
    a whole second from which croniter's strictly-after search gives the same answer.
    """
    base = start.replace(microsecond=0)
    if inclusive and start.microsecond == 0:
        base -= _SECOND
    iterator = copy.copy(spec._template)
    iterator.set_current(base, force=True)
    try:
        wall: datetime = iterator.get_next(datetime)
    except CroniterBadDateError:
        return None
    return wall


def _next_fixed_hour(spec: CronSpec, after: datetime) -> datetime | None:
    """Fixed-time rule. Mapping each wall time to its first occurrence, or to the end of the gap
    for a skipped one, never decreases as the wall time increases; so the first matching wall
    time whose instant is past `after` is the answer."""
    zone = spec._zone
    local = zone.fromutc(after.replace(tzinfo=zone))
    wall = local.replace(tzinfo=None)
    inclusive = False
    if local.fold:
        # `after` is in the second pass of a repeated hour: every wall time up to the end of the
        # repeat had its (first) occurrence before `after`, so jump to where the repeat ends
        # rather than step through up to an hour of matches (3600 for an every-second schedule).
        old_offset = _offset_of_wall(zone, wall, fold=0)
        change = _offset_change(zone, wall - old_offset, after)
        wall, inclusive = change + old_offset, True
    while True:
        candidate = _next_wall(spec, wall, inclusive=inclusive)
        if candidate is None:
            return None
        instant = _first_occurrence(zone, candidate)
        # The jump above makes this true at the first candidate; the loop is what guarantees
        # the answer is strictly after `after` (and so that chained calls always progress).
        if instant > after:
            return instant
        wall, inclusive = candidate, False


def _first_occurrence(zone: ZoneInfo, wall: datetime) -> datetime:
    """The instant a fixed-time wall time fires: its first occurrence, or if a jump forward
    skipped it, the instant of the jump (= the first wall time after the gap)."""
    first = _offset_of_wall(zone, wall, fold=0)
    second = _offset_of_wall(zone, wall, fold=1)
    if first >= second:  # exists once (equal) or twice (fold=0 is the earlier occurrence)
        return wall - first
    # In a gap PEP 495 reads fold=0 with the offset from before the jump and fold=1 with the one
    # after it, so the jump lies between the two readings.
    return _offset_change(zone, wall - second, wall - first)


def _next_real_time(spec: CronSpec, after: datetime) -> datetime | None:
    """Real-time rule: the first instant after `after` whose local wall time matches.

    Between two UTC-offset changes wall time = instant + offset, so a segment of constant offset
    is searched with one croniter call; if the offset changes before the candidate, the search
    restarts at the change with the new offset (skipped wall times are never reached; repeated
    ones are reached once per pass)."""
    zone = spec._zone
    start, inclusive = after, False
    while True:
        offset = _offset_at(zone, start)
        wall = _next_wall(spec, start + offset, inclusive=inclusive)
        if wall is None:
            return None
        candidate = wall - offset
        change = _first_offset_change(zone, start, candidate)
        if change is None:
            return candidate
        start, inclusive = change, True


def _offset_at(zone: ZoneInfo, instant: datetime) -> timedelta:
    offset = zone.fromutc(instant.replace(tzinfo=zone)).utcoffset()
    assert offset is not None
    return offset


def _offset_of_wall(zone: ZoneInfo, wall: datetime, *, fold: int) -> timedelta:
    offset = zone.utcoffset(wall.replace(tzinfo=zone, fold=fold))
    assert offset is not None
    return offset


def _first_offset_change(zone: ZoneInfo, start: datetime, end: datetime) -> datetime | None:
    """Earliest instant in (start, end] whose UTC offset differs from the offset at `start`."""
    base = _offset_at(zone, start)
    low = start
    while low < end:
        high = min(low + PROBE_STEP, end)
        if _offset_at(zone, high) != base:
            return _offset_change(zone, low, high)
        low = high
    return None


def _offset_change(zone: ZoneInfo, low: datetime, high: datetime) -> datetime:
    """The instant in (low, high] where the offset changes, given that it differs at the ends and
    changes once. tzdata transitions fall on whole seconds, so bisect on whole seconds."""
    base = _offset_at(zone, low)
    low, high = low.replace(microsecond=0), high.replace(microsecond=0)
    while high - low > _SECOND:
        middle = low + timedelta(seconds=int((high - low).total_seconds()) // 2)
        if _offset_at(zone, middle) == base:
            low = middle
        else:
            high = middle
    return high


# --------------------------------------------------------------------------------------------
# Recurrence presets
# --------------------------------------------------------------------------------------------


def recurrence_to_cron(recurrence: Mapping[str, Any], timezone: str) -> str:
    """The stored cron form of a recurrence preset (read in `timezone`).

    - {"type": "daily", "time": "09:00"} -> "0 9 * * *"
    - {"type": "weekly", "days": ["mon", "wed"], "time": "18:30"} -> "30 18 * * mon,wed"
      (days mon..sun, at least one, no duplicates; written in week order)
    - {"type": "monthly", "day": 15, "time": "09:00"} -> "0 9 15 * *" (day 1..31; with 29-31 the
      months without that day are skipped, as croniter reads "31": no fire in April; see
      `months_without_day`); "day": "last" -> "0 9 L * *", every month's last day
    - {"type": "once", "run_at": "2027-03-01T09:00:00+01:00"} -> "0 9 1 3 *" in Europe/Paris:
      minute, hour, day, month, any weekday of run_at converted to `timezone` (a naive run_at is a
      wall time there), and a 6th field for the seconds unless they are 0 ("0 9 1 3 * 15"). That
      fires every year: the schedule pins it to its one instant with start_at = end_at =
      `one_off_instant(run_at)`. Sub-second precision is dropped. An aware run_at falling in the
      second pass of a repeated hour is refused: the wall-time form would fire at the first.
    Errors: InvalidField(field="recurrence.<key>"), InvalidTimezone for the timezone.
    """
    zone = validate_timezone(timezone)
    if not isinstance(recurrence, Mapping):
        raise InvalidField("recurrence", "expected an object with a 'type'")
    kind = recurrence.get("type")
    allowed = _RECURRENCE_KEYS.get(kind) if isinstance(kind, str) else None
    if allowed is None:
        raise InvalidField(
            "recurrence.type", f"expected one of daily, weekly, monthly, once; got {kind!r}"
        )
    for key in recurrence:
        if key not in allowed:
            raise InvalidField(f"recurrence.{key}", f"not allowed in a {kind} recurrence")
    for key in allowed:
        if key not in recurrence:
            raise InvalidField(f"recurrence.{key}", f"required for a {kind} recurrence")
    if kind == "once":
        return _once(recurrence["run_at"], zone)
    hour, minute = _time_of_day(recurrence["time"])
    if kind == "daily":
        return f"{minute} {hour} * * *"
    if kind == "weekly":
        return f"{minute} {hour} * * {_weekdays(recurrence['days'])}"
    return f"{minute} {hour} {_day_of_month(recurrence['day'])} * *"


_RECURRENCE_KEYS: dict[str, tuple[str, ...]] = {
    "daily": ("type", "time"),
    "weekly": ("type", "days", "time"),
    "monthly": ("type", "day", "time"),
    "once": ("type", "run_at"),
}
_WEEK_ORDER = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _time_of_day(value: object) -> tuple[int, int]:
    match = _TIME_RE.match(value) if isinstance(value, str) else None
    if match is None:
        raise InvalidField("recurrence.time", f"expected HH:MM (00:00-23:59), got {value!r}")
    return int(match.group(1)), int(match.group(2))


def _weekdays(value: object) -> str:
    if not isinstance(value, list | tuple) or not value:
        raise InvalidField("recurrence.days", "expected a non-empty list of days (mon..sun)")
    days: list[str] = []
    for item in value:
        day = item.lower() if isinstance(item, str) else item
        if day not in _WEEK_ORDER:
            raise InvalidField("recurrence.days", f"unknown day {item!r}; expected mon..sun")
        if day in days:
            raise InvalidField("recurrence.days", f"day {item!r} is listed twice")
        days.append(day)
    return ",".join(sorted(days, key=_WEEK_ORDER.index))


def _day_of_month(value: object) -> str:
    if value == "last":
        return "L"
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 31:
        raise InvalidField(
            "recurrence.day", f"expected a day of the month 1..31 or 'last', got {value!r}"
        )
    return str(value)


def _fixed_day(recurrence: Mapping[str, Any] | None) -> int | None:
    """The day of a monthly recurrence on a fixed day that some months lack (29-31)."""
    if not recurrence or recurrence.get("type") != "monthly":
        return None
    day = recurrence.get("day")
    return day if isinstance(day, int) and day >= 29 else None


def months_without_day(recurrence: Mapping[str, Any] | None) -> list[int]:
    """The months (1..12) in which a monthly recurrence on day 29, 30 or 31 does not fire, in
    some years or all: day 29 -> [2] (February of common years), 30 -> [2], 31 -> [2, 4, 6, 9,
    11]. Empty for any other rule; "day": "last" fires every month."""
    day = _fixed_day(recurrence)
    if day is None:
        return []
    return [month for month in range(1, 13) if calendar.monthrange(2027, month)[1] < day]


def skipped_months(
    recurrence: Mapping[str, Any] | None, first: datetime, last: datetime
) -> list[str]:
    """The months ("YYYY-MM") from `first`'s to `last`'s (wall times) in which a monthly
    recurrence on a fixed day 29-31 does not fire because the month is too short."""
    day = _fixed_day(recurrence)
    if day is None:
        return []
    out: list[str] = []
    year, month = first.year, first.month
    while (year, month) <= (last.year, last.month):
        if calendar.monthrange(year, month)[1] < day:
            out.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


def _once(value: object, zone: ZoneInfo) -> str:
    if isinstance(value, str):
        try:
            run_at = datetime.fromisoformat(value)
        except ValueError as exc:
            raise InvalidField(
                "recurrence.run_at", f"expected an ISO 8601 date-time, got {value!r}"
            ) from exc
    elif isinstance(value, datetime):
        run_at = value
    else:
        raise InvalidField("recurrence.run_at", f"expected an ISO 8601 date-time, got {value!r}")
    if run_at.tzinfo is not None and run_at.utcoffset() is not None:
        run_at = run_at.astimezone(zone)
        if run_at.fold:
            raise InvalidField(
                "recurrence.run_at",
                f"{value!s} is the second pass of a repeated hour in {zone.key}; as a wall time "
                "it would fire at the first pass instead; pick another time",
            )
    low, high = _FIELDS[6].low, _FIELDS[6].high
    if not low <= run_at.year <= high:
        raise InvalidField("recurrence.run_at", f"year must be within {low}-{high}")
    expression = f"{run_at.minute} {run_at.hour} {run_at.day} {run_at.month} *"
    # croniter's order: the seconds come 6th.
    return f"{expression} {run_at.second}" if run_at.second else expression


def one_off_instant(run_at: datetime) -> datetime:
    """The instant a one-off recurrence at `run_at` (aware) fires: run_at to the whole second
    (cron has no finer field), in UTC."""
    if run_at.tzinfo is None or run_at.utcoffset() is None:
        raise InvalidField("recurrence.run_at", "needs a UTC offset (RFC 3339)")
    return run_at.astimezone(UTC).replace(microsecond=0)
