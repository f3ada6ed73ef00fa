"""Flows: ordered steps an engineer works through (the seeds call them trees)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from maintflow_core.db.base import Base, JSONType, UTCDateTime
from maintflow_core.models._common import created_at, team_fk, uuid_pk

FLOW_TYPES = ("troubleshooting", "procedural", "maintenance")


class Flow(Base):
    __tablename__ = "flows"
    __table_args__ = (
        sa.CheckConstraint(
            "flow_type IN ('troubleshooting', 'procedural', 'maintenance')", name="flow_type"
        ),
        sa.Index("ix_flows_team_created", "team_id", "created_at", "id"),
        # The target of maintenance_schedules' (flow_id, flow_type) foreign key: a flow with a
        # schedule cannot stop being a maintenance flow. An index, not a constraint, so that
        # SQLite adds it without rebuilding the table.
        sa.Index("uq_flows_id_flow_type", "id", "flow_type", unique=True),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    team_id: Mapped[uuid.UUID] = team_fk()
    name: Mapped[str] = mapped_column(sa.String(200), nullable=False)
    description: Mapped[str | None] = mapped_column(sa.Text)
    flow_type: Mapped[str] = mapped_column(sa.String(32), nullable=False)
    steps: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, nullable=False)
    intake_form: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
