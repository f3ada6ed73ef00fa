from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import ConfigDict, Field, StringConstraints

from maintflow_core.models.windows import WindowStatus
from maintflow_core.schemas.common import (
    AwareInstant,
    Description,
    Label,
    Name,
    Request,
    Response,
    Text,
)

Targets = Annotated[list[Label], Field(max_length=10_000)]
Message = Annotated[Text, StringConstraints(min_length=1, max_length=10_000)]


class WindowCreate(Request):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "title": "Core switch firmware upgrade",
                    "description": "Expect up to 10 minutes of packet loss per site.",
                    "start_at": "2026-06-06T22:00:00+02:00",
                    "end_at": "2026-06-07T02:00:00+02:00",
                    "targets": ["sw-core-01", "sw-core-02"],
                }
            ]
        }
    )

    title: Name
    description: Description | None = None
    start_at: AwareInstant
    end_at: AwareInstant = Field(description="After start_at.")
    targets: Targets = Field(default_factory=list, description="Labels of the affected targets.")


class WindowUpdateRequest(Request):
    """PATCH: the times of a window that has not started (end_at also while in progress)."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"end_at": "2026-06-07T03:00:00+02:00"}]}
    )

    title: Name | None = None
    description: Description | None = None
    start_at: AwareInstant | None = None
    end_at: AwareInstant | None = None
    targets: Targets | None = None


class WindowOut(Response):
    id: uuid.UUID
    team_id: uuid.UUID
    title: str
    description: str | None
    start_at: datetime
    end_at: datetime
    targets: list[str]
    status: WindowStatus
    next_transition_at: datetime | None
    created_by: uuid.UUID | None
    created_at: datetime
    updated_at: datetime


class WindowPost(Request):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"message": "Second switch done, checking uplinks."},
                {
                    "message": "Rolled back: the new firmware drops LACP.",
                    "status_change": "cancelled",
                },
            ]
        }
    )

    message: Message
    status_change: WindowStatus | None = Field(
        None, description="Move the window to this status with the entry (illegal moves: 409)."
    )


class WindowUpdateOut(Response):
    id: uuid.UUID
    window_id: uuid.UUID
    seq: int
    author_id: uuid.UUID | None = Field(description="None: written by the scheduler.")
    automatic: bool
    message: str
    old_status: WindowStatus | None
    new_status: WindowStatus | None
    created_at: datetime
