"""events: once per cause, in commit order per team; batch completion

Every notification names its cause (`dedupe_key`, unique: an event is raised once per cause
whoever raises it and however often) and carries its team's sequence number (`seq`, taken from
the team's counter row, whose lock is held until commit: per team, `seq` order is commit order,
so a stream reading `seq > n` never skips a row committed late). Batches count their final
sessions and remember when they completed (batch.completed, once).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06 15:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import maintflow_core.db.base

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _uuid_text(column: str) -> str:
    """A UUID column as the text `str(uuid)` gives (SQLite stores 32 hex digits)."""
    if op.get_bind().dialect.name == "postgresql":
        return f"CAST({column} AS TEXT)"
    parts = [(1, 8), (9, 4), (13, 4), (17, 4), (21, 12)]
    return " || '-' || ".join(f"lower(substr({column}, {a}, {n}))" for a, n in parts)


def upgrade() -> None:
    with op.batch_alter_table("teams") as batch:
        batch.add_column(
            sa.Column("notification_seq", sa.BigInteger(), nullable=False, server_default="0")
        )
    with op.batch_alter_table("batches") as batch:
        batch.add_column(
            sa.Column("sessions_final", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(
            sa.Column(
                "completed_at", maintflow_core.db.base.UTCDateTime(timezone=True), nullable=True
            )
        )
    with op.batch_alter_table("notifications") as batch:
        batch.add_column(sa.Column("dedupe_key", sa.String(255), nullable=True))
        batch.add_column(sa.Column("seq", sa.BigInteger(), nullable=True))

    cause = _uuid_text("coalesce(batch_id, id)")
    op.execute(f"UPDATE notifications SET dedupe_key = event || ':' || {cause}")
    op.execute(
        "UPDATE notifications SET seq = ranked.n FROM (SELECT id, row_number() OVER "
        "(PARTITION BY team_id ORDER BY created_at, id) AS n FROM notifications) AS ranked "
        "WHERE notifications.id = ranked.id"
    )
    op.execute(
        "UPDATE teams SET notification_seq = (SELECT coalesce(max(n.seq), 0) "
        "FROM notifications n WHERE n.team_id = teams.id)"
    )
    final = "s.status IN ('completed', 'failed', 'cancelled')"
    op.execute(
        "UPDATE batches SET sessions_final = (SELECT count(*) FROM sessions s "
        f"WHERE s.batch_id = batches.id AND {final})"
    )
    # Batches already complete stay quiet: no batch.completed for what finished before events.
    op.execute(
        "UPDATE batches SET completed_at = coalesce((SELECT max(s.finished_at) FROM sessions s "
        "WHERE s.batch_id = batches.id), ready_at) "
        "WHERE ready_at IS NOT NULL AND sessions_final >= target_count"
    )

    with op.batch_alter_table("notifications") as batch:
        batch.alter_column("dedupe_key", existing_type=sa.String(255), nullable=False)
        batch.alter_column("seq", existing_type=sa.BigInteger(), nullable=False)
        batch.drop_constraint(op.f("uq_notifications_batch_id_event"), type_="unique")
        batch.create_unique_constraint(op.f("uq_notifications_dedupe_key"), ["dedupe_key"])
    op.create_index("uq_notifications_team_seq", "notifications", ["team_id", "seq"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_notifications_team_seq", table_name="notifications")
    with op.batch_alter_table("notifications") as batch:
        batch.drop_constraint(op.f("uq_notifications_dedupe_key"), type_="unique")
        batch.drop_column("seq")
        batch.drop_column("dedupe_key")
    # Events other than batch.ready did not exist before: only one row per (batch, event) fits.
    op.execute("DELETE FROM notifications WHERE event <> 'batch.ready'")
    with op.batch_alter_table("notifications") as batch:
        batch.create_unique_constraint(
            op.f("uq_notifications_batch_id_event"), ["batch_id", "event"]
        )
    with op.batch_alter_table("batches") as batch:
        batch.drop_column("completed_at")
        batch.drop_column("sessions_final")
    with op.batch_alter_table("teams") as batch:
        batch.drop_column("notification_seq")
