"""maintenance windows and system jobs

Windows carry the instant the scheduler must next act on (`next_transition_at`, indexed for the
due ones only) and an update history; system jobs and their runs are the deployment's
housekeeping, seeded with the two retention jobs.

Revision ID: 0007
Revises: 0005
Create Date: 2026-12-06 15:18:02.177473
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import maintflow_core.db.base
from maintflow_core.clock import SystemClock
from maintflow_core.usecases.system_jobs import builtin_rows

revision: str = "0007"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "system_jobs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("job_type", sa.String(length=64), nullable=False),
        sa.Column("schedule_cron", sa.String(length=200), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("visible_in_ui", sa.Boolean(), nullable=False),
        sa.Column("next_run_at", maintflow_core.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_run_at", maintflow_core.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", maintflow_core.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", maintflow_core.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_system_jobs")),
        sa.UniqueConstraint("key", name=op.f("uq_system_jobs_key")),
    )
    with op.batch_alter_table("system_jobs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_system_jobs_due",
            ["next_run_at"],
            unique=False,
            postgresql_where=sa.text("enabled AND next_run_at IS NOT NULL"),
            sqlite_where=sa.text("enabled AND next_run_at IS NOT NULL"),
        )

    op.create_table(
        "maintenance_windows",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("team_id", sa.Uuid(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("start_at", maintflow_core.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("end_at", maintflow_core.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "targets",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column(
            "next_transition_at", maintflow_core.db.base.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("updates_count", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", maintflow_core.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", maintflow_core.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "(status = 'scheduled' AND next_transition_at = start_at)"
            " OR (status = 'in_progress' AND next_transition_at = end_at)"
            " OR (status IN ('completed', 'cancelled') AND next_transition_at IS NULL)",
            name=op.f("ck_maintenance_windows_next_transition"),
        ),
        sa.CheckConstraint(
            "status IN ('scheduled', 'in_progress', 'completed', 'cancelled')",
            name=op.f("ck_maintenance_windows_status"),
        ),
        sa.CheckConstraint("end_at > start_at", name=op.f("ck_maintenance_windows_span")),
        sa.ForeignKeyConstraint(
            ["team_id"],
            ["teams.id"],
            name=op.f("fk_maintenance_windows_team_id_teams"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_maintenance_windows")),
    )
    with op.batch_alter_table("maintenance_windows", schema=None) as batch_op:
        batch_op.create_index(
            "ix_maintenance_windows_due",
            ["next_transition_at"],
            unique=False,
            postgresql_where=sa.text("next_transition_at IS NOT NULL"),
            sqlite_where=sa.text("next_transition_at IS NOT NULL"),
        )
        batch_op.create_index(
            "ix_maintenance_windows_team_start", ["team_id", "start_at"], unique=False
        )

    op.create_table(
        "system_job_runs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column(
            "scheduled_for", maintflow_core.db.base.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column(
            "result",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("started_at", maintflow_core.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("picked_up_at", maintflow_core.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("deadline_at", maintflow_core.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", maintflow_core.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("duration_s", sa.Float(), nullable=True),
        sa.Column("created_at", maintflow_core.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('running', 'success', 'failed')", name=op.f("ck_system_job_runs_status")
        ),
        sa.CheckConstraint(
            "trigger IN ('schedule', 'manual')", name=op.f("ck_system_job_runs_trigger")
        ),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["system_jobs.id"],
            name=op.f("fk_system_job_runs_job_id_system_jobs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_system_job_runs")),
        sa.UniqueConstraint(
            "job_id", "scheduled_for", name=op.f("uq_system_job_runs_job_id_scheduled_for")
        ),
    )
    with op.batch_alter_table("system_job_runs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_system_job_runs_deadline",
            ["deadline_at"],
            unique=False,
            postgresql_where=sa.text("status = 'running'"),
            sqlite_where=sa.text("status = 'running'"),
        )
        batch_op.create_index("ix_system_job_runs_started", ["started_at", "id"], unique=False)
        batch_op.create_index(
            "uq_system_job_runs_running",
            ["job_id"],
            unique=True,
            postgresql_where=sa.text("status = 'running'"),
            sqlite_where=sa.text("status = 'running'"),
        )

    op.create_table(
        "maintenance_window_updates",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("window_id", sa.Uuid(), nullable=False),
        sa.Column("team_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("author_id", sa.Uuid(), nullable=True),
        sa.Column("automatic", sa.Boolean(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("old_status", sa.String(length=16), nullable=True),
        sa.Column("new_status", sa.String(length=16), nullable=True),
        sa.Column("created_at", maintflow_core.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["team_id"],
            ["teams.id"],
            name=op.f("fk_maintenance_window_updates_team_id_teams"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["window_id"],
            ["maintenance_windows.id"],
            name=op.f("fk_maintenance_window_updates_window_id_maintenance_windows"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_maintenance_window_updates")),
        sa.UniqueConstraint(
            "window_id", "seq", name=op.f("uq_maintenance_window_updates_window_id_seq")
        ),
    )
    with op.batch_alter_table("maintenance_window_updates", schema=None) as batch_op:
        batch_op.create_index(
            "uq_maintenance_window_updates_automatic",
            ["window_id", "new_status"],
            unique=True,
            postgresql_where=sa.text("automatic"),
            sqlite_where=sa.text("automatic"),
        )
    # Retention deletes batches: their notifications are found by batch (the cascade, the
    # detach of unread ones) instead of by a scan of the table per batch.
    op.create_index("ix_notifications_batch_id", "notifications", ["batch_id"])
    _seed_system_jobs()


def downgrade() -> None:
    op.drop_index("ix_notifications_batch_id", table_name="notifications")
    with op.batch_alter_table("maintenance_window_updates", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_maintenance_window_updates_automatic",
            postgresql_where=sa.text("automatic"),
            sqlite_where=sa.text("automatic"),
        )

    op.drop_table("maintenance_window_updates")
    with op.batch_alter_table("system_job_runs", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_system_job_runs_running",
            postgresql_where=sa.text("status = 'running'"),
            sqlite_where=sa.text("status = 'running'"),
        )
        batch_op.drop_index("ix_system_job_runs_started")
        batch_op.drop_index(
            "ix_system_job_runs_deadline",
            postgresql_where=sa.text("status = 'running'"),
            sqlite_where=sa.text("status = 'running'"),
        )

    op.drop_table("system_job_runs")
    with op.batch_alter_table("maintenance_windows", schema=None) as batch_op:
        batch_op.drop_index("ix_maintenance_windows_team_start")
        batch_op.drop_index(
            "ix_maintenance_windows_due",
            postgresql_where=sa.text("next_transition_at IS NOT NULL"),
            sqlite_where=sa.text("next_transition_at IS NOT NULL"),
        )

    op.drop_table("maintenance_windows")
    with op.batch_alter_table("system_jobs", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_system_jobs_due",
            postgresql_where=sa.text("enabled AND next_run_at IS NOT NULL"),
            sqlite_where=sa.text("enabled AND next_run_at IS NOT NULL"),
        )

    op.drop_table("system_jobs")


def _seed_system_jobs() -> None:
    """The built-in jobs: the nightly retention cleanup (visible, 03:00 UTC) and its manual twin
    (hidden, no schedule)."""
    jobs = sa.table(
        "system_jobs",
        *(
            sa.column(name, type_)
            for name, type_ in (
                ("id", sa.Uuid()),
                ("key", sa.String()),
                ("job_type", sa.String()),
                ("schedule_cron", sa.String()),
                ("timezone", sa.String()),
                ("enabled", sa.Boolean()),
                ("visible_in_ui", sa.Boolean()),
                ("next_run_at", maintflow_core.db.base.UTCDateTime(timezone=True)),
                ("created_at", maintflow_core.db.base.UTCDateTime(timezone=True)),
                ("updated_at", maintflow_core.db.base.UTCDateTime(timezone=True)),
            )
        ),
    )
    op.bulk_insert(jobs, builtin_rows(SystemClock().now()))
