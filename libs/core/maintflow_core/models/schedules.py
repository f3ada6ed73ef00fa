"""Maintenance schedules (cron + IANA timezone, one per flow) and the scheduler's leader lease."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from maintflow_core.db.base import Base, JSONType, UTCDateTime
from maintflow_core.models._common import created_at, team_fk, uuid_pk

MISFIRE_POLICIES = ("skip", "run_once", "run_all")


class MaintenanceSchedule(Base):
    __tablename__ = "maintenance_schedules"
    __table_args__ = (
        sa.UniqueConstraint("flow_id"),
        sa.CheckConstraint(
            "misfire_policy IN ('skip', 'run_once', 'run_all')", name="misfire_policy"
        ),
        # Only maintenance flows are scheduled, and a scheduled flow cannot change its type:
        # the key includes the flow's type, which this table pins to 'maintenance'.
        sa.CheckConstraint("flow_type = 'maintenance'", name="flow_type"),
        sa.ForeignKeyConstraint(
            ["flow_id", "flow_type"], ["flows.id", "flows.flow_type"], ondelete="CASCADE"
        ),
        # The tick's claim query reads only this index: its cost follows the number of due
        # schedules, not the number that exist.
        sa.Index(
            "ix_maintenance_schedules_due",
            "next_run_at",
            postgresql_where=sa.text("is_active AND next_run_at IS NOT NULL"),
            sqlite_where=sa.text("is_active AND next_run_at IS NOT NULL"),
        ),
        sa.Index("ix_maintenance_schedules_team_created", "team_id", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    team_id: Mapped[uuid.UUID] = team_fk()
    flow_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, nullable=False)
    flow_type: Mapped[str] = mapped_column(
        sa.String(32), nullable=False, default="maintenance", server_default="maintenance"
    )
    # A list in use cannot be deleted (detach it first). NO ACTION, not RESTRICT: SQLite checks
    # RESTRICT at each row, so deleting a team (which cascades to its lists and its schedules)
    # could fail depending on which cascade runs first; NO ACTION is checked once all have run.
    target_list_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.Uuid, sa.ForeignKey("target_lists.id"), index=True
    )
    cron_expression: Mapped[str] = mapped_column(sa.String(200), nullable=False)
    recurrence: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    timezone: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    misfire_policy: Mapped[str] = mapped_column(sa.String(16), nullable=False)
    start_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    end_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    is_active: Mapped[bool] = mapped_column(sa.Boolean, nullable=False)
    paused_reason: Mapped[str | None] = mapped_column(sa.Text)
    paused_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    next_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class SchedulerLease(Base):
    """One row per leadership (name "scheduler"). `epoch` grows on every change of holder and
    fences a stale leader: its claim transaction checks the epoch it was granted."""

    __tablename__ = "scheduler_leases"

    name: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(sa.String(200), nullable=False)
    epoch: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)
    acquired_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    last_tick_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
