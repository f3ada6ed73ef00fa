"""batch progress shards

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 11:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import maintflow_core.db.base

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "batch_progress",
        sa.Column("batch_id", sa.Uuid(), nullable=False),
        sa.Column("shard", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("created", sa.Integer(), nullable=False),
        sa.Column("updated_at", maintflow_core.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["batches.id"],
            name=op.f("fk_batch_progress_batch_id_batches"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("batch_id", "shard", name=op.f("pk_batch_progress")),
    )
    # Fired batches in flight used to count in batches.sessions_created; carry that over.
    op.execute(
        "INSERT INTO batch_progress (batch_id, shard, created, updated_at) "
        "SELECT id, 0, sessions_created, created_at FROM batches "
        "WHERE ready_at IS NULL AND sessions_created > 0"
    )


def downgrade() -> None:
    op.execute(
        "UPDATE batches SET sessions_created = (SELECT coalesce(sum(p.created), 0) "
        "FROM batch_progress p WHERE p.batch_id = batches.id) WHERE ready_at IS NULL"
    )
    op.drop_table("batch_progress")
