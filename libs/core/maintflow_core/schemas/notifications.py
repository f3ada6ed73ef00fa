from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import Field

from maintflow_core.schemas.common import Response
from maintflow_core.usecases.events import Event


class NotificationOut(Response):
    id: uuid.UUID
    team_id: uuid.UUID
    event: Event
    title: str
    message: str
    batch_id: uuid.UUID | None
    data: dict[str, Any] | None = Field(description="The event's details (free-form JSON).")
    created_at: datetime
    read_at: datetime | None


class MarkedRead(Response):
    marked: int
