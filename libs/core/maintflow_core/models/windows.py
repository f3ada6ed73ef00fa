"""Maintenance windows (a span of time with affected targets, moved through its statuses by the
scheduler leader at its start and end) and their update history."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from maintflow_core.db.base import Base, JSONType, UTCDateTime
from maintflow_core.models._common import created_at, team_fk, uuid_pk


class WindowStatus(StrEnum):
    """`scheduled → in_progress → completed` (the scheduler at `start_at` and `end_at`, or a
    user), and `scheduled | in_progress → cancelled`; `completed` and `cancelled` are final."""

    scheduled = "scheduled"
    in_progress = "in_progress"
    completed = "completed"
    cancelled = "cancelled"


class MaintenanceWindow(Base):
    __tablename__ = "maintenance_windows"
    __table_args__ = (
        sa.CheckConstraint(
            "status IN ('scheduled', 'in_progress', 'completed', 'cancelled')", name="status"
        ),
        sa.CheckConstraint("end_at > start_at", name="span"),
        # The next instant the leader must act on, kept with the status it belongs to.
        sa.CheckConstraint(
            "(status = 'scheduled' AND next_transition_at = start_at)"
            " OR (status = 'in_progress' AND next_transition_at = end_at)"
            " OR (status IN ('completed', 'cancelled') AND next_transition_at IS NULL)",
            name="next_transition",
        ),
        # The tick's claim reads only this index: its cost follows the windows due, not the
        # windows that exist.
        sa.Index(
            "ix_maintenance_windows_due",
            "next_transition_at",
            postgresql_where=sa.text("next_transition_at IS NOT NULL"),
            sqlite_where=sa.text("next_transition_at IS NOT NULL"),
        ),
        sa.Index("ix_maintenance_windows_team_start", "team_id", "start_at"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    team_id: Mapped[uuid.UUID] = team_fk()
    title: Mapped[str] = mapped_column(sa.String(200), nullable=False)
    description: Mapped[str | None] = mapped_column(sa.Text)
    start_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    end_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    # Labels of the affected targets.
    targets: Mapped[list[Any]] = mapped_column(JSONType, nullable=False)
    status: Mapped[str] = mapped_column(sa.String(16), nullable=False)
    next_transition_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Entries in the update history; each takes the next number under this row's lock.
    updates_count: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    created_by: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class WindowUpdate(Base):
    """One entry of a window's history: a message, and the status change it made, if any."""

    __tablename__ = "maintenance_window_updates"
    __table_args__ = (
        sa.UniqueConstraint("window_id", "seq"),
        # The scheduler's transitions happen once per window and status, whoever claims them.
        sa.Index(
            "uq_maintenance_window_updates_automatic",
            "window_id",
            "new_status",
            unique=True,
            postgresql_where=sa.text("automatic"),
            sqlite_where=sa.text("automatic"),
        ),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    window_id: Mapped[uuid.UUID] = mapped_column(
        sa.Uuid, sa.ForeignKey("maintenance_windows.id", ondelete="CASCADE"), nullable=False
    )
    team_id: Mapped[uuid.UUID] = team_fk()
    seq: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    # The user who wrote it (kept if the user is deleted); None for the scheduler's own.
    author_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)
    automatic: Mapped[bool] = mapped_column(sa.Boolean, nullable=False)
    message: Mapped[str] = mapped_column(sa.Text, nullable=False)
    old_status: Mapped[str | None] = mapped_column(sa.String(16))
    new_status: Mapped[str | None] = mapped_column(sa.String(16))
    created_at: Mapped[datetime] = created_at()
