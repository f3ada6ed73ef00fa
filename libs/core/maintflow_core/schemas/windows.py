from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from maintflow_core.schemas.common import (
    AwareInstant,
    Description,
    Label,
    Name,
    Request,
    Response,
    Text,
)

WindowStatus = Literal["scheduled", "in_progress", "completed", "cancelled"]
Targets = Annotated[list[Label], Field(max_length=10_000)]
Message = Annotated[Text, StringConstraints(min_length=1, max_length=10_000)]


class WindowCreate(Request):
    title: Name
    description: Description | None = None
    start_at: AwareInstant
    end_at: AwareInstant = Field(description="After start_at.")
    targets: Targets = Field(default_factory=list, description="Labels of the affected targets.")


class WindowUpdateRequest(Request):
    """PATCH: the times of a window that has not started (end_at also while in progress)."""

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
