"""maintflow_core.cron: validation, syntax, DST rule by example, presets and the search helpers."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter

from maintflow_core import cron
from maintflow_core.errors import InvalidCron, InvalidField, InvalidTimezone
from tests.kit.zones import SCHEDULE_ZONES

NY = "America/New_York"


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def wall(
    zone: str, year: int, month: int, day: int, hour: int = 0, minute: int = 0, *, fold: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(zone), fold=fold)


def naive(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second)  # noqa: DTZ001 - a wall time


def between(expr: str, zone: str, start: datetime, end: datetime) -> list[datetime]:
    return cron.fires_between(cron.parse(expr, zone), start, end, 10_000)


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("", "cron expression is empty"),
        ("   ", "cron expression is empty"),
        ("* * *", "expected 5 or 6 fields, got 3"),
        ("* * * * * * * *", "expected 5 or 6 fields, got 8"),
        ("61 * * * *", "minute field: value 61 out of range 0-59"),
        ("0 24 * * *", "hour field: value 24 out of range 0-23"),
        ("0 0 0 * *", "day-of-month field: value 0 out of range 1-31"),
        ("0 0 * 13 *", "month field: value 13 out of range 1-12"),
        ("0 0 * * 8", "day-of-week field: value 8 out of range 0-7"),
        ("0 0 * * * 60", "second field: value 60 out of range 0-59"),
        ("0 0 1 1 * 0 1969", "year field: value 1969 out of range 1970-2099"),
        ("0-61 * * * *", "minute field: value 61 out of range 0-59"),
        ("0 0 30 2 *", "never fires: no date matches within 5 years"),
        ("0 0 31 4 *", "never fires: no date matches within 5 years"),
        ("0 0 31 2,4,6 *", "never fires: no date matches within 5 years"),
        ("0 0 29 2 * 0 2027", "never fires: no date matches within 5 years"),
        ("0 0 29 2 mon#5", "never fires: no date matches within 5 years"),
        ("@reboot", "@reboot is not supported"),
        ("@every_5m", "unknown macro '@every_5m'"),
        ("H * * * *", "minute field: hashed/random values ('H', 'R') are not supported"),
        ("0 H(0-5) * * *", "hour field: hashed/random values"),
        ("R 0 * * *", "minute field: hashed/random values"),
        ("*/0 * * * *", "minute field: step must be at least 1, got 0"),
        ("1,,2 * * * *", "minute field: empty list item"),
        ("foo * * * *", "minute field: unknown value 'foo'"),
        ("0 9 * * funday", "day-of-week field: unknown value 'funday'"),
        ("0 9 * jan-foo *", "month field: unknown value 'foo'"),
        ("-5 * * * *", "minute field: cannot read '-5'"),
        ("*-5 * * * *", "minute field: cannot read '*-5'"),
        ("0 ? * * *", "hour field: '?' is only allowed in the day fields"),
        ("0 9 1W,15 * *", "day-of-month field: 'W' only works with a single day"),
        ("0 9 32W * *", "day-of-month field: value 32 out of range 1-31"),
        ("0 9 * * 1#6", "day-of-week field: '#6' out of range #1-#5"),
        ("0 9 * * L8", "day-of-week field: value 8 out of range 0-7"),
        ("0 9 * * L", "day-of-week field: unknown value 'l'"),
        ("0 9 * * 1#2,3", "invalid cron expression: day-of-week field does not support mixing"),
        ("0 0 1 1 * " + "0," * 100 + "1", "longer than 200 characters"),
    ],
)
def test_invalid_expression_is_rejected_with_a_message_naming_the_problem(
    expression: str, message: str
) -> None:
    with pytest.raises(InvalidCron) as caught:
        cron.parse(expression, "UTC")
    assert message in caught.value.message
    assert caught.value.field == "cron_expression"


def test_non_string_expression_is_rejected() -> None:
    with pytest.raises(InvalidCron, match="must be a string"):
        cron.parse(5, "UTC")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("Mars/Olympus", "unknown IANA timezone 'Mars/Olympus'"),
        ("", "timezone is empty"),
        ("  ", "timezone is empty"),
        ("../../etc/passwd", "unknown IANA timezone '../../etc/passwd'"),
        ("america/new_york", "unknown IANA timezone 'america/new_york'"),
        ("+01:00", "unknown IANA timezone '+01:00'"),
    ],
)
def test_unknown_or_empty_timezone_is_rejected(name: str, message: str) -> None:
    with pytest.raises(InvalidTimezone) as caught:
        cron.validate_timezone(name)
    assert caught.value.message == message
    assert caught.value.field == "timezone"
    with pytest.raises(InvalidTimezone):
        cron.parse("0 9 * * *", name)


def test_every_available_timezone_and_utc_are_accepted() -> None:
    # Except "localtime", the host's own zone (refused: see the test at the end of this file).
    for name in [*SCHEDULE_ZONES, "UTC"]:
        zone = cron.validate_timezone(name)
        assert zone.key == name
    assert cron.parse("0 9 * * *").timezone == "UTC"


# ---------------------------------------------------------------------------------------------
# Syntax
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("@hourly", "0 * * * *"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@weekly", "0 0 * * 0"),
        ("@monthly", "0 0 1 * *"),
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
        ("@DAILY", "0 0 * * *"),
        ("  */5\t*  * *   *  ", "*/5 * * * *"),
        ("0 9 * JAN-MAR Mon", "0 9 * JAN-MAR Mon"),
        ("5-5 * * * *", "5 * * * *"),
        ("0 9 * * mon-mon", "0 9 * * mon"),
        ("0 9 * * 7-7", "0 9 * * 7"),
        ("0 9 * * 0-7", "0 9 * * 0-7"),
        ("10-10/5,20 * * * *", "10,20 * * * *"),
    ],
)
def test_expression_is_stored_in_normalised_form(given: str, stored: str) -> None:
    assert cron.parse(given, "UTC").expression == stored


def test_croniter_reads_an_equal_range_as_the_whole_field_so_we_rewrite_it() -> None:
    # The croniter behaviour the `a-a` -> `a` rewrite works around: "5-5" fires every minute.
    raw = croniter("5-5 * * * *", naive(2026, 1, 1), ret_type=datetime)
    assert raw.get_next(datetime) == naive(2026, 1, 1, 0, 1)
    spec = cron.parse("5-5 * * * *", "UTC")
    assert cron.fire_times(spec, utc(2026, 1, 1), 2) == [
        utc(2026, 1, 1, 0, 5),
        utc(2026, 1, 1, 1, 5),
    ]


def test_croniter_with_a_naive_datetime_does_plain_wall_clock_arithmetic() -> None:
    # The premise of the implementation: naive in, naive out, no zone and no DST involved.
    it = croniter("30 2 * * *", naive(2026, 3, 7, 12), ret_type=datetime)
    assert it.get_next(datetime) == naive(2026, 3, 8, 2, 30)  # does not exist in New York
    it = croniter("*/30 * * * *", naive(2026, 11, 1, 0, 45), ret_type=datetime)
    assert [it.get_next(datetime) for _ in range(3)] == [
        naive(2026, 11, 1, 1, 0),
        naive(2026, 11, 1, 1, 30),
        naive(2026, 11, 1, 2, 0),
    ]


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("0 9 L * *", [utc(2026, 1, 31, 9), utc(2026, 2, 28, 9), utc(2026, 3, 31, 9)]),
        ("0 9 15W * *", [utc(2026, 1, 15, 9), utc(2026, 2, 16, 9), utc(2026, 3, 16, 9)]),
        ("0 9 * * 1#2", [utc(2026, 1, 12, 9), utc(2026, 2, 9, 9), utc(2026, 3, 9, 9)]),
        ("0 9 * * mon#2", [utc(2026, 1, 12, 9), utc(2026, 2, 9, 9), utc(2026, 3, 9, 9)]),
        ("0 9 * * L5", [utc(2026, 1, 30, 9), utc(2026, 2, 27, 9), utc(2026, 3, 27, 9)]),
        ("0 9 1 * mon", [utc(2026, 1, 1, 9), utc(2026, 1, 5, 9), utc(2026, 1, 12, 9)]),
        ("0 9 * feb,mar sun", [utc(2026, 2, 1, 9), utc(2026, 2, 8, 9), utc(2026, 2, 15, 9)]),
        ("0 9 * * 0", [utc(2026, 1, 4, 9), utc(2026, 1, 11, 9), utc(2026, 1, 18, 9)]),
        ("0 9 * * 7", [utc(2026, 1, 4, 9), utc(2026, 1, 11, 9), utc(2026, 1, 18, 9)]),
        ("0 9 * * sun", [utc(2026, 1, 4, 9), utc(2026, 1, 11, 9), utc(2026, 1, 18, 9)]),
        ("0 0 29 2 *", [utc(2028, 2, 29), utc(2032, 2, 29), utc(2036, 2, 29)]),
        ("0 9 31 * *", [utc(2026, 1, 31, 9), utc(2026, 3, 31, 9), utc(2026, 5, 31, 9)]),
        (
            "* * * * * */5",
            [utc(2026, 1, 1, 0, 0, 5), utc(2026, 1, 1, 0, 0, 10), utc(2026, 1, 1, 0, 0, 15)],
        ),
        (
            "0 9 * * * 30",
            [utc(2026, 1, 1, 9, 0, 30), utc(2026, 1, 2, 9, 0, 30), utc(2026, 1, 3, 9, 0, 30)],
        ),
        ("@monthly", [utc(2026, 2, 1), utc(2026, 3, 1), utc(2026, 4, 1)]),
    ],
)
def test_expression_fires_at_expected_instants(expression: str, expected: list[datetime]) -> None:
    spec = cron.parse(expression, "UTC")
    assert cron.fire_times(spec, utc(2026, 1, 1), 3) == expected


def test_week_day_w_moves_to_the_nearest_weekday_within_the_month() -> None:
    # 2026-08-15 is a Saturday -> Friday 14th; 2026-11-01 is a Sunday -> Monday 2nd.
    assert between("0 9 15W 8 *", "UTC", utc(2026, 1, 1), utc(2027, 1, 1)) == [utc(2026, 8, 14, 9)]
    assert between("0 9 1W 11 *", "UTC", utc(2026, 1, 1), utc(2027, 1, 1)) == [utc(2026, 11, 2, 9)]


def test_flags_describe_seconds_and_hour_field() -> None:
    assert cron.parse("*/15 * * * *").fixed_hour is False
    assert cron.parse("0 9,17 * * 1-5").fixed_hour is True
    assert cron.parse("0 0-23/2 * * *").fixed_hour is True
    assert cron.parse("* * * * * */5").has_seconds is True
    assert cron.parse("* * * * *").has_seconds is False


def test_one_off_seven_field_expression_fires_once_then_never() -> None:
    spec = cron.parse("0 9 1 3 * 0 2027", "Europe/Paris")
    assert spec.has_seconds and spec.fixed_hour
    first = cron.next_fire(spec, utc(2026, 6, 1))
    assert first == utc(2027, 3, 1, 8)
    assert cron.next_fire(spec, first) is None
    assert cron.fire_times(spec, utc(2020, 1, 1), 5) == [utc(2027, 3, 1, 8)]
    assert cron.min_interval_seconds(spec, utc(2026, 1, 1)) == float("inf")


def test_one_off_in_the_past_parses_but_never_fires_again() -> None:
    spec = cron.parse("0 9 1 3 * 0 2020", "UTC")
    assert cron.next_fire(spec, utc(2026, 1, 1)) is None


def test_next_fire_accepts_any_timezone_and_returns_utc() -> None:
    spec = cron.parse("0 9 * * *", NY)
    tokyo = timezone(timedelta(hours=9))
    result = cron.next_fire(spec, datetime(2026, 1, 1, 20, 0, tzinfo=tokyo))  # 06:00 EST
    assert result == utc(2026, 1, 1, 14)
    assert result is not None and result.tzinfo is UTC


def test_after_must_be_aware() -> None:
    spec = cron.parse("0 9 * * *", NY)
    with pytest.raises(ValueError, match="after must be timezone-aware"):
        cron.next_fire(spec, naive(2026, 1, 1))
    with pytest.raises(ValueError, match="instant must be timezone-aware"):
        cron.to_local(spec, naive(2026, 1, 1))


def test_next_fire_is_strictly_after_even_within_the_same_second() -> None:
    spec = cron.parse("* * * * * *", "UTC")
    assert cron.next_fire(spec, utc(2026, 1, 1)) == utc(2026, 1, 1, 0, 0, 1)
    halfway = utc(2026, 1, 1) + timedelta(microseconds=500_000)
    assert cron.next_fire(spec, halfway) == utc(2026, 1, 1, 0, 0, 1)
    minute = cron.parse("* * * * *", "UTC")
    assert cron.next_fire(minute, utc(2026, 1, 1, 0, 0, 59)) == utc(2026, 1, 1, 0, 1)


def test_to_local_shows_the_instant_in_the_schedule_zone() -> None:
    spec = cron.parse("30 2 * * *", NY)
    local = cron.to_local(spec, utc(2026, 3, 8, 7))
    assert local == utc(2026, 3, 8, 7)
    assert (local.hour, local.minute, local.utcoffset()) == (3, 0, timedelta(hours=-4))


# ---------------------------------------------------------------------------------------------
# DST rule, by example
# ---------------------------------------------------------------------------------------------


def test_skipped_wall_time_fires_once_after_the_gap() -> None:
    # New York 2026-03-08: 02:00 EST -> 03:00 EDT at 07:00Z; 02:30 does not exist.
    fires = between("30 2 * * *", NY, utc(2026, 3, 7, 12), utc(2026, 3, 9, 12))
    assert fires == [utc(2026, 3, 8, 7), utc(2026, 3, 9, 6, 30)]
    assert cron.to_local(cron.parse("30 2 * * *", NY), fires[0]) == wall(NY, 2026, 3, 8, 3)


def test_several_skipped_wall_times_collapse_into_one_fire() -> None:
    assert between("0,30 2 * * *", NY, utc(2026, 3, 8), utc(2026, 3, 8, 12)) == [utc(2026, 3, 8, 7)]
    assert between("* 2 * * *", NY, utc(2026, 3, 8), utc(2026, 3, 8, 12)) == [utc(2026, 3, 8, 7)]
    # 02:00 is skipped and 03:00 exists: both would fire at 03:00 EDT; one fire.
    assert between("0 2,3 * * *", NY, utc(2026, 3, 8), utc(2026, 3, 8, 12)) == [utc(2026, 3, 8, 7)]


def test_repeated_wall_time_fires_once_at_its_first_occurrence() -> None:
    # New York 2026-11-01: 02:00 EDT -> 01:00 EST at 06:00Z; 01:30 happens at 05:30Z and 06:30Z.
    fires = between("30 1 * * *", NY, utc(2026, 10, 31, 12), utc(2026, 11, 2, 0))
    assert fires == [utc(2026, 11, 1, 5, 30)]
    assert between("* 1 * * *", NY, utc(2026, 11, 1), utc(2026, 11, 1, 12))[-1] == utc(
        2026, 11, 1, 5, 59
    )


def test_fixed_hour_after_the_second_pass_resumes_after_the_repeated_hour() -> None:
    second_pass = wall(NY, 2026, 11, 1, 1, 10, fold=1)  # 06:10Z
    assert cron.next_fire(cron.parse("30 1 * * *", NY), second_pass) == utc(2026, 11, 2, 6, 30)
    assert cron.next_fire(cron.parse("0 2 * * *", NY), second_pass) == utc(2026, 11, 1, 7)
    assert cron.next_fire(cron.parse("* 1 * * *", NY), second_pass) == utc(2026, 11, 2, 6)
    assert cron.next_fire(cron.parse("* 1,2 * * * */20", NY), second_pass) == utc(2026, 11, 1, 7)


def test_fixed_hour_in_the_second_pass_jumps_to_the_end_of_the_repeat(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Every second of 01:xx: stepping through the repeated hour's matches would take 3600
    # croniter calls; the fold jump needs one.
    calls = []
    real = cron._next_wall

    def counting(spec: cron.CronSpec, start: datetime, *, inclusive: bool) -> datetime | None:
        calls.append(start)
        return real(spec, start, inclusive=inclusive)

    monkeypatch.setattr(cron, "_next_wall", counting)
    spec = cron.parse("* 1 * * * *", NY)
    after = wall(NY, 2026, 11, 1, 1, 0, fold=1).replace(second=5)  # 06:00:05Z
    assert cron.next_fire(spec, after) == utc(2026, 11, 2, 6)
    assert len(calls) == 1


def test_wildcard_hour_fires_in_both_passes_and_not_in_the_gap() -> None:
    spec = cron.parse("*/30 * * * *", NY)
    fall = cron.fires_between(spec, utc(2026, 11, 1, 4), utc(2026, 11, 1, 8), 100)
    in_repeated_hour = [t for t in fall if cron.to_local(spec, t).hour == 1]
    assert in_repeated_hour == [
        utc(2026, 11, 1, 5),
        utc(2026, 11, 1, 5, 30),
        utc(2026, 11, 1, 6),
        utc(2026, 11, 1, 6, 30),
    ]
    spring_day = cron.fires_between(
        spec, utc(2026, 3, 8, 5) - timedelta(seconds=1), utc(2026, 3, 9, 3, 59), 100
    )
    assert len(spring_day) == 46  # 23 hours
    assert all(cron.to_local(spec, t).hour != 2 for t in spring_day)
    fall_day = cron.fires_between(
        spec, utc(2026, 11, 1, 4) - timedelta(seconds=1), utc(2026, 11, 2, 4, 59), 100
    )
    assert len(fall_day) == 50  # 25 hours


def test_wildcard_hour_skips_the_missing_half_hour() -> None:
    fires = between("30 * * * *", NY, utc(2026, 3, 8, 5), utc(2026, 3, 8, 9))
    assert fires == [
        utc(2026, 3, 8, 5, 30),
        utc(2026, 3, 8, 6, 30),
        utc(2026, 3, 8, 7, 30),
        utc(2026, 3, 8, 8, 30),
    ]
    local = [cron.to_local(cron.parse("30 * * * *", NY), t).hour for t in fires]
    assert local == [0, 1, 3, 4]


def test_wildcard_hour_after_the_first_pass_fires_in_the_second_pass() -> None:
    spec = cron.parse("30 * * * *", NY)
    first_pass = wall(NY, 2026, 11, 1, 1, 40)  # 05:40Z, EDT
    assert cron.next_fire(spec, first_pass) == utc(2026, 11, 1, 6, 30)  # 01:30 EST


def test_london_follows_the_same_rule() -> None:
    london = "Europe/London"
    # 2026-03-29 01:00 GMT -> 02:00 BST at 01:00Z; 2026-10-25 02:00 BST -> 01:00 GMT at 01:00Z.
    assert between("30 1 * * *", london, utc(2026, 3, 28, 12), utc(2026, 3, 29, 12)) == [
        utc(2026, 3, 29, 1)
    ]
    assert between("30 1 * * *", london, utc(2026, 10, 24, 12), utc(2026, 10, 25, 12)) == [
        utc(2026, 10, 25, 0, 30)
    ]
    assert between("*/30 1 * * *", london, utc(2026, 10, 24, 12), utc(2026, 10, 25, 12)) == [
        utc(2026, 10, 25, 0),
        utc(2026, 10, 25, 0, 30),
    ]
    assert between("*/30 * * * *", london, utc(2026, 10, 25, 0), utc(2026, 10, 25, 1, 30)) == [
        utc(2026, 10, 25, 0, 30),
        utc(2026, 10, 25, 1),
        utc(2026, 10, 25, 1, 30),
    ]


def test_lord_howe_half_hour_shift() -> None:
    lh = "Australia/Lord_Howe"
    # 2026-10-04 02:00 (+10:30) -> 02:30 (+11) at 15:30Z on 10-03: 02:00 and 02:15 are skipped.
    assert between("*/15 2 * * *", lh, utc(2026, 10, 3, 12), utc(2026, 10, 3, 18)) == [
        utc(2026, 10, 3, 15, 30),
        utc(2026, 10, 3, 15, 45),
    ]
    assert between("15 * * * *", lh, utc(2026, 10, 3, 14), utc(2026, 10, 3, 17)) == [
        utc(2026, 10, 3, 14, 45),
        utc(2026, 10, 3, 16, 15),
    ]
    # 2026-04-05 02:00 (+11) -> 01:30 (+10:30) at 15:00Z on 04-04: 01:30-01:59 happen twice.
    assert between("45 1 * * *", lh, utc(2026, 4, 4, 12), utc(2026, 4, 4, 18)) == [
        utc(2026, 4, 4, 14, 45)
    ]
    assert between("*/15 * * * *", lh, utc(2026, 4, 4, 14, 20), utc(2026, 4, 4, 15, 40)) == [
        utc(2026, 4, 4, 14, 30),
        utc(2026, 4, 4, 14, 45),
        utc(2026, 4, 4, 15),
        utc(2026, 4, 4, 15, 15),
        utc(2026, 4, 4, 15, 30),
    ]


def test_kathmandu_quarter_hour_offset_without_dst() -> None:
    assert between("0 9 * * *", "Asia/Kathmandu", utc(2026, 1, 1), utc(2026, 1, 3)) == [
        utc(2026, 1, 1, 3, 15),
        utc(2026, 1, 2, 3, 15),
    ]
    assert between("*/30 * * * *", "Asia/Kathmandu", utc(2026, 6, 1), utc(2026, 6, 1, 1)) == [
        utc(2026, 6, 1, 0, 15),
        utc(2026, 6, 1, 0, 45),
    ]


def test_midnight_skipped_by_a_midnight_transition_fires_at_one() -> None:
    santiago = "America/Santiago"
    # 2026-09-06 00:00 (-04) -> 01:00 (-03) at 04:00Z: midnight does not exist that night.
    fires = between("0 0 * * *", santiago, utc(2026, 9, 4, 12), utc(2026, 9, 7, 12))
    assert fires == [utc(2026, 9, 5, 4), utc(2026, 9, 6, 4), utc(2026, 9, 7, 3)]
    assert cron.to_local(cron.parse("0 0 * * *", santiago), fires[1]) == wall(
        santiago, 2026, 9, 6, 1
    )
    # The day of week of a skipped midnight is the new day's: Sunday fires at 01:00 Sunday.
    assert between("0 0 * * sun", santiago, utc(2026, 9, 1), utc(2026, 9, 10)) == [
        utc(2026, 9, 6, 4)
    ]
    # 2026-04-05 00:00 (-03) -> 04-04 23:00 (-04) at 03:00Z: 23:30 on the 4th happens twice.
    assert between("30 23 * * *", santiago, utc(2026, 4, 4, 12), utc(2026, 4, 5, 12)) == [
        utc(2026, 4, 5, 2, 30)
    ]
    assert between("30 * * * *", santiago, utc(2026, 4, 5, 2), utc(2026, 4, 5, 4)) == [
        utc(2026, 4, 5, 2, 30),
        utc(2026, 4, 5, 3, 30),
    ]


def test_probe_step_is_shorter_than_any_gap_between_offset_changes() -> None:
    # _first_offset_change probes every PROBE_STEP; two offset changes inside one step that
    # cancel out would go unseen. Check the premise against the installed tzdata (explicit
    # transitions; the POSIX rule after them changes the offset twice a year, months apart).
    # The pure-Python zoneinfo exposes the transition list this needs.
    pure_zoneinfo = importlib.import_module("zoneinfo._zoneinfo")
    shortest = timedelta.max
    for name in SCHEDULE_ZONES:
        zone = ZoneInfo(name)
        changes = []
        for second in pure_zoneinfo.ZoneInfo.no_cache(name)._trans_utc:
            at = datetime.fromtimestamp(second, UTC)
            if at.year < 1900:
                continue
            before = (at - timedelta(seconds=1)).astimezone(zone).utcoffset()
            if at.astimezone(zone).utcoffset() != before:
                changes.append(at)
        for earlier, later in pairwise(changes):
            shortest = min(shortest, later - earlier)
    assert shortest > cron.PROBE_STEP, shortest


# ---------------------------------------------------------------------------------------------
# Search helpers
# ---------------------------------------------------------------------------------------------


def test_fires_between_is_start_exclusive_end_inclusive_and_keeps_the_earliest() -> None:
    spec = cron.parse("0 * * * *", "UTC")
    assert cron.fires_between(spec, utc(2026, 1, 1, 0), utc(2026, 1, 1, 3), 10) == [
        utc(2026, 1, 1, 1),
        utc(2026, 1, 1, 2),
        utc(2026, 1, 1, 3),
    ]
    assert cron.fires_between(spec, utc(2026, 1, 1, 0), utc(2026, 1, 1, 3), 2) == [
        utc(2026, 1, 1, 1),
        utc(2026, 1, 1, 2),
    ]
    assert cron.fires_between(spec, utc(2026, 1, 1, 0), utc(2026, 1, 1, 3), 0) == []
    assert cron.fires_between(spec, utc(2026, 1, 1, 3), utc(2026, 1, 1, 0), 10) == []


def test_fire_times_returns_the_next_count_ascending() -> None:
    spec = cron.parse("*/20 * * * *", "UTC")
    assert cron.fire_times(spec, utc(2026, 1, 1, 0, 10), 4) == [
        utc(2026, 1, 1, 0, 20),
        utc(2026, 1, 1, 0, 40),
        utc(2026, 1, 1, 1),
        utc(2026, 1, 1, 1, 20),
    ]
    assert cron.fire_times(spec, utc(2026, 1, 1), 0) == []


@pytest.mark.parametrize(
    ("expression", "zone", "expected"),
    [
        ("* * * * * *", "UTC", 1.0),
        ("*/5 * * * *", "UTC", 300.0),
        ("0 9,17 * * *", "UTC", 8 * 3600.0),
        ("0 9 * * *", NY, 23 * 3600.0),  # the spring-forward day is 23 hours long
        ("0 0 1 1 *", "UTC", 365 * 86400.0),
    ],
)
def test_min_interval_seconds(expression: str, zone: str, expected: float) -> None:
    after = utc(2026, 3, 1) if expression != "0 0 1 1 *" else utc(2025, 12, 1)
    sample = 200 if expression != "0 0 1 1 *" else 3
    assert cron.min_interval_seconds(cron.parse(expression, zone), after, sample) == expected


def count_croniter_steps(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the croniter steps (the unit of cost) cron.py takes; speed itself lives in bench/."""
    calls = [0]
    real = cron._next_wall

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(cron, "_next_wall", counting)
    return calls


