"""System jobs as a due-work source, with the claim discipline of maintenance schedules: lock
the enabled jobs whose next_run_at has come (SKIP LOCKED), plan with the same cron code
(`scheduling.plan`, misfire policy run_once: a nightly missed during downtime runs once, for its
newest instant), insert one run per (job, instant) — the unique (job_id, scheduled_for) makes a
second leader's insert do nothing — with its outbox row, and move each job on. An instant that
finds the job's previous run still running is skipped (one run at a time, a partial unique
index). The same pass marks runs whose deadline passed while still running as failed ("worker
lost")."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from maintflow_core import cron
from maintflow_core.db.store import Store
from maintflow_core.due.base import ClaimResult
from maintflow_core.errors import DomainError
from maintflow_core.models import Outbox, SystemJob, SystemJobRun
from maintflow_core.scheduling import Bounds, plan
from maintflow_core.settings import Settings
from maintflow_core.usecases import system_jobs

log = logging.getLogger("maintflow.scheduler")
J = SystemJob


def is_due(now: datetime) -> sa.ColumnElement[bool]:
    """The due predicate; the partial index ix_system_jobs_due holds exactly these rows'
    next_run_at."""
    return sa.and_(J.enabled, J.next_run_at.is_not(None), J.next_run_at <= now)


class SystemJobs:
    """The due-work source of system jobs (see `DueSource`)."""

    name = "system_jobs"
    event = "system_jobs_fired"
    fired_as = "runs"

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self.grace = timedelta(seconds=settings.misfire_grace_s)

    async def claim(self, db: AsyncSession, now: datetime, limit: int) -> ClaimResult:
        result = ClaimResult()
        for run_id in await system_jobs.lock_lost(db, now, limit):
            result.claimed += 1
            await system_jobs.mark_lost(db, self.store, self.settings, now, run_id)
        due = (
            await db.scalars(
                sa.select(J)
                .where(is_due(now))
                .order_by(J.next_run_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        ).all()
        for job in due:
            result.claimed += 1
            await self._fire(db, job, now, result)
        return result

    async def _fire(
        self, db: AsyncSession, job: SystemJob, now: datetime, result: ClaimResult
    ) -> None:
        assert job.next_run_at is not None and job.schedule_cron is not None
        try:
            fire_plan = plan(
                cron.parse(job.schedule_cron, job.timezone),
                job.next_run_at,
                now,
                policy="run_once",
                grace=self.grace,
                max_catchup=1,
                bounds=Bounds(),
            )
        except DomainError as exc:
            # A rule that no longer parses is parked rather than retried every tick.
            log.error("system_job_rule_invalid", extra={"job": job.key, "error": str(exc)})
            job.next_run_at = None
            return
        result.missed += fire_plan.missed
        job.next_run_at = fire_plan.next_run_at
        if not fire_plan.instants:
            return
        # Housekeeping catches up in one run: the newest instant due stands for the others.
        instant = max(fire_plan.instants)
        result.lag_seconds.append((now - instant).total_seconds())
        job.last_run_at = instant
        if await system_jobs.running_run(db, job.id) is not None:
            log.warning("system_job_still_running", extra={"job": job.key, "instant": str(instant)})
            return
        row = system_jobs.run_row(job.id, "schedule", instant, now, self.settings)
        if not await self.store.insert_once(db, SystemJobRun, row, key=("job_id", "scheduled_for")):
            result.duplicates += 1
            return
        await db.execute(sa.insert(Outbox).values(system_jobs.run_message(row["id"], now)))
        result.fired.append(uuid.UUID(str(row["id"])))

    async def backlog(self, db: AsyncSession, now: datetime) -> int:
        return int(await db.scalar(sa.select(sa.func.count()).where(is_due(now))) or 0)
