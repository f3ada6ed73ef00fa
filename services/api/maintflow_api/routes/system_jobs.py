"""System jobs belong to the deployment: any team's admin may read and run them (others: 403);
their runs' results hold totals only."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from maintflow_api.deps import DB, Admin, Cursor, Limit, State
from maintflow_api.responses import AUTHED, errors
from maintflow_core.schemas.common import Page
from maintflow_core.schemas.system_jobs import (
    RunAccepted,
    SystemJobOut,
    SystemJobRunOut,
    SystemJobUpdate,
)
from maintflow_core.usecases import system_jobs
from maintflow_core.usecases.pagination import page_of

router = APIRouter(tags=["system jobs"], responses={**AUTHED, **errors(403)})

DEPLOYMENT_WIDE = """System jobs belong to the deployment, not to a team: every team's admins
see and change the same jobs and runs (anyone else: 403). A run's `result` holds totals only,
never another team's data."""


@router.get(
    "/v1/system-jobs",
    response_model=Page[SystemJobOut],
    operation_id="system_jobs_list",
    summary="List the deployment's system jobs (admin)",
    description=DEPLOYMENT_WIDE,
)
async def list_jobs(
    db: DB,
    principal: Admin,
    limit: Limit = 50,
    cursor: Cursor = None,
    visible_in_ui: bool | None = None,
) -> Page[SystemJobOut]:
    rows = await system_jobs.list_jobs(db, limit, cursor, visible_in_ui)
    items, next_cursor = page_of(rows, limit, lambda j: (j.created_at, j.id))
    return Page[SystemJobOut](
        items=[SystemJobOut.model_validate(j) for j in items], next_cursor=next_cursor
    )


@router.patch(
    "/v1/system-jobs/{key}",
    response_model=SystemJobOut,
    responses=errors(400, 404, 413),
    operation_id="system_jobs_update",
    summary="Enable, disable or reschedule a system job (admin)",
    description=f"""{DEPLOYMENT_WIDE}

`schedule_cron` (a cron expression, as for schedules) in `timezone` (IANA); `null` leaves
the job to manual runs only.
A change of schedule, or enabling the job again, counts its next run from now: no run is
made up for the time it was disabled.""",
)
async def update_job(
    key: str, body: SystemJobUpdate, db: DB, state: State, principal: Admin
) -> SystemJobOut:
    job = await system_jobs.update_job(db, state.settings, state.clock.now(), key, body)
    await db.commit()
    return SystemJobOut.model_validate(job)


@router.post(
    "/v1/system-jobs/{key}/run",
    status_code=202,
    response_model=RunAccepted,
    responses=errors(404, 409),
    operation_id="system_jobs_run",
    summary="Start a manual run of a system job (admin; 409 while one is running)",
    description=f"""{DEPLOYMENT_WIDE}

Admins only. The run is made by the workers (`trigger: manual`), also for a disabled job;
follow it with `GET /v1/system-job-runs/{{run_id}}`. One run of a job at a time: 409 while
one is `running`.""",
)
async def run_job(key: str, db: DB, state: State, principal: Admin) -> RunAccepted:
    run_id = await system_jobs.start_manual_run(db, state.settings, state.clock.now(), key)
    await db.commit()
    return RunAccepted(run_id=run_id)


@router.get(
    "/v1/system-job-runs",
    response_model=Page[SystemJobRunOut],
    operation_id="system_job_runs_list",
    summary="System job runs, newest first (admin)",
)
async def list_runs(
    db: DB, principal: Admin, limit: Limit = 50, cursor: Cursor = None
) -> Page[SystemJobRunOut]:
    rows = await system_jobs.list_runs(db, limit, cursor)
    items, next_cursor = page_of(rows, limit, lambda r: (r[0].started_at, r[0].id))
    return Page[SystemJobRunOut](
        items=[SystemJobRunOut(**system_jobs.run_view(run, key)) for run, key in items],
        next_cursor=next_cursor,
    )


@router.get(
    "/v1/system-job-runs/{run_id}",
    response_model=SystemJobRunOut,
    responses=errors(404),
    operation_id="system_job_runs_get",
    summary="One system job run (admin)",
)
async def get_run(run_id: uuid.UUID, db: DB, principal: Admin) -> SystemJobRunOut:
    run, key = await system_jobs.get_run(db, run_id)
    return SystemJobRunOut(**system_jobs.run_view(run, key))
