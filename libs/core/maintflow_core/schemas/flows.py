from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import ConfigDict, Field, StringConstraints, field_validator

from maintflow_core.schemas.common import Description, Name, Request, Response, Text


class FlowType(StrEnum):
    """What a flow is for; only maintenance flows run as batches and have schedules."""

    troubleshooting = "troubleshooting"
    procedural = "procedural"
    maintenance = "maintenance"


class StepType(StrEnum):
    procedure_step = "procedure_step"
    procedure_end = "procedure_end"


StepId = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00]+$")]


class Step(Request):
    id: StepId
    type: StepType
    title: Annotated[str, StringConstraints(min_length=1, max_length=500)]
    description: Annotated[Text, StringConstraints(max_length=20_000)] | None = None
    content_type: Annotated[str, StringConstraints(max_length=100)] | None = None


Steps = Annotated[list[Step], Field(min_length=1, max_length=500)]


def _unique_step_ids(steps: list[Step] | None) -> list[Step] | None:
    if steps is None:
        return None
    seen: set[str] = set()
    for step in steps:
        if step.id in seen:
            raise ValueError(f"step ids must be unique: {step.id!r} appears twice")
        seen.add(step.id)
    return steps


class FlowCreate(Request):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "Patch Windows servers",
                    "flow_type": "maintenance",
                    "steps": [
                        {"id": "snapshot", "type": "procedure_step", "title": "Take a snapshot"},
                        {"id": "patch", "type": "procedure_step", "title": "Install updates"},
                        {"id": "done", "type": "procedure_end", "title": "Done"},
                    ],
                }
            ]
        }
    )

    name: Name
    description: Description | None = None
    flow_type: FlowType
    steps: Steps
    intake_form: dict[str, Any] | None = None

    _steps_unique = field_validator("steps")(_unique_step_ids)


class FlowUpdate(Request):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"name": "Patch Windows servers (monthly)"}]}
    )

    name: Name | None = None
    description: Description | None = None
    flow_type: FlowType | None = None
    steps: Steps | None = None
    intake_form: dict[str, Any] | None = None

    _steps_unique = field_validator("steps")(_unique_step_ids)


class StepOut(Response):
    """A step as stored: the fields given when the flow was written (unset ones null)."""

    id: str
    type: StepType
    title: str
    description: str | None = None
    content_type: str | None = None


class FlowOut(Response):
    id: uuid.UUID
    team_id: uuid.UUID
    name: str
    description: str | None
    flow_type: FlowType
    steps: list[StepOut]
    intake_form: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime


class FlowCounts(Response):
    total: int
    troubleshooting: int
    procedural: int
    maintenance: int