def test_newest_fires_on_a_huge_range_never_walks_it(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = cron.parse("* * * * * *", "UTC")  # 2.6 million fires in 30 days
    steps = count_croniter_steps(monkeypatch)
    newest = cron.newest_fires(spec, utc(2026, 1, 31), utc(2026, 1, 1), 5)
    assert newest == [
        utc(2026, 1, 30, 23, 59, 56),
        utc(2026, 1, 30, 23, 59, 57),
        utc(2026, 1, 30, 23, 59, 58),
        utc(2026, 1, 30, 23, 59, 59),
        utc(2026, 1, 31),
    ]
    assert steps[0] < 200, steps


def test_newest_fires_bisects_when_doubling_overshoots(monkeypatch: pytest.MonkeyPatch) -> None:
    # Every second of 09:xx only: looking back from 12:00 the window holds nothing for hours,
    # then a doubling swallows ~3000 fires at once and the width has to be bisected.
    spec = cron.parse("* 9 * * * *", "UTC")
    steps = count_croniter_steps(monkeypatch)
    newest = cron.newest_fires(spec, utc(2026, 1, 2, 12), utc(2025, 12, 1), 3)
    assert steps[0] < 500, steps
    assert newest == [
        utc(2026, 1, 2, 9, 59, 57),
        utc(2026, 1, 2, 9, 59, 58),
        utc(2026, 1, 2, 9, 59, 59),
    ]


@pytest.mark.parametrize(
    ("expression", "zone", "start", "end", "count"),
    [
        ("0 9 * * 1-5", "UTC", utc(2026, 1, 1), utc(2026, 1, 31), 3),
        ("0 9 * * 1-5", "UTC", utc(2026, 1, 1), utc(2026, 1, 31), 100),
        ("*/30 * * * *", NY, utc(2026, 11, 1, 4), utc(2026, 11, 1, 7, 30), 5),
        ("30 2 * * *", NY, utc(2026, 3, 1), utc(2026, 3, 10), 4),
        ("* 1 * * * */10", NY, utc(2026, 10, 31), utc(2026, 11, 2), 7),
        ("0 0 1 1 *", "UTC", utc(2026, 1, 1), utc(2030, 1, 1), 2),
        ("0 0 1 1 *", "UTC", utc(2026, 6, 1), utc(2026, 7, 1), 2),
    ],
)
def test_newest_fires_equals_the_tail_of_a_full_enumeration(
    expression: str, zone: str, start: datetime, end: datetime, count: int
) -> None:
    spec = cron.parse(expression, zone)
    everything = cron.fires_between(spec, start, end, 1_000_000)
    assert cron.newest_fires(spec, end, start, count) == everything[-count:]


def test_newest_fires_bounds_are_exclusive_then_inclusive() -> None:
    spec = cron.parse("0 * * * *", "UTC")
    assert cron.newest_fires(spec, utc(2026, 1, 1, 3), utc(2026, 1, 1, 1), 10) == [
        utc(2026, 1, 1, 2),
        utc(2026, 1, 1, 3),
    ]
    assert cron.newest_fires(spec, utc(2026, 1, 1, 3), utc(2026, 1, 1, 1), 0) == []
    assert cron.newest_fires(spec, utc(2026, 1, 1, 1), utc(2026, 1, 1, 3), 5) == []


def test_next_fire_takes_one_croniter_step_away_from_dst_changes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    steps = count_croniter_steps(monkeypatch)
    for expression in ("* * * * *", "0 9 * * 1-5", "30 2 * * *"):
        steps[0] = 0
        cron.next_fire(cron.parse(expression, NY), utc(2026, 3, 4, 12, 0, 30))
        assert steps[0] == 1, expression


# ---------------------------------------------------------------------------------------------
# Recurrence presets
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("recurrence", "zone", "expected"),
    [
        ({"type": "daily", "time": "09:00"}, "UTC", "0 9 * * *"),
        ({"type": "daily", "time": "23:59"}, "UTC", "59 23 * * *"),
        ({"type": "weekly", "days": ["mon", "wed"], "time": "18:30"}, "UTC", "30 18 * * mon,wed"),
        ({"type": "weekly", "days": ["sun", "Mon"], "time": "00:05"}, "UTC", "5 0 * * mon,sun"),
        ({"type": "monthly", "day": 15, "time": "09:00"}, "UTC", "0 9 15 * *"),
        ({"type": "monthly", "day": 31, "time": "09:00"}, "UTC", "0 9 31 * *"),
        # A one-off is its wall time in the schedule's zone, in the 5 or 6 fields the API
        # accepts (seconds only when not 0); the schedule pins it to one instant (start_at =
        # end_at = one_off_instant(run_at)), the expression alone fires every year.
        ({"type": "once", "run_at": "2027-03-01T09:00:00+01:00"}, "Europe/Paris", "0 9 1 3 *"),
        ({"type": "once", "run_at": "2027-03-01T08:00:00Z"}, "Europe/Paris", "0 9 1 3 *"),
        ({"type": "once", "run_at": "2027-03-01T09:00:15"}, NY, "0 9 1 3 * 15"),
        ({"type": "once", "run_at": utc(2027, 7, 1, 12, 30, 5)}, NY, "30 8 1 7 * 5"),
        ({"type": "once", "run_at": naive(2027, 7, 1, 12, 30, 5)}, NY, "30 12 1 7 * 5"),
        ({"type": "once", "run_at": "2027-07-01T12:30:05.900000+00:00"}, "UTC", "30 12 1 7 * 5"),
    ],
)
def test_recurrence_preset_becomes_a_cron_expression(
    recurrence: Mapping[str, Any], zone: str, expected: str
) -> None:
    expression = cron.recurrence_to_cron(recurrence, zone)
    assert expression == expected
    assert cron.parse(expression, zone).expression == expected


