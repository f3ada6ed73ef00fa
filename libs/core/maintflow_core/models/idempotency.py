"""Remembered responses of work-launching POSTs, keyed by the client's Idempotency-Key."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from maintflow_core.db.base import Base, JSONType
from maintflow_core.models._common import created_at, team_fk, uuid_pk


class IdempotencyKey(Base):
    __tablename__ = "idempotency_keys"
    __table_args__ = (sa.UniqueConstraint("team_id", "scope", "key"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    team_id: Mapped[uuid.UUID] = team_fk()
    scope: Mapped[str] = mapped_column(sa.String(200), nullable=False)
    key: Mapped[str] = mapped_column(sa.String(255), nullable=False)
    # SHA-256 of the canonical request; NULL for keys stored before it was recorded.
    request_hash: Mapped[str | None] = mapped_column(sa.String(64))
    status_code: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    response: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False)
    created_at: Mapped[datetime] = created_at()
