from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from maintflow_core.schemas.common import Response


class NotificationOut(Response):
    id: uuid.UUID
    team_id: uuid.UUID
    event: str
    title: str
    message: str
    batch_id: uuid.UUID | None
    data: dict[str, Any] | None
    created_at: datetime
    read_at: datetime | None


class MarkedRead(Response):
    marked: int