def test_once_preset_fires_at_run_at_its_pinned_instant() -> None:
    run_at = "2027-03-01T09:00:00+01:00"
    spec = cron.parse(cron.recurrence_to_cron({"type": "once", "run_at": run_at}, NY), NY)
    instant = cron.one_off_instant(datetime.fromisoformat(run_at))
    assert instant == utc(2027, 3, 1, 8)
    # The expression fires at run_at's wall time every year; at the pinned instant it fires.
    assert cron.next_fire(spec, instant - timedelta(seconds=1)) == instant
    assert cron.fire_times(spec, utc(2026, 1, 1), 2) == [utc(2026, 3, 1, 8), instant]


def test_a_one_off_instant_is_whole_seconds_in_utc_and_needs_an_offset() -> None:
    aware = datetime.fromisoformat("2027-07-01T14:30:05.900000+02:00")
    assert cron.one_off_instant(aware) == utc(2027, 7, 1, 12, 30, 5)
    with pytest.raises(InvalidField) as caught:
        cron.one_off_instant(naive(2027, 7, 1, 12, 30, 5))
    assert caught.value.field == "recurrence.run_at"


def test_monthly_preset_on_the_31st_skips_shorter_months() -> None:
    spec = cron.parse(
        cron.recurrence_to_cron({"type": "monthly", "day": 31, "time": "09:00"}, "UTC")
    )
    assert [t.month for t in cron.fire_times(spec, utc(2026, 1, 1), 7)] == [1, 3, 5, 7, 8, 10, 12]


