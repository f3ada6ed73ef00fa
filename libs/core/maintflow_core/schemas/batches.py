from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import ConfigDict, Field, field_validator, model_validator

from maintflow_core.schemas.common import Request, Response, Text, one_of
from maintflow_core.schemas.flows import StepOut
from maintflow_core.schemas.targets import MAX_TARGETS, Target, check_unique_labels


class SessionStatus(StrEnum):
    """`pending → in_progress → completed | failed`, and `pending | in_progress → cancelled`."""

    pending = "pending"
    in_progress = "in_progress"
    completed = "completed"
    failed = "failed"
    cancelled = "cancelled"


class Trigger(StrEnum):
    """What made a batch: a launch by hand, a schedule's fire, or a schedule's run-now."""

    manual = "manual"
    schedule = "schedule"
    run_now = "run_now"


class BatchLaunch(Request):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "flow_id": "3f1c2a9e-5b7d-4c1e-9a2b-6d8e0f1a2b3c",
                    "targets": [{"label": "web-01"}, {"label": "web-02"}],
                }
            ]
        }
    )

    flow_id: uuid.UUID
    targets: list[Target] | None = Field(None, max_length=MAX_TARGETS)
    target_list_id: uuid.UUID | None = None
    from_batch_id: uuid.UUID | None = None
    intake: dict[str, Any] | None = None

    @field_validator("targets")
    @classmethod
    def _targets(cls, targets: list[Target] | None) -> list[Target] | None:
        if targets is not None and not targets:
            raise ValueError("must hold at least one target")
        return check_unique_labels(targets)

    @model_validator(mode="after")
    def _one_source(self) -> BatchLaunch:
        one_of(
            self,
            ("targets", "target_list_id", "from_batch_id"),
            "give exactly one target source: targets, target_list_id or from_batch_id",
            required=True,
        )
        return self


class SessionBrief(Response):
    id: uuid.UUID
    batch_id: uuid.UUID
    target_label: str
    flow_id: uuid.UUID
    status: SessionStatus


class BatchLaunched(Response):
    batch_id: uuid.UUID
    count: int
    sessions: list[SessionBrief]


class SessionOut(Response):
    id: uuid.UUID
    team_id: uuid.UUID
    batch_id: uuid.UUID
    flow_id: uuid.UUID
    target_label: str
    target_notes: str | None
    status: SessionStatus
    steps: list[StepOut]
    current_step_id: str | None
    notes: str | None
    intake: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class SessionUpdate(Request):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"status": "in_progress", "current_step_id": "patch"}]}
    )

    status: SessionStatus | None = None
    current_step_id: str | None = Field(None, min_length=1, max_length=200)
    notes: Text | None = Field(None, max_length=20_000)


class StatusCounts(Response):
    pending: int = 0
    in_progress: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0


class BatchOut(Response):
    batch_id: uuid.UUID
    flow_id: uuid.UUID
    schedule_id: uuid.UUID | None
    trigger: Trigger
    scheduled_for: datetime | None
    created_at: datetime
    target_count: int
    sessions_created: int
    ready_at: datetime | None
    status_counts: StatusCounts
    progress: str


class BatchDetail(BatchOut):
    sessions: list[SessionBrief]
