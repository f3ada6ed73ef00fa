"""Saved target lists: the servers a batch or a schedule works on."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from maintflow_core.db.base import Base, JSONType, UTCDateTime
from maintflow_core.models._common import created_at, team_fk, uuid_pk


class TargetList(Base):
    __tablename__ = "target_lists"
    __table_args__ = (
        sa.UniqueConstraint("team_id", "name"),
        sa.Index("ix_target_lists_team_created", "team_id", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    team_id: Mapped[uuid.UUID] = team_fk()
    name: Mapped[str] = mapped_column(sa.String(200), nullable=False)
    description: Mapped[str | None] = mapped_column(sa.Text)
    targets: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, nullable=False)
    target_count: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
