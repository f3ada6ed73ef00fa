"""The due-work sources the scheduler leader's tick walks, in order. Adding one is a module here
whose class satisfies `DueSource`, listed below, plus (when workers act on what it fires) its
outbox kind (`maintflow_core.queues`) and its actor in the workers: the tick, the relay and the
reconciler do not change (docs/operations.md, "Adding a due-work source")."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from maintflow_core.db.store import Store
from maintflow_core.due.base import ClaimResult, DueSource
from maintflow_core.due.schedules import MaintenanceSchedules
from maintflow_core.due.system_jobs import SystemJobs
from maintflow_core.due.webhooks import WebhookDeliveries
from maintflow_core.due.windows import WindowTransitions
from maintflow_core.settings import Settings

__all__ = ["ClaimResult", "DueSource", "backlog", "sources"]


def sources(store: Store, settings: Settings) -> list[DueSource]:
    return [
        MaintenanceSchedules(store, settings),
        WebhookDeliveries(store, settings),
        WindowTransitions(store, settings),
        SystemJobs(store, settings),
    ]


async def backlog(db: AsyncSession, sources: list[DueSource], now: datetime) -> int:
    """Work due at `now` and not claimed yet, over every source."""
    return sum([await source.backlog(db, now) for source in sources])
