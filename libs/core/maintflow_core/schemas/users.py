from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Annotated

from pydantic import ConfigDict, StringConstraints

from maintflow_core.schemas.common import Request, Response


class Role(StrEnum):
    """`viewer` reads; `engineer` also writes the team's data; `admin` also manages users."""

    viewer = "viewer"
    engineer = "engineer"
    admin = "admin"


Email = Annotated[
    str,
    StringConstraints(min_length=3, max_length=320, pattern=r"^[^@\s\x00]+@[^@\s\x00]+$"),
]


class UserCreate(Request):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"email": "dana@example.com", "role": "engineer"}]}
    )

    email: Email
    role: Role


class UserOut(Response):
    id: uuid.UUID
    email: str
    role: Role
    team_id: uuid.UUID


class UserCreated(UserOut):
    token: str
