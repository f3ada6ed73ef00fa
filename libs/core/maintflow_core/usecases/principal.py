"""Who is calling: the authenticated user, their team and role."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from maintflow_core.errors import PermissionDenied

_RANK = {"viewer": 0, "engineer": 1, "admin": 2}


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: uuid.UUID
    team_id: uuid.UUID
    role: str

    def require(self, role: str) -> None:
        if _RANK[self.role] < _RANK[role]:
            raise PermissionDenied(f"this action needs the {role} role; you are {self.role}")
