"""Column helpers shared by the models."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from maintflow_core.db.base import UTCDateTime


def uuid_pk() -> Mapped[uuid.UUID]:
    return mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)


def team_fk() -> Mapped[uuid.UUID]:
    return mapped_column(sa.Uuid, sa.ForeignKey("teams.id", ondelete="CASCADE"), nullable=False)


def created_at() -> Mapped[datetime]:
    return mapped_column(UTCDateTime, nullable=False)


BigIntId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
