from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import ConfigDict, Field

from maintflow_core.models.system_jobs import SystemJobRunStatus, SystemJobTrigger
from maintflow_core.schemas.common import Request, Response
from maintflow_core.schemas.schedules import CronText, TimezoneName


class SystemJobOut(Response):
    id: uuid.UUID
    key: str
    job_type: str
    schedule_cron: str | None
    timezone: str
    enabled: bool
    visible_in_ui: bool
    next_run_at: datetime | None
    last_run_at: datetime | None


class SystemJobUpdate(Request):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"schedule_cron": "30 3 * * *", "timezone": "Europe/Berlin"},
                {"enabled": False},
            ]
        }
    )

    enabled: bool | None = None
    schedule_cron: CronText | None = None
    timezone: TimezoneName | None = None


class RunAccepted(Response):
    run_id: uuid.UUID


class SystemJobRunOut(Response):
    id: uuid.UUID
    job_key: str
    status: SystemJobRunStatus
    trigger: SystemJobTrigger
    scheduled_for: datetime | None
    message: str | None
    result: dict[str, Any] | None = Field(description="The job's totals (free-form JSON).")
    started_at: datetime
    finished_at: datetime | None
    duration_s: float | None
