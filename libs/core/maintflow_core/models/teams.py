"""Teams, their users (with a role) and the users' API tokens (stored as SHA-256 hashes only)."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from maintflow_core.db.base import Base, UTCDateTime
from maintflow_core.models._common import created_at, team_fk, uuid_pk

ROLES = ("viewer", "engineer", "admin")


class Team(Base):
    __tablename__ = "teams"

    id: Mapped[uuid.UUID] = uuid_pk()
    name: Mapped[str] = mapped_column(sa.String(200), nullable=False)
    created_at: Mapped[datetime] = created_at()
    # The last notification's `seq`; bumped by each event, its row lock held until commit.
    notification_seq: Mapped[int] = mapped_column(
        sa.BigInteger, nullable=False, default=0, server_default="0"
    )


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        sa.UniqueConstraint("team_id", "email"),
        sa.CheckConstraint("role IN ('viewer', 'engineer', 'admin')", name="role"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    team_id: Mapped[uuid.UUID] = team_fk()
    email: Mapped[str] = mapped_column(sa.String(320), nullable=False)
    role: Mapped[str] = mapped_column(sa.String(16), nullable=False)
    created_at: Mapped[datetime] = created_at()


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[uuid.UUID] = uuid_pk()
    user_id: Mapped[uuid.UUID] = mapped_column(
        sa.Uuid, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    team_id: Mapped[uuid.UUID] = team_fk()
    token_hash: Mapped[str] = mapped_column(sa.String(64), nullable=False, unique=True)
    created_at: Mapped[datetime] = created_at()
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