@pytest.mark.parametrize(
    ("recurrence", "field", "message"),
    [
        ({}, "recurrence.type", "expected one of daily, weekly, monthly, once"),
        ({"type": "hourly"}, "recurrence.type", "got 'hourly'"),
        ({"type": "daily"}, "recurrence.time", "required for a daily recurrence"),
        ({"type": "daily", "time": "25:00"}, "recurrence.time", "expected HH:MM"),
        ({"type": "daily", "time": "9:00"}, "recurrence.time", "expected HH:MM"),
        ({"type": "daily", "time": "09:60"}, "recurrence.time", "expected HH:MM"),
        ({"type": "daily", "time": 900}, "recurrence.time", "expected HH:MM"),
        ({"type": "daily", "time": "09:00", "day": 3}, "recurrence.day", "not allowed"),
        ({"type": "weekly", "days": [], "time": "09:00"}, "recurrence.days", "non-empty list"),
        ({"type": "weekly", "days": "mon", "time": "09:00"}, "recurrence.days", "non-empty list"),
        (
            {"type": "weekly", "days": ["mon", "mon"], "time": "09:00"},
            "recurrence.days",
            "listed twice",
        ),
        (
            {"type": "weekly", "days": ["funday"], "time": "09:00"},
            "recurrence.days",
            "unknown day 'funday'",
        ),
        ({"type": "weekly", "days": [1], "time": "09:00"}, "recurrence.days", "unknown day 1"),
        ({"type": "weekly", "days": ["mon"], "time": "9"}, "recurrence.time", "expected HH:MM"),
        ({"type": "monthly", "day": 0, "time": "09:00"}, "recurrence.day", "1..31"),
        ({"type": "monthly", "day": 32, "time": "09:00"}, "recurrence.day", "1..31"),
        ({"type": "monthly", "day": True, "time": "09:00"}, "recurrence.day", "1..31"),
        ({"type": "monthly", "day": "15", "time": "09:00"}, "recurrence.day", "1..31"),
        ({"type": "once"}, "recurrence.run_at", "required"),
        ({"type": "once", "run_at": "tomorrow"}, "recurrence.run_at", "ISO 8601"),
        ({"type": "once", "run_at": 12345}, "recurrence.run_at", "ISO 8601"),
        ({"type": "once", "run_at": "2100-01-01T00:00:00"}, "recurrence.run_at", "1970-2099"),
        (
            {"type": "once", "run_at": "2026-11-01T01:30:00-05:00"},
            "recurrence.run_at",
            "second pass of a repeated hour",
        ),
    ],
)
def test_invalid_recurrence_names_the_field(
    recurrence: Mapping[str, Any], field: str, message: str
) -> None:
    with pytest.raises(InvalidField) as caught:
        cron.recurrence_to_cron(recurrence, NY)
    assert caught.value.field == field
    assert message in caught.value.message


