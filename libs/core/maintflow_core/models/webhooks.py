"""Webhooks (a team's HTTP receivers of events), their deliveries (one per event and webhook:
one Standard Webhooks message, whatever the retries) and each delivery's attempts."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from maintflow_core.db.base import Base, JSONType, UTCDateTime
from maintflow_core.models._common import BigIntId, created_at, team_fk, uuid_pk


class DeliveryStatus(enum.StrEnum):
    """A delivery is `queued` (handed to the workers), `delivering` (an attempt under way) or
    `pending` (its next attempt due after a failed one) until it ends `succeeded` or `failed`
    (attempts used up, 410 Gone, too many of the webhook's deliveries waiting for a retry, or
    the webhook disabled)."""

    pending = "pending"
    queued = "queued"
    delivering = "delivering"
    succeeded = "succeeded"
    failed = "failed"


DELIVERY_STATUSES = tuple(status.value for status in DeliveryStatus)


class Webhook(Base):
    __tablename__ = "webhooks"
    __table_args__ = (sa.Index("ix_webhooks_team_created", "team_id", "created_at", "id"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    team_id: Mapped[uuid.UUID] = team_fk()
    url: Mapped[str] = mapped_column(sa.String(2048), nullable=False)
    events: Mapped[list[str]] = mapped_column(JSONType, nullable=False)
    description: Mapped[str | None] = mapped_column(sa.Text)
    # The signing secret as shown once (`whsec_` + base64): the key every signature needs.
    secret: Mapped[str] = mapped_column(sa.String(100), nullable=False)
    created_at: Mapped[datetime] = created_at()
    # Set when the receiver answered 410 Gone: nothing more is offered or sent to it.
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    disabled_reason: Mapped[str | None] = mapped_column(sa.String(500))


class WebhookDelivery(Base):
    """One event for one webhook. Its id is the `webhook-id` of every attempt. `next_attempt_at`
    is set exactly while the delivery is unfinished: when it is `pending`, the time of its next
    attempt; `queued` (its message handed to the broker) or `delivering` (an attempt under way),
    the time by which that must have moved on, after which the scheduler leader drives it again
    (a lost message, a worker killed mid-request)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        sa.CheckConstraint(
            f"status IN ({', '.join(repr(s) for s in DELIVERY_STATUSES)})", name="status"
        ),
        # One delivery per event and webhook, however often the event is offered.
        sa.UniqueConstraint("webhook_id", "event_id"),
        sa.Index("ix_webhook_deliveries_webhook_created", "webhook_id", "created_at", "id"),
        # The leader's due scan and the per-webhook pending count read only unfinished rows.
        sa.Index(
            "ix_webhook_deliveries_due",
            "next_attempt_at",
            postgresql_where=sa.text("next_attempt_at IS NOT NULL"),
            sqlite_where=sa.text("next_attempt_at IS NOT NULL"),
        ),
        sa.Index(
            "ix_webhook_deliveries_unfinished",
            "webhook_id",
            postgresql_where=sa.text("next_attempt_at IS NOT NULL"),
            sqlite_where=sa.text("next_attempt_at IS NOT NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    webhook_id: Mapped[uuid.UUID] = mapped_column(
        sa.Uuid, sa.ForeignKey("webhooks.id", ondelete="CASCADE"), nullable=False
    )
    event: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    # The event's own id (NULL for a ping: each test request is a delivery of its own).
    event_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)
    # The exact bytes every attempt sends (and signs).
    body: Mapped[str] = mapped_column(sa.Text, nullable=False)
    status: Mapped[str] = mapped_column(sa.String(16), nullable=False)
    attempts: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_status_code: Mapped[int | None] = mapped_column(sa.Integer)
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = created_at()
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class WebhookAttempt(Base):
    __tablename__ = "webhook_attempts"
    __table_args__ = (sa.UniqueConstraint("delivery_id", "number"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    delivery_id: Mapped[uuid.UUID] = mapped_column(
        sa.Uuid, sa.ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), nullable=False
    )
    number: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    duration_ms: Mapped[float] = mapped_column(sa.Float, nullable=False)
    status_code: Mapped[int | None] = mapped_column(sa.Integer)
    error: Mapped[str | None] = mapped_column(sa.Text)
