from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import ConfigDict, Field, field_validator

from maintflow_core.schemas.common import Description, Label, Name, Notes, Request, Response

MAX_TARGETS = 10_000


class Target(Request):
    label: Label
    notes: Notes | None = None


Targets = Annotated[list[Target], Field(min_length=1, max_length=MAX_TARGETS)]


def check_unique_labels(targets: list[Target] | None) -> list[Target] | None:
    if targets is None:
        return None
    seen: set[str] = set()
    for target in targets:
        if target.label in seen:
            raise ValueError(f"target labels must be unique: {target.label!r} appears twice")
        seen.add(target.label)
    return targets


class TargetListCreate(Request):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "Web servers",
                    "targets": [{"label": "web-01", "notes": "rack 4"}, {"label": "web-02"}],
                }
            ]
        }
    )

    name: Name
    description: Description | None = None
    targets: Targets

    _labels_unique = field_validator("targets")(check_unique_labels)


class TargetListOut(Response):
    id: uuid.UUID
    team_id: uuid.UUID
    name: str
    description: str | None
    targets: list[Target]
    target_count: int
    created_at: datetime
    updated_at: datetime
    last_used_at: datetime | None
