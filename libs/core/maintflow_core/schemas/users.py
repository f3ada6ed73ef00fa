from __future__ import annotations

import uuid
from typing import Annotated, Literal

from pydantic import StringConstraints

from maintflow_core.schemas.common import Request, Response

Role = Literal["viewer", "engineer", "admin"]
Email = Annotated[
    str,
    StringConstraints(min_length=3, max_length=320, pattern=r"^[^@\s\x00]+@[^@\s\x00]+$"),
]


class UserCreate(Request):
    email: Email
    role: Role


class UserOut(Response):
    id: uuid.UUID
    email: str
    role: Role
    team_id: uuid.UUID


class UserCreated(UserOut):
    token: str
