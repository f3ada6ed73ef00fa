from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, model_validator

from maintflow_core.schemas.common import (
    AwareInstant,
    Request,
    Response,
    Text,
    UtcInstant,
    one_of,
)

MisfirePolicy = Literal["skip", "run_once", "run_all"]
Time = Annotated[str, StringConstraints(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class OnceRecurrence(Request):
    type: Literal["once"]
    run_at: AwareInstant = Field(description="RFC 3339 with an offset; fires once, then never.")


class DailyRecurrence(Request):
    type: Literal["daily"]
    time: Time


class WeeklyRecurrence(Request):
    type: Literal["weekly"]
    days: Annotated[list[Day], Field(min_length=1, max_length=7)]
    time: Time


class MonthlyRecurrence(Request):
    type: Literal["monthly"]
    day: Annotated[int, Field(ge=1, le=31)]
    time: Time


Recurrence = Annotated[
    OnceRecurrence | DailyRecurrence | WeeklyRecurrence | MonthlyRecurrence,
    Field(discriminator="type"),
]
CronText = Annotated[str, StringConstraints(min_length=1, max_length=200)]
TimezoneName = Annotated[str, StringConstraints(min_length=1, max_length=64)]
RULES = ("cron_expression", "recurrence")


class ScheduleCreate(Request):
    flow_id: uuid.UUID
    cron_expression: CronText | None = None
    recurrence: Recurrence | None = None
    timezone: TimezoneName = "UTC"
    target_list_id: uuid.UUID | None = None
    misfire_policy: MisfirePolicy = "run_once"
    start_at: UtcInstant | None = None
    end_at: UtcInstant | None = None

    @model_validator(mode="after")
    def _one_rule(self) -> ScheduleCreate:
        one_of(self, RULES, "give exactly one of cron_expression or recurrence", required=True)
        return self


class ScheduleUpdate(Request):
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
    reason: Annotated[Text, StringConstraints(max_length=1000)] | None = None


class ScheduleOut(Response):
    id: uuid.UUID
    team_id: uuid.UUID
    flow_id: uuid.UUID
    target_list_id: uuid.UUID | None
    cron_expression: str
    recurrence: dict[str, Any] | None
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


class RunNowAccepted(Response):
    batch_id: uuid.UUID


class ScheduleStats(Response):
    total: int
    active: int
    paused: int
    finished: int
    batches: dict[str, int]
