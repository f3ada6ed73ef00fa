from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, StringConstraints, model_validator

from maintflow_core.schemas.common import (
    AwareInstant,
    Request,
    Response,
    Text,
    UtcInstant,
    one_of,
)


class MisfirePolicy(StrEnum):
    """Fires missed while nothing ran: `skip` them, `run_once` (one batch for the newest missed
    instant) or `run_all` (one per missed instant, the newest MAINTFLOW_MAX_CATCHUP_FIRES)."""

    skip = "skip"
    run_once = "run_once"
    run_all = "run_all"


Time = Annotated[str, StringConstraints(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]


class Weekday(StrEnum):
    mon = "mon"
    tue = "tue"
    wed = "wed"
    thu = "thu"
    fri = "fri"
    sat = "sat"
    sun = "sun"


class OnceRecurrence(Request):
    type: Literal["once"]
    run_at: AwareInstant = Field(description="RFC 3339 with an offset; fires once, then never.")


class DailyRecurrence(Request):
    type: Literal["daily"]
    time: Time


class WeeklyRecurrence(Request):
    type: Literal["weekly"]
    days: Annotated[list[Weekday], Field(min_length=1, max_length=7)]
    time: Time


class MonthlyRecurrence(Request):
    type: Literal["monthly"]
    day: Annotated[int, Field(ge=1, le=31)] | Literal["last"] = Field(
        description="1..31, or `last`: every month's last day. A fixed day 29-31 does not fire "
        "in months without it (the schedule's `skipped_months` names them)."
    )
    time: Time


Recurrence = Annotated[
    OnceRecurrence | DailyRecurrence | WeeklyRecurrence | MonthlyRecurrence,
    Field(discriminator="type"),
]
CronText = Annotated[str, StringConstraints(min_length=1, max_length=200)]
TimezoneName = Annotated[str, StringConstraints(min_length=1, max_length=64)]
RULES = ("cron_expression", "recurrence")


class ScheduleCreate(Request):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "flow_id": "3f1c2a9e-5b7d-4c1e-9a2b-6d8e0f1a2b3c",
                    "recurrence": {"type": "monthly", "day": "last", "time": "02:30"},
                    "timezone": "Europe/Berlin",
                    "target_list_id": "8a4b6c2d-1e3f-4a5b-8c7d-9e0f1a2b3c4d",
                }
            ]
        }
    )

    flow_id: uuid.UUID
    cron_expression: CronText | None = None
    recurrence: Recurrence | None = None
    timezone: TimezoneName = "UTC"
    target_list_id: uuid.UUID | None = None
    misfire_policy: MisfirePolicy = MisfirePolicy.run_once
    start_at: UtcInstant | None = None
    end_at: UtcInstant | None = None

    @model_validator(mode="after")
    def _one_rule(self) -> ScheduleCreate:
        one_of(self, RULES, "give exactly one of cron_expression or recurrence", required=True)
        return self


class ScheduleUpdate(Request):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"cron_expression": "30 2 * * 6", "timezone": "America/New_York"}]
        }
    )

    cron_expression: CronText | None = None
    recurrence: Recurrence | None = None
    timezone: TimezoneName | None = None
    target_list_id: uuid.UUID | None = None
    misfire_policy: MisfirePolicy | None = None
    start_at: UtcInstant | None = None
    end_at: UtcInstant | None = None
    is_active: bool | None = Field(
        None,
        description="false stops every fire (as pause without a reason); true resumes (as "
        "resume: next_run_at from now, missed instants as the misfire_policy says).",
    )

    @model_validator(mode="after")
    def _one_rule(self) -> ScheduleUpdate:
        one_of(self, RULES, "give at most one of cron_expression or recurrence", required=False)
        return self


class PauseRequest(Request):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"reason": "change freeze until the migration is over"}]}
    )

    reason: Annotated[Text, StringConstraints(max_length=1000)] | None = None


class ScheduleOut(Response):
    id: uuid.UUID
    team_id: uuid.UUID
    flow_id: uuid.UUID
    target_list_id: uuid.UUID | None
    cron_expression: str
    recurrence: Recurrence | None
    skipped_months: list[int] = Field(
        description="Months (1-12) in which a monthly recurrence on day 29, 30 or 31 does not "
        "fire, in some years (29: February of common years) or all; empty otherwise."
    )
    timezone: str
    misfire_policy: MisfirePolicy
    start_at: datetime | None
    end_at: datetime | None
    is_active: bool
    paused_reason: str | None
    paused_at: datetime | None
    next_run_at: datetime | None
    next_run_at_local: datetime | None
    last_run_at: datetime | None
    created_at: datetime
    updated_at: datetime


class FireTime(Response):
    utc: datetime
    local: datetime


class Preview(Response):
    fire_times: list[FireTime]
    skipped_months: list[str] = Field(
        description="Months (`YYYY-MM`, the schedule's zone) up to the last fire time listed in "
        "which a monthly recurrence on day 29-31 does not fire: the month has no such day."
    )


class RunNowAccepted(Response):
    batch_id: uuid.UUID


class ScheduleStats(Response):
    total: int
    active: int
    paused: int
    finished: int
    batches: dict[str, int]
