"""Sessions: one target's run through a flow, with a snapshot of the flow's steps."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from maintflow_core.db.base import Base, JSONType, UTCDateTime
from maintflow_core.models._common import created_at, team_fk, uuid_pk

STATUSES = ("pending", "in_progress", "completed", "failed", "cancelled")


class Session(Base):
    __tablename__ = "sessions"
    __table_args__ = (
        # Every target of a batch gets exactly one session, however often it is delivered.
        sa.UniqueConstraint("batch_id", "target_label"),
        sa.CheckConstraint(
            "status IN ('pending', 'in_progress', 'completed', 'failed', 'cancelled')",
            name="status",
        ),
        sa.Index("ix_sessions_team_created", "team_id", "created_at", "id"),
        sa.Index("ix_sessions_flow", "flow_id"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    team_id: Mapped[uuid.UUID] = team_fk()
    batch_id: Mapped[uuid.UUID] = mapped_column(
        sa.Uuid, sa.ForeignKey("batches.id", ondelete="CASCADE"), nullable=False
    )
    flow_id: Mapped[uuid.UUID] = mapped_column(
        sa.Uuid, sa.ForeignKey("flows.id", ondelete="CASCADE"), nullable=False
    )
    target_label: Mapped[str] = mapped_column(sa.String(255), nullable=False)
    target_notes: Mapped[str | None] = mapped_column(sa.Text)
    status: Mapped[str] = mapped_column(sa.String(16), nullable=False)
    steps: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, nullable=False)
    current_step_id: Mapped[str | None] = mapped_column(sa.String(200))
    notes: Mapped[str | None] = mapped_column(sa.Text)
    intake: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
