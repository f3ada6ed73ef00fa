from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Protocol, TypeVar

from pydantic import ConfigDict, Field, field_validator

from maintflow_core.schemas.common import Description, Label, Name, Notes, Request, Response

MAX_TARGETS = 10_000


class Target(Request):
    label: Label
    notes: Notes | None = None


Targets = Annotated[list[Target], Field(min_length=1, max_length=MAX_TARGETS)]


class Labelled(Protocol):
    label: str


L = TypeVar("L", bound=Labelled)


def check_unique_labels(targets: list[L] | None) -> list[L] | None:
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


class TargetListReplace(TargetListCreate):
    """PUT: the whole list. `name` is required in JSON; a text/csv body, which carries only
    targets, keeps the list's name unless `?name=` gives one."""

    name: Name | None = Field(  # type: ignore[assignment]
        None, description="Required in a JSON body; a text/csv body keeps the name without it."
    )


class TargetNotes(Request):
    label: Label
    notes: Notes | None


class TargetListEdit(Request):
    """PATCH: remove, then update, then add; in one transaction, all or nothing."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "add": [{"label": "web-03", "notes": "new in rack 5"}],
                    "remove": ["web-01"],
                    "update": [{"label": "web-02", "notes": "moved to rack 6"}],
                }
            ]
        }
    )

    add: Annotated[list[Target], Field(max_length=MAX_TARGETS)] | None = Field(
        None, description="New targets; a label already in the list: 409 naming it."
    )
    remove: Annotated[list[Label], Field(max_length=MAX_TARGETS)] | None = Field(
        None, description="Labels to remove; one not in the list: 422 naming it."
    )
    update: Annotated[list[TargetNotes], Field(max_length=MAX_TARGETS)] | None = Field(
        None, description="New notes for these labels; one not in the list: 422 naming it."
    )

    _add_unique = field_validator("add")(check_unique_labels)
    _update_unique = field_validator("update")(check_unique_labels)

    @field_validator("remove")
    @classmethod
    def _remove_unique(cls, labels: list[str] | None) -> list[str] | None:
        if labels is not None and len(set(labels)) != len(labels):
            twice = next(label for label in labels if labels.count(label) > 1)
            raise ValueError(f"labels must be unique: {twice!r} appears twice")
        return labels


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
