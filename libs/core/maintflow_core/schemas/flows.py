from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, field_validator

from maintflow_core.schemas.common import Description, Name, Request, Response, Text

FlowType = Literal["troubleshooting", "procedural", "maintenance"]
StepId = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00]+$")]


class Step(Request):
    id: StepId
    type: Literal["procedure_step", "procedure_end"]
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
    name: Name
    description: Description | None = None
    flow_type: FlowType
    steps: Steps
    intake_form: dict[str, Any] | None = None

    _steps_unique = field_validator("steps")(_unique_step_ids)


class FlowUpdate(Request):
    name: Name | None = None
    description: Description | None = None
    flow_type: FlowType | None = None
    steps: Steps | None = None
    intake_form: dict[str, Any] | None = None

    _steps_unique = field_validator("steps")(_unique_step_ids)


class FlowOut(Response):
    id: uuid.UUID
    team_id: uuid.UUID
    name: str
    description: str | None
    flow_type: FlowType
    steps: list[dict[str, Any]]
    intake_form: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime


class FlowCounts(Response):
    total: int
    troubleshooting: int
    procedural: int
    maintenance: int
