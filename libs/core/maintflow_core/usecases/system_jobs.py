"""System jobs: the deployment's housekeeping. Reading and editing the jobs, starting a manual
run, and a run's life: created `running` (by the leader from the job's cron, or by an admin),
taken up once by a worker, executed, finished `success` or `failed` — or, when no result came
within the time limit, failed as "worker lost" by the leader (`due/system_jobs.py`). A failed run
raises `system_job.failed` to every team: a system job belongs to no team, and every team's
admins may run and read them; the event names the job and the run, never another team's data."""

from __future__ import annotations

import logging
import time
import uuid
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from maintflow_core import cron, metrics
from maintflow_core.clock import Clock
from maintflow_core.db.store import Store
from maintflow_core.errors import Conflict, InvalidCron, InvalidField, NotFound
from maintflow_core.models import Outbox, SystemJob, SystemJobRun, Team
from maintflow_core.queues import RUN_SYSTEM_JOB
from maintflow_core.records import outbox_row
from maintflow_core.scheduling import Bounds, first_fire
from maintflow_core.schemas.system_jobs import SystemJobUpdate
from maintflow_core.settings import Settings
from maintflow_core.usecases.events import Event, EventToRaise, raise_events
from maintflow_core.usecases.pagination import paginate
from maintflow_core.usecases.retention import JobFunction, Transaction, retention_cleanup
from maintflow_core.usecases.schedule_rules import parse_rule

log = logging.getLogger("maintflow.system_jobs")
J, R = SystemJob, SystemJobRun
# What each job_type runs.
JOB_TYPES: dict[str, JobFunction] = {"retention_cleanup": retention_cleanup}
WORKER_LOST = "worker lost: no result within the time limit ({limit:g} s)"


class BuiltinJob(NamedTuple):
    key: str
    job_type: str
    schedule_cron: str | None
    visible_in_ui: bool


BUILTIN = (
    BuiltinJob("retention_cleanup_nightly", "retention_cleanup", "0 3 * * *", True),
    BuiltinJob("retention_cleanup_manual", "retention_cleanup", None, False),
)


def builtin_rows(now: datetime) -> list[dict[str, Any]]:
    """The built-in jobs as rows (the migration seeds them), each due at its next instant."""
    return [
        {
            "id": uuid.uuid4(),
            "key": job.key,
            "job_type": job.job_type,
            "schedule_cron": job.schedule_cron,
            "timezone": "UTC",
            "enabled": True,
            "visible_in_ui": job.visible_in_ui,
            "next_run_at": next_instant(job.schedule_cron, "UTC", now),
            "created_at": now,
            "updated_at": now,
        }
        for job in BUILTIN
    ]


def next_instant(schedule_cron: str | None, timezone: str, after: datetime) -> datetime | None:
    if schedule_cron is None:
        return None
    return first_fire(cron.parse(schedule_cron, timezone), after, Bounds())


def run_row(
    job_id: uuid.UUID, trigger: str, instant: datetime | None, now: datetime, settings: Settings
) -> dict[str, Any]:
    """A new run, `running` until a worker finishes it or its deadline passes."""
    return {
        "id": uuid.uuid4(),
        "job_id": job_id,
        "status": "running",
        "trigger": trigger,
        "scheduled_for": instant,
        "started_at": now,
        "deadline_at": now + timedelta(seconds=settings.system_job_time_limit_s),
        "created_at": now,
    }


def run_message(run_id: uuid.UUID, now: datetime) -> dict[str, Any]:
    return outbox_row(RUN_SYSTEM_JOB, {"run_id": str(run_id)}, now)


async def list_jobs(
    db: AsyncSession, limit: int, cursor: str | None, visible_in_ui: bool | None
) -> list[SystemJob]:
    query = sa.select(J)
    if visible_in_ui is not None:
        query = query.where(J.visible_in_ui == visible_in_ui)
    return list((await db.scalars(paginate(query, J.created_at, J.id, limit, cursor))).all())


