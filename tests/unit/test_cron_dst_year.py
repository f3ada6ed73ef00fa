"""A whole year of fires, instant by instant, against the brute-force reference (no croniter).

For each zone the reference walks every UTC minute of 2026 once (all expressions in one pass,
cached per module); expressions with seconds are walked second by second around each change.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

import pytest

from maintflow_core import cron
from tests.unit.cron_reference import Tick, compile_cron, reference_fires, walk

YEAR_START = datetime(2026, 1, 1, tzinfo=UTC)
YEAR_END = datetime(2027, 1, 1, tzinfo=UTC)
ZONES = ["America/New_York", "Europe/London", "Australia/Lord_Howe", "Asia/Kathmandu"]
MINUTE_EXPRESSIONS = [
    "30 2 * * *",
    "0 1,2 * * *",
    "*/30 * * * *",
    "15 * * * *",
    "0 9 * * 1-5",
    "45 1 * * 0",
    "0 0 * * *",
    "59 1 * * *",
    "* 2 * * *",
    "*/20 1-3 * * *",
    "0 0-23/3 * * *",
    "30 * * * sat,sun",
    "0,30 0-3 1-7 * mon",
]
SECOND_EXPRESSIONS = ["0 */20 * * * 30", "* 1,2 * * * */15", "*/10 * * * * 0,30"]
MINUTE = timedelta(minutes=1)
SECOND = timedelta(seconds=1)


def _recording(ticks: Iterator[Tick], changes: list[datetime]) -> Iterator[Tick]:
    for tick in ticks:
        if tick.change:
            changes.append(tick.instant)
        yield tick


@cache
def year_reference(zone_name: str) -> tuple[dict[str, list[datetime]], tuple[datetime, ...]]:
    """Reference fires of every minute expression over 2026, and the instants the offset
    changed."""
    changes: list[datetime] = []
    ticks = _recording(walk(ZoneInfo(zone_name), YEAR_START, YEAR_END, MINUTE), changes)
    fires = reference_fires([compile_cron(e) for e in MINUTE_EXPRESSIONS], ticks)
    return dict(zip(MINUTE_EXPRESSIONS, fires, strict=True)), tuple(changes)


def windows(zone_name: str) -> list[tuple[datetime, datetime]]:
    """Twelve hours either side of each offset change (a summer day for a zone without any)."""
    _, changes = year_reference(zone_name)
    if not changes:
        return [(datetime(2026, 6, 20, tzinfo=UTC), datetime(2026, 6, 21, tzinfo=UTC))]
    return [(at - timedelta(hours=12), at + timedelta(hours=12)) for at in changes]


@cache
def seconds_reference(zone_name: str) -> dict[str, list[list[datetime]]]:
    crons = [compile_cron(e) for e in SECOND_EXPRESSIONS]
    per_window = [
        reference_fires(crons, walk(ZoneInfo(zone_name), start, end, SECOND))
        for start, end in windows(zone_name)
    ]
    return {e: [fires[i] for fires in per_window] for i, e in enumerate(SECOND_EXPRESSIONS)}


def expected_next(reference: list[datetime], after: datetime) -> datetime | None:
    index = bisect_right(reference, after)
    return reference[index] if index < len(reference) else None


def test_the_reference_sees_the_changes_each_zone_has_in_2026() -> None:
    counts = {zone: len(year_reference(zone)[1]) for zone in ZONES}
    assert counts == {
        "America/New_York": 2,
        "Europe/London": 2,
        "Australia/Lord_Howe": 2,
        "Asia/Kathmandu": 0,
    }


@pytest.mark.parametrize("expression", MINUTE_EXPRESSIONS)
@pytest.mark.parametrize("zone", ZONES)
def test_a_year_of_fires_matches_the_reference(zone: str, expression: str) -> None:
    reference = year_reference(zone)[0][expression]
    assert reference, "the expression must fire in the year"
    spec = cron.parse(expression, zone)
    got = cron.fire_times(spec, YEAR_START - SECOND, len(reference) + 1)
    assert got[:-1] == reference
    assert got[-1] > YEAR_END


@pytest.mark.parametrize("expression", MINUTE_EXPRESSIONS)
@pytest.mark.parametrize("zone", ZONES)
def test_next_fire_from_any_instant_near_a_change_matches_the_reference(
    zone: str, expression: str
) -> None:
    # Starting points every 7 min 13 s for 3 hours either side of each change, so `after`
    # falls in both passes of a repeated hour, just before a jump, on and off whole minutes.
    reference = year_reference(zone)[0][expression]
    spec = cron.parse(expression, zone)
    centres = year_reference(zone)[1] or (datetime(2026, 6, 20, tzinfo=UTC),)
    for centre in centres:
        after = centre - timedelta(hours=3)
        while after < centre + timedelta(hours=3):
            assert cron.next_fire(spec, after) == expected_next(reference, after), after
            after += timedelta(minutes=7, seconds=13)


@pytest.mark.parametrize("expression", SECOND_EXPRESSIONS)
@pytest.mark.parametrize("zone", ZONES)
def test_expressions_with_seconds_match_the_reference_around_each_change(
    zone: str, expression: str
) -> None:
    spec = cron.parse(expression, zone)
    for (start, end), reference in zip(
        windows(zone), seconds_reference(zone)[expression], strict=True
    ):
        assert reference, "the expression must fire in the window"
        assert cron.fires_between(spec, start - SECOND, end, 1_000_000) == reference
        after = start + timedelta(seconds=7)
        while (expected := expected_next(reference, after)) is not None:
            assert cron.next_fire(spec, after) == expected, after
            after += timedelta(minutes=11, seconds=17)
