"""What a due-work source is: something that falls due at an instant, which the scheduler
leader claims and hands to the workers. Maintenance schedules are one; window transitions and
system jobs are the next. The leader's tick walks the sources (`maintflow_core.due.sources`)
and knows nothing else about them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession


@dataclass
class ClaimResult:
    """What one claim pass of a source did (or, added up, a tick). `missed` and `lag_seconds` are
    logged in the source's event now and are what the metrics of the observability work will
    read."""

    # Due rows locked; a pass that locks its whole limit is followed by another.
    claimed: int = 0
    # What was fired, one outbox row each (for maintenance schedules: the batches created).
    fired: list[uuid.UUID] = field(default_factory=list)
    # Instants another claimer had fired already (refused by the unique index).
    duplicates: int = 0
    # Rows whose missed instants went through their misfire policy.
    missed: int = 0
    # Per instant planned: how late (now - instant), in seconds.
    lag_seconds: list[float] = field(default_factory=list)

    def add(self, other: ClaimResult) -> None:
        self.claimed += other.claimed
        self.fired += other.fired
        self.duplicates += other.duplicates
        self.missed += other.missed
        self.lag_seconds += other.lag_seconds

    def report(self, fired_as: str) -> dict[str, Any]:
        """The fields of the tick's log event for a source whose fired items are `fired_as`."""
        lags = self.lag_seconds
        return {
            fired_as: len(self.fired),
            "duplicates": self.duplicates,
            "missed": self.missed,
            "lag_max_s": round(max(lags), 3) if lags else None,
            "lag_mean_s": round(sum(lags) / len(lags), 3) if lags else None,
        }


class DueSource(Protocol):
    """One kind of due work. The tick calls `claim` in passes, each in its own transaction that
    has just passed the leader's fence, until a pass locks fewer rows than its limit."""

    name: str  # "schedules"
    event: str  # the log event of a tick that fired or missed some ("schedules_fired")
    fired_as: str  # what its log event calls the items it fired ("batches")

    async def claim(self, db: AsyncSession, now: datetime, limit: int) -> ClaimResult:
        """In the caller's transaction: lock up to `limit` rows due at `now` (FOR UPDATE SKIP
        LOCKED, so an overlapping leader takes others), decide what they cause (a pure
        function of the rows and `now`), and write it — the effects, one outbox row per item
        fired, and each row moved on to its next instant. Writes must be idempotent under a
        unique constraint: two leaders that overlap may claim the same instant."""
        ...

    async def backlog(self, db: AsyncSession, now: datetime) -> int:
        """Rows due at `now` and not claimed yet (GET /v1/ops/scheduler)."""
        ...
