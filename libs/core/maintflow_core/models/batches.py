"""Batches (one launch: N sessions), the outbox that hands fired batches to the broker, and
notifications. The uniqueness rules here are what make a fire exactly-once."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from maintflow_core.db.base import Base, JSONType, UTCDateTime
from maintflow_core.models._common import BigIntId, created_at, team_fk, uuid_pk

TRIGGERS = ("manual", "schedule", "run_now")


class Batch(Base):
    __tablename__ = "batches"
    __table_args__ = (
        sa.CheckConstraint("trigger IN ('manual', 'schedule', 'run_now')", name="trigger"),
        # One batch per (schedule, scheduled instant), whoever fires it and however often.
        sa.Index(
            "uq_batches_schedule_instant",
            "schedule_id",
            "scheduled_for",
            unique=True,
            postgresql_where=sa.text("trigger = 'schedule'"),
            sqlite_where=sa.text("trigger = 'schedule'"),
        ),
        sa.Index("ix_batches_team_created", "team_id", "created_at", "id"),
        sa.Index("ix_batches_schedule_created", "schedule_id", "created_at"),
        # The reconciler scans only batches whose fan-out has not finished.
        sa.Index(
            "ix_batches_not_ready",
            "driven_at",
            postgresql_where=sa.text("ready_at IS NULL"),
            sqlite_where=sa.text("ready_at IS NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    team_id: Mapped[uuid.UUID] = team_fk()
    flow_id: Mapped[uuid.UUID] = mapped_column(
        sa.Uuid, sa.ForeignKey("flows.id", ondelete="CASCADE"), nullable=False, index=True
    )
    schedule_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.Uuid, sa.ForeignKey("maintenance_schedules.id", ondelete="SET NULL")
    )
    trigger: Mapped[str] = mapped_column(sa.String(16), nullable=False)
    scheduled_for: Mapped[datetime | None] = mapped_column(UTCDateTime)
    target_list_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)
    # Snapshots taken when the batch is resolved; NULL until a fired batch's fan-out starts.
    targets: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONType)
    steps: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONType)
    intake: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    target_count: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    sessions_created: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    created_at: Mapped[datetime] = created_at()
    driven_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ready_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Sessions that reached a final state, counted under the batch's row lock as each does: the
    # batch is complete once it is ready and every target's session is final (`completion`).
    sessions_final: Mapped[int] = mapped_column(
        sa.Integer, nullable=False, default=0, server_default="0"
    )
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class BatchProgress(Base):
    """Sessions created per batch, counted in a few shard rows instead of the batch row: many
    workers creating one batch's sessions at once would otherwise all queue on one row lock.
    The sum over a batch's shards is the number of sessions its fan-out created."""

    __tablename__ = "batch_progress"

    batch_id: Mapped[uuid.UUID] = mapped_column(
        sa.Uuid, sa.ForeignKey("batches.id", ondelete="CASCADE"), primary_key=True
    )
    shard: Mapped[int] = mapped_column(sa.SmallInteger, primary_key=True, autoincrement=False)
    created: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class Outbox(Base):
    """Work to hand to the broker, written in the same transaction as the state it is about."""

    __tablename__ = "outbox"
    __table_args__ = (
        sa.Index(
            "ix_outbox_pending",
            "id",
            postgresql_where=sa.text("dispatched_at IS NULL"),
            sqlite_where=sa.text("dispatched_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    batch_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False)
    created_at: Mapped[datetime] = created_at()
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)


class Notification(Base):
    __tablename__ = "notifications"
    __table_args__ = (
        # "Notify once" per cause is a constraint, not a flag in memory (usecases/events).
        sa.UniqueConstraint("dedupe_key"),
        sa.Index("ix_notifications_team_created", "team_id", "created_at", "id"),
        # Deleting a batch (retention) finds its notifications: the cascade and the detach.
        sa.Index("ix_notifications_batch_id", "batch_id"),
        # The live stream reads a team's notifications after a sequence number.
        sa.Index("uq_notifications_team_seq", "team_id", "seq", unique=True),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    team_id: Mapped[uuid.UUID] = team_fk()
    event: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    title: Mapped[str] = mapped_column(sa.String(500), nullable=False)
    message: Mapped[str] = mapped_column(sa.Text, nullable=False)
    batch_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.Uuid, sa.ForeignKey("batches.id", ondelete="CASCADE")
    )
    data: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    created_at: Mapped[datetime] = created_at()
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # What raised it ("<event>:<cause id>"): one notification per cause.
    dedupe_key: Mapped[str] = mapped_column(sa.String(255), nullable=False)
    # The team's notification counter when it was raised: per team, commit order (events).
    seq: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)
