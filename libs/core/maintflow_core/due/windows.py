"""Maintenance-window transitions as a due-work source. A window is due when its
next_transition_at (its start while scheduled, its end while in progress) has come. A claim
locks the due windows, plans the moves each makes at `now` (pure: a window whose whole span
passed while nothing ran both starts and completes, in that order) and writes them through
`usecases.windows.write_entries` — statuses, history entries and events — in the claim
transaction. The
effects are all in the database: no outbox row, no worker."""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from maintflow_core.db.store import Store
from maintflow_core.due.base import ClaimResult
from maintflow_core.models import MaintenanceWindow
from maintflow_core.settings import Settings
from maintflow_core.usecases.windows import (
    AUTOMATIC_MESSAGES,
    STATE_COLUMNS,
    Entry,
    WindowState,
    plan_entry,
    write_entries,
)

W = MaintenanceWindow


def is_due(now: datetime) -> sa.ColumnElement[bool]:
    """The due predicate; the partial index ix_maintenance_windows_due holds exactly the rows
    with a next transition."""
    return sa.and_(W.next_transition_at.is_not(None), W.next_transition_at <= now)


def plan_moves(status: str, start_at: datetime, end_at: datetime, now: datetime) -> list[str]:
    """Pure: the statuses a window in `status` moves through at `now`, in order."""
    moves: list[str] = []
    if status == "scheduled" and start_at <= now:
        moves.append("in_progress")
        status = "in_progress"
    if status == "in_progress" and end_at <= now:
        moves.append("completed")
    return moves


async def lock_due(db: AsyncSession, now: datetime, limit: int) -> list[WindowState]:
    """Up to `limit` due windows, the most overdue first, locked until the caller's commit;
    windows another transaction holds (a leader overlapping this one, a user editing one) are
    skipped and left for the next tick."""
    rows = await db.execute(
        sa.select(*STATE_COLUMNS)
        .where(is_due(now))
        .order_by(W.next_transition_at)
        .limit(limit)
        .with_for_update(skip_locked=True, of=W)
    )
    return [WindowState(*row) for row in rows]


class WindowTransitions:
    """The due-work source of maintenance-window transitions (see `DueSource`)."""

    name = "windows"
    event = "windows_transitioned"
    fired_as = "transitions"

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.grace = timedelta(seconds=settings.misfire_grace_s)

    async def claim(self, db: AsyncSession, now: datetime, limit: int) -> ClaimResult:
        due = await lock_due(db, now, limit)
        result = ClaimResult(claimed=len(due))
        entries: list[Entry] = []
        after: list[WindowState] = []
        for window in due:
            for status in plan_moves(window.status, window.start_at, window.end_at, now):
                entry, window = plan_entry(window, status, AUTOMATIC_MESSAGES[status], None)
                entries.append(entry)
                instant = window.start_at if status == "in_progress" else window.end_at
                lag = (now - instant).total_seconds()
                result.lag_seconds.append(lag)
                # Late beyond the grace: it happened while nothing ran (always caught up).
                result.missed += lag > self.grace.total_seconds()
            after.append(window)
        rows = await write_entries(db, self.store, now, entries, after)
        result.fired = [row["id"] for row in rows]
        return result

    async def backlog(self, db: AsyncSession, now: datetime) -> int:
        return int(await db.scalar(sa.select(sa.func.count()).where(is_due(now))) or 0)