async def get_job(db: AsyncSession, key: str, *, for_update: bool = False) -> SystemJob:
    query = sa.select(J).where(J.key == key)
    if for_update:
        query = query.with_for_update()
    job = await db.scalar(query)
    if job is None:
        raise NotFound("system job not found")
    return job


async def update_job(
    db: AsyncSession, settings: Settings, now: datetime, key: str, data: SystemJobUpdate
) -> SystemJob:
    """Enable, disable or reschedule a job. A new rule, a new zone or a re-enabled job counts
    from now: instants that passed meanwhile are not owed."""
    job = await get_job(db, key, for_update=True)
    changes = data.model_fields_set
    if "enabled" in changes and data.enabled is None:
        raise InvalidField("enabled", "must not be null")
    if "timezone" in changes and data.timezone is None:
        raise InvalidField("timezone", "must not be null")
    schedule_cron = data.schedule_cron if "schedule_cron" in changes else job.schedule_cron
    timezone = data.timezone or job.timezone
    if schedule_cron is not None:
        try:
            parse_rule(schedule_cron, None, timezone, settings, now)
        except InvalidCron as exc:
            raise InvalidField("schedule_cron", exc.message) from exc
    elif data.timezone is not None:
        cron.validate_timezone(timezone)
    resumed = data.enabled is True and not job.enabled
    if changes & {"schedule_cron", "timezone"} or resumed:
        job.next_run_at = next_instant(schedule_cron, timezone, now)
    job.schedule_cron, job.timezone = schedule_cron, timezone
    if data.enabled is not None:
        job.enabled = data.enabled
    job.updated_at = now
    await db.flush()
    return job


async def running_run(db: AsyncSession, job_id: uuid.UUID) -> uuid.UUID | None:
    return await db.scalar(sa.select(R.id).where(R.job_id == job_id, R.status == "running"))


async def start_manual_run(
    db: AsyncSession, settings: Settings, now: datetime, key: str
) -> uuid.UUID:
    """A manual run of the job, handed to the workers; 409 while one of its runs is running.
    The job's row lock orders this against the leader's fire of the same job."""
    job = await get_job(db, key, for_update=True)
    running = await running_run(db, job.id)
    if running is not None:
        raise Conflict(f"system job {key} is running already (run {running})")
    row = run_row(job.id, "manual", None, now, settings)
    await db.execute(sa.insert(R).values(row))
    await db.execute(sa.insert(Outbox).values(run_message(row["id"], now)))
    return uuid.UUID(str(row["id"]))


def _runs_query() -> sa.Select[SystemJobRun, str]:
    return sa.select(R, J.key.label("job_key")).join(J, J.id == R.job_id)


def run_view(run: SystemJobRun, job_key: str) -> dict[str, Any]:
    data = {c.key: getattr(run, c.key) for c in R.__table__.columns}
    data["job_key"] = job_key
    return data


async def list_runs(
    db: AsyncSession, limit: int, cursor: str | None
) -> list[tuple[SystemJobRun, str]]:
    query = paginate(_runs_query(), R.started_at, R.id, limit, cursor)
    return [(row[0], row[1]) for row in (await db.execute(query)).all()]


async def get_run(db: AsyncSession, run_id: uuid.UUID) -> tuple[SystemJobRun, str]:
    row = (await db.execute(_runs_query().where(R.id == run_id))).first()
    if row is None:
        raise NotFound("system job run not found")
    return row[0], row[1]


async def take_up(
    db: AsyncSession, settings: Settings, now: datetime, run_id: uuid.UUID
) -> str | None:
    """Mark the run taken up by a worker and return its job type; None when it is not to be
    executed: finished, gone, or already taken up by a worker that may have died mid-run (its
    deadline settles it; a run is executed at most once)."""
    row = (
        await db.execute(
            sa.select(R.status, R.picked_up_at, J.job_type)
            .join(J, J.id == R.job_id)
            .where(R.id == run_id)
            .with_for_update(of=R)
        )
    ).first()
    if row is None or row.status != "running" or row.picked_up_at is not None:
        return None
    deadline = now + timedelta(seconds=settings.system_job_time_limit_s)
    await db.execute(
        sa.update(R).where(R.id == run_id).values(picked_up_at=now, deadline_at=deadline)
    )
    return str(row.job_type)


