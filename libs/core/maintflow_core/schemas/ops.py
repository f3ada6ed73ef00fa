"""Shapes of the operations routes: health, readiness, queues and the scheduler's state."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from maintflow_core.schemas.common import Response


class Health(Response):
    status: str = Field(description="`ok` whenever the process answers.")


class Readiness(Response):
    status: str = Field(description="`ok`, or `unavailable` when a dependency is unreachable.")
    database: str = Field(description="`ok` or `unreachable: <error>`.")
    broker: str = Field(description="`ok`, `ok (in-memory)` or `unreachable: <error>`.")


class QueueStats(Response):
    name: str
    depth: int = Field(description="Messages waiting.")
    delayed: int = Field(description="Messages waiting for a retry.")
    dead_letter: int = Field(description="Messages that ran out of retries.")


class SchedulerStatus(Response):
    leader_id: str | None = Field(description="The scheduler holding a live lease, or null.")
    leader_since: datetime | None
    last_tick_at: datetime | None
    due_backlog: int = Field(description="Work due now that no scheduler has claimed yet.")
