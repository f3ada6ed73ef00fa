"""System jobs: the deployment's own housekeeping (not a team's), fired by the scheduler leader
from their cron or started by hand, and their runs."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from maintflow_core.db.base import Base, JSONType, UTCDateTime
from maintflow_core.models._common import created_at, uuid_pk


class SystemJobRunStatus(StrEnum):
    """`running` until it ends in `success` or `failed`."""

    running = "running"
    success = "success"
    failed = "failed"


class SystemJobTrigger(StrEnum):
    """What started a system job run: its schedule, or an admin by hand."""

    schedule = "schedule"
    manual = "manual"


class SystemJob(Base):
    __tablename__ = "system_jobs"
    __table_args__ = (
        sa.UniqueConstraint("key"),
        # The tick's claim reads only this index (as for maintenance schedules).
        sa.Index(
            "ix_system_jobs_due",
            "next_run_at",
            postgresql_where=sa.text("enabled AND next_run_at IS NOT NULL"),
            sqlite_where=sa.text("enabled AND next_run_at IS NOT NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    key: Mapped[str] = mapped_column(sa.String(100), nullable=False)
    job_type: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    # None: run by hand only.
    schedule_cron: Mapped[str | None] = mapped_column(sa.String(200))
    timezone: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    enabled: Mapped[bool] = mapped_column(sa.Boolean, nullable=False)
    visible_in_ui: Mapped[bool] = mapped_column(sa.Boolean, nullable=False)
    next_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class SystemJobRun(Base):
    __tablename__ = "system_job_runs"
    __table_args__ = (
        sa.CheckConstraint("status IN ('running', 'success', 'failed')", name="status"),
        sa.CheckConstraint("trigger IN ('schedule', 'manual')", name="trigger"),
        # One run per (job, scheduled instant), whoever fires it and however often (manual runs
        # have no instant: NULLs are distinct).
        sa.UniqueConstraint("job_id", "scheduled_for"),
        # At most one run of a job at a time.
        sa.Index(
            "uq_system_job_runs_running",
            "job_id",
            unique=True,
            postgresql_where=sa.text("status = 'running'"),
            sqlite_where=sa.text("status = 'running'"),
        ),
        # The leader marks runs whose worker died "worker lost": it reads only the running ones.
        sa.Index(
            "ix_system_job_runs_deadline",
            "deadline_at",
            postgresql_where=sa.text("status = 'running'"),
            sqlite_where=sa.text("status = 'running'"),
        ),
        sa.Index("ix_system_job_runs_started", "started_at", "id"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    job_id: Mapped[uuid.UUID] = mapped_column(
        sa.Uuid, sa.ForeignKey("system_jobs.id", ondelete="CASCADE"), nullable=False
    )
    status: Mapped[str] = mapped_column(sa.String(16), nullable=False)
    trigger: Mapped[str] = mapped_column(sa.String(16), nullable=False)
    scheduled_for: Mapped[datetime | None] = mapped_column(UTCDateTime)
    message: Mapped[str | None] = mapped_column(sa.Text)
    # Totals only (counts per kind): never a team's rows or ids.
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    # When a worker took it up: a run is executed at most once (a redelivered message whose
    # run was already taken up does nothing; the deadline below settles it).
    picked_up_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A run still running at this instant lost its worker and is marked failed.
    deadline_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    duration_s: Mapped[float | None] = mapped_column(sa.Float)
    created_at: Mapped[datetime] = created_at()
