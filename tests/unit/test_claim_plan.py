"""The claim's plan, without a database: given the due schedules a claim locked and `now`, which
batches it fires, where each schedule moves on, and what it reports (maintflow_core.due.schedules
.plan_claim). The lock and the write are the integration tests' (both stores)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from maintflow_core.due.schedules import DueSchedule, plan_claim
from maintflow_core.queues import FIRE_BATCH

NOW = datetime(2026, 6, 1, 10, 0, 30, tzinfo=UTC)
GRACE = timedelta(seconds=60)


def at(hhmm: str, day: int = 1) -> datetime:
    hour, minute = (int(part) for part in hhmm.split(":"))
    return datetime(2026, 6, day, hour, minute, tzinfo=UTC)


def due(cron: str, next_run_at: datetime, **fields: Any) -> DueSchedule:
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "team_id": uuid.uuid4(),
        "flow_id": uuid.uuid4(),
        "target_list_id": uuid.uuid4(),
        "cron_expression": cron,
        "timezone": "UTC",
        "misfire_policy": "run_once",
        "start_at": None,
        "end_at": None,
        "next_run_at": next_run_at,
    }
    values.update(fields)
    return DueSchedule(**values)


# (case, schedule, instants fired, its next_run_at, missed)
CASES = [
    ("on time", due("0 10 * * *", at("10:00")), [at("10:00")], at("10:00", day=2), 0),
    (
        "late within the grace: fired late, whatever the policy",
        due("59 9 * * * 50", at("09:59") + timedelta(seconds=50), misfire_policy="skip"),
        [at("09:59") + timedelta(seconds=50)],
        at("09:59", day=2) + timedelta(seconds=50),
        0,
    ),
    (
        "older than the grace: skip fires nothing",
        due("59 9 * * *", at("09:59"), misfire_policy="skip"),
        [],
        at("09:59", day=2),
        1,
    ),
    (
        "every minute, one missed: run_once fires it and the on-time one",
        due("* * * * *", at("09:59")),
        [at("09:59"), at("10:00")],
        at("10:01"),
        1,
    ),
    (
        "every minute, one missed: skip fires only the on-time one",
        due("* * * * *", at("09:59"), misfire_policy="skip"),
        [at("10:00")],
        at("10:01"),
        1,
    ),
    (
        "down five hours: run_all fires every missed hour and the on-time one",
        due("0 * * * *", at("05:00"), misfire_policy="run_all"),
        [at(f"{h:02d}:00") for h in range(5, 11)],
        at("11:00"),
        1,
    ),
    (
        "down five hours: run_once fires the newest missed hour and the on-time one",
        due("0 * * * *", at("05:00")),
        [at("09:00"), at("10:00")],
        at("11:00"),
        1,
    ),
    (
        "the last instant before end_at: nothing after it",
        due("0 * * * *", at("10:00"), end_at=at("10:30")),
        [at("10:00")],
        None,
        0,
    ),
    (
        "in its own zone",
        due("0 12 * * *", at("10:00"), timezone="Europe/Paris"),
        [at("10:00")],
        at("10:00", day=2),
        0,
    ),
]


@pytest.mark.parametrize(
    ("schedule", "instants", "next_run_at", "missed"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_a_due_schedule_fires_its_instants_and_moves_on(
    schedule: DueSchedule, instants: list[datetime], next_run_at: datetime | None, missed: int
) -> None:
    plan = plan_claim([schedule], NOW, grace=GRACE, max_catchup=100)

    assert [f.batch["scheduled_for"] for f in plan.fires] == instants
    assert [(a.schedule_id, a.next_run_at) for a in plan.advances] == [(schedule.id, next_run_at)]
    assert plan.advances[0].last_run_at == (max(instants) if instants else None)
    assert plan.missed == missed
    assert plan.lag_seconds == [(NOW - i).total_seconds() for i in instants]
    assert plan.invalid == []


def test_each_fire_is_a_scheduled_batch_with_its_outbox_row() -> None:
    schedule = due("0 10 * * *", at("10:00"))
    (fire,) = plan_claim([schedule], NOW, grace=GRACE, max_catchup=100).fires
    assert fire.batch == {
        "id": fire.id,
        "team_id": schedule.team_id,
        "flow_id": schedule.flow_id,
        "schedule_id": schedule.id,
        "trigger": "schedule",
        "scheduled_for": at("10:00"),
        "target_list_id": schedule.target_list_id,
        "target_count": 0,
        "sessions_created": 0,
        "created_at": NOW,
    }  # no targets/steps: they are read when the fan-out starts
    assert fire.message == {
        "kind": FIRE_BATCH.name,
        "batch_id": fire.id,
        "payload": {"batch_id": str(fire.id)},
        "created_at": NOW,
        "attempts": 0,
    }


def test_schedules_alike_get_a_batch_each() -> None:
    storm = [due("0 10 * * *", at("10:00")) for _ in range(3)]
    plan = plan_claim(storm, NOW, grace=GRACE, max_catchup=100)
    assert [f.batch["schedule_id"] for f in plan.fires] == [s.id for s in storm]
    assert len({f.id for f in plan.fires}) == 3


def test_run_all_catches_up_at_most_max_catchup() -> None:
    schedule = due("* * * * *", at("00:00"), misfire_policy="run_all")
    plan = plan_claim([schedule], NOW, grace=GRACE, max_catchup=10)
    fired = [f.batch["scheduled_for"] for f in plan.fires]
    assert fired == [at("09:59") - timedelta(minutes=9 - i) for i in range(10)] + [at("10:00")]


def test_a_rule_that_no_longer_parses_is_parked_and_the_others_still_fire() -> None:
    broken = due("0 10 * * *", at("10:00"), timezone="Mars/Olympus_Mons")
    fine = due("0 10 * * *", at("10:00"))
    plan = plan_claim([broken, fine], NOW, grace=GRACE, max_catchup=100)
    assert [(schedule_id, bool(why)) for schedule_id, why in plan.invalid] == [(broken.id, True)]
    assert [(a.schedule_id, a.next_run_at, a.last_run_at) for a in plan.advances] == [
        (broken.id, None, None),
        (fine.id, at("10:00", day=2), at("10:00")),
    ]
    assert [f.batch["schedule_id"] for f in plan.fires] == [fine.id]
