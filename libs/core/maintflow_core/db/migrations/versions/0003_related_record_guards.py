"""guards on related records

A scheduled flow stays a maintenance flow, a target list in use cannot be deleted, an idempotency
key remembers its request, one-off schedules are stored in 5/6 fields pinned by their bounds.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04 10:00:00
"""

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import maintflow_core.db.base
from maintflow_core import cron

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_schedules = sa.table(
    "maintenance_schedules",
    sa.column("id", sa.Uuid()),
    sa.column("cron_expression", sa.String()),
    sa.column("timezone", sa.String()),
    sa.column(
        "recurrence", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
    ),
    sa.column("start_at", maintflow_core.db.base.UTCDateTime(timezone=True)),
    sa.column("end_at", maintflow_core.db.base.UTCDateTime(timezone=True)),
)


def upgrade() -> None:
    op.add_column("idempotency_keys", sa.Column("request_hash", sa.String(64), nullable=True))
    op.create_index("uq_flows_id_flow_type", "flows", ["id", "flow_type"], unique=True)
    with op.batch_alter_table("maintenance_schedules") as batch:
        batch.add_column(
            sa.Column("flow_type", sa.String(32), nullable=False, server_default="maintenance")
        )
        batch.drop_constraint("fk_maintenance_schedules_flow_id_flows", type_="foreignkey")
        batch.drop_constraint(
            "fk_maintenance_schedules_target_list_id_target_lists", type_="foreignkey"
        )
        batch.create_check_constraint("flow_type", "flow_type = 'maintenance'")
        batch.create_foreign_key(
            op.f("fk_maintenance_schedules_flow_id_flows"),
            "flows",
            ["flow_id", "flow_type"],
            ["id", "flow_type"],
            ondelete="CASCADE",
        )
        batch.create_foreign_key(
            op.f("fk_maintenance_schedules_target_list_id_target_lists"),
            "target_lists",
            ["target_list_id"],
            ["id"],
        )
    _one_offs_to_bounds()


def downgrade() -> None:
    _one_offs_to_year_form()
    with op.batch_alter_table("maintenance_schedules") as batch:
        batch.drop_constraint(
            "fk_maintenance_schedules_target_list_id_target_lists", type_="foreignkey"
        )
        batch.drop_constraint("fk_maintenance_schedules_flow_id_flows", type_="foreignkey")
        batch.drop_constraint(op.f("ck_maintenance_schedules_flow_type"), type_="check")
        batch.drop_column("flow_type")
        batch.create_foreign_key(
            op.f("fk_maintenance_schedules_flow_id_flows"),
            "flows",
            ["flow_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch.create_foreign_key(
            op.f("fk_maintenance_schedules_target_list_id_target_lists"),
            "target_lists",
            ["target_list_id"],
            ["id"],
            ondelete="SET NULL",
        )
    op.drop_index("uq_flows_id_flow_type", table_name="flows")
    op.drop_column("idempotency_keys", "request_hash")


def _one_offs() -> list[Any]:
    once = _schedules.c.recurrence["type"].as_string() == "once"
    return list(op.get_bind().execute(sa.select(_schedules).where(once)))


def _one_offs_to_bounds() -> None:
    """One-off schedules were stored as a 7-field cron with a year, a form the API does not
    accept; they become the 5/6-field wall time pinned by start_at = end_at = the instant."""
    for row in _one_offs():
        fields = row.cron_expression.split()
        if len(fields) != 7:
            continue
        # Its one instant lies in the year of its 7th field (in its zone): look from a year before.
        since = datetime(int(fields[6]) - 1, 1, 1, tzinfo=UTC)
        instant = cron.next_fire(cron.parse(row.cron_expression, row.timezone), since)
        if instant is None:
            continue
        expression = " ".join(fields[:5] if fields[5] == "0" else fields[:6])
        op.get_bind().execute(
            _schedules.update()
            .where(_schedules.c.id == row.id)
            .values(cron_expression=expression, start_at=instant, end_at=instant)
        )


def _one_offs_to_year_form() -> None:
    for row in _one_offs():
        fields = row.cron_expression.split()
        if len(fields) == 7 or row.start_at is None:
            continue
        local = cron.to_local(cron.parse(row.cron_expression, row.timezone), row.start_at)
        second = fields[5] if len(fields) == 6 else "0"
        expression = " ".join([*fields[:5], second, str(local.year)])
        op.get_bind().execute(
            _schedules.update().where(_schedules.c.id == row.id).values(cron_expression=expression)
        )