async def finish(
    db: AsyncSession,
    store: Store,
    now: datetime,
    run_id: uuid.UUID,
    *,
    failed: bool,
    message: str | None,
    result: dict[str, Any] | None = None,
) -> bool:
    """Record the run's outcome, once: False when it was no longer running (the deadline
    passed first). A failure raises system_job.failed."""
    running = (
        await db.execute(
            sa.select(R.started_at, J.key)
            .outerjoin(J, R.job_id == J.id)
            .where(R.id == run_id, R.status == "running")
            .with_for_update(of=R)
        )
    ).one_or_none()
    if running is None:
        return False
    started, key = running
    await db.execute(
        sa.update(R)
        .where(R.id == run_id)
        .values(
            status="failed" if failed else "success",
            message=message,
            result=result,
            finished_at=now,
            duration_s=round((now - started).total_seconds(), 3),
            deadline_at=None,
        )
    )
    if failed:
        await _announce_failure(db, store, now, run_id, key, message or "")
    metrics.system_job_run(key or "(deleted)", "failed" if failed else "success")
    return True


async def _announce_failure(
    db: AsyncSession,
    store: Store,
    now: datetime,
    run_id: uuid.UUID,
    key: str | None,
    reason: str,
) -> None:
    data = {"job_key": key, "run_id": str(run_id)}
    teams = (await db.scalars(sa.select(Team.id))).all()
    title = f"System job {key} failed"
    message = (
        f"Run {run_id} of system job {key} failed; admins can read why in "
        "GET /v1/system-job-runs/{id}."
    )
    failed = Event.SYSTEM_JOB_FAILED
    await raise_events(
        db,
        store,
        now,
        [EventToRaise(t, failed, data, f"{run_id}:{t}", title, message) for t in teams],
    )
    log.error("system_job_failed", extra={"run_id": str(run_id), "job": key, "reason": reason})


async def lock_lost(db: AsyncSession, now: datetime, limit: int) -> list[uuid.UUID]:
    """Runs past their deadline and still running, locked (SKIP LOCKED) for `mark_lost`."""
    return list(
        (
            await db.scalars(
                sa.select(R.id)
                .where(R.status == "running", R.deadline_at <= now)
                .order_by(R.deadline_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        ).all()
    )


async def mark_lost(
    db: AsyncSession, store: Store, settings: Settings, now: datetime, run_id: uuid.UUID
) -> bool:
    message = WORKER_LOST.format(limit=settings.system_job_time_limit_s)
    return await finish(db, store, now, run_id, failed=True, message=message)


async def execute_run(
    transaction: Transaction,
    store: Store,
    clock: Clock,
    settings: Settings,
    run_id: uuid.UUID,
) -> bool:
    """A worker's whole handling of a run: take it up, execute its job type (in transactions
    of its own), record the outcome. False when the run was not to be executed."""
    async with transaction() as db:
        job_type = await take_up(db, settings, clock.now(), run_id)
    if job_type is None:
        log.warning("system_job_run_skipped", extra={"run_id": str(run_id)})
        return False
    began = time.monotonic()
    failed, message, result = False, None, None
    try:
        job = JOB_TYPES.get(job_type)
        if job is None:
            raise LookupError(f"no job type {job_type!r} in this version of maintflow")
        result = await job(transaction, store, clock, settings)
        message = f"done in {time.monotonic() - began:.1f} s"
    except Exception as exc:
        log.exception("system_job_error", extra={"run_id": str(run_id)})
        failed, message = True, f"{type(exc).__name__}: {exc}"
    async with transaction() as db:
        await finish(db, store, clock.now(), run_id, failed=failed, message=message, result=result)
    return True
