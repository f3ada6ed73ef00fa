from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, ConfigDict, Field, StringConstraints

from maintflow_core.models.webhooks import DeliveryStatus
from maintflow_core.schemas.common import Description, Request, Response
from maintflow_core.usecases.events import Event


def _distinct(events: list[Event]) -> list[Event]:
    return list(dict.fromkeys(events))


Url = Annotated[str, StringConstraints(min_length=1, max_length=2048)]


class WebhookCreate(Request):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "url": "https://hooks.example.com/maintflow",
                    "events": ["batch.completed", "session.failed"],
                    "description": "On-call channel",
                }
            ]
        }
    )

    url: Url = Field(description="http(s) URL of the receiver.")
    events: Annotated[list[Event], Field(min_length=1), AfterValidator(_distinct)] = Field(
        description="Events to deliver (`ping` is sent by the test route whatever this says)."
    )
    description: Description | None = None


class WebhookOut(Response):
    id: uuid.UUID
    team_id: uuid.UUID
    url: str
    events: list[Event]
    description: str | None
    created_at: datetime
    enabled: bool
    disabled_at: datetime | None
    disabled_reason: str | None


class WebhookCreated(WebhookOut):
    secret: str = Field(
        description="The signing secret (`whsec_` + base64), shown only in this answer."
    )


class AttemptOut(Response):
    number: int
    started_at: datetime
    duration_ms: float
    status_code: int | None
    error: str | None


class DeliveryOut(Response):
    id: uuid.UUID
    webhook_id: uuid.UUID
    message_id: str = Field(description="The `webhook-id` header of every attempt.")
    event: Event
    status: DeliveryStatus
    attempts: int
    status_code: int | None = Field(description="The last attempt's HTTP status, if any.")
    error: str | None = Field(description="The last attempt's error, if any.")
    duration_ms: float | None = Field(description="How long the last attempt took.")
    next_retry_at: datetime | None = Field(description="When the next attempt is due.")
    created_at: datetime
    finished_at: datetime | None
    attempt_log: list[AttemptOut] = Field(description="Every attempt, oldest first.")


class PingSent(Response):
    delivery_id: uuid.UUID
    message_id: str