def test_recurrence_with_unknown_timezone_is_rejected() -> None:
    with pytest.raises(InvalidTimezone):
        cron.recurrence_to_cron({"type": "daily", "time": "09:00"}, "Mars/Olympus")


def test_recurrence_must_be_a_mapping() -> None:
    with pytest.raises(InvalidField) as caught:
        cron.recurrence_to_cron(["daily"], "UTC")  # type: ignore[arg-type]
    assert caught.value.field == "recurrence"


def test_once_preset_in_the_first_pass_or_a_gap_is_accepted() -> None:
    run_at = "2026-11-01T01:30:00-04:00"
    first_pass = cron.recurrence_to_cron({"type": "once", "run_at": run_at}, NY)
    spec = cron.parse(first_pass, NY)
    assert cron.next_fire(spec, utc(2026, 1, 1)) == utc(2026, 11, 1, 5, 30)
    in_gap = cron.recurrence_to_cron({"type": "once", "run_at": "2026-03-08T02:30:00"}, NY)
    assert cron.next_fire(cron.parse(in_gap, NY), utc(2026, 1, 1)) == utc(2026, 3, 8, 7)


def test_the_hosts_localtime_is_not_a_schedule_timezone() -> None:
    with pytest.raises(InvalidTimezone):
        cron.validate_timezone("localtime")
