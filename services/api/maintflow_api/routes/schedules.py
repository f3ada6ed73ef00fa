from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response

from maintflow_api.deps import DB, Cursor, Engineer, IdempotencyKey, Limit, State, Viewer
from maintflow_api.idempotent import run_once
from maintflow_api.responses import errors
from maintflow_core.schemas.common import AwareInstant, Page
from maintflow_core.schemas.schedules import (
    PauseRequest,
    Preview,
    RunNowAccepted,
    ScheduleCreate,
    ScheduleOut,
    ScheduleStats,
    ScheduleUpdate,
)
from maintflow_core.usecases import launch, schedules
from maintflow_core.usecases.pagination import page_of

router = APIRouter(tags=["maintenance schedules"], responses=errors(401))
PREFIX = "/v1/maintenance-schedules"


def _out(schedule: object) -> ScheduleOut:
    return ScheduleOut(**schedules.local_view(schedule))  # type: ignore[arg-type]


@router.post(
    PREFIX,
    status_code=201,
    response_model=ScheduleOut,
    responses=errors(400, 403, 404, 409, 413),
)
async def create_schedule(
    body: ScheduleCreate, db: DB, state: State, principal: Engineer
) -> ScheduleOut:
    schedule = await schedules.create_schedule(
        db, state.clock, state.settings, principal.team_id, body
    )
    await db.commit()
    return _out(schedule)


@router.get(PREFIX, response_model=Page[ScheduleOut])
async def list_schedules(
    db: DB,
    principal: Viewer,
    limit: Limit = 50,
    cursor: Cursor = None,
    flow_id: uuid.UUID | None = None,
) -> Page[ScheduleOut]:
    rows = await schedules.list_schedules(db, principal.team_id, limit, cursor, flow_id)
    items, next_cursor = page_of(rows, limit, lambda s: (s.created_at, s.id))
    return Page[ScheduleOut](items=[_out(s) for s in items], next_cursor=next_cursor)


@router.get(f"{PREFIX}/stats", response_model=ScheduleStats)
async def schedule_stats(db: DB, principal: Viewer) -> ScheduleStats:
    return ScheduleStats(**await schedules.stats(db, principal.team_id))


@router.get(f"{PREFIX}/{{schedule_id}}", response_model=ScheduleOut, responses=errors(404))
async def get_schedule(schedule_id: uuid.UUID, db: DB, principal: Viewer) -> ScheduleOut:
    return _out(await schedules.get_schedule(db, principal.team_id, schedule_id))


@router.patch(
    f"{PREFIX}/{{schedule_id}}", response_model=ScheduleOut, responses=errors(400, 403, 404, 413)
)
async def update_schedule(
    schedule_id: uuid.UUID, body: ScheduleUpdate, db: DB, state: State, principal: Engineer
) -> ScheduleOut:
    schedule = await schedules.update_schedule(
        db, state.clock, state.settings, principal.team_id, schedule_id, body
    )
    await db.commit()
    return _out(schedule)


@router.delete(
    f"{PREFIX}/{{schedule_id}}",
    status_code=204,
    response_class=Response,
    responses=errors(403, 404),
)
async def delete_schedule(schedule_id: uuid.UUID, db: DB, principal: Engineer) -> Response:
    await schedules.delete_schedule(db, principal.team_id, schedule_id)
    await db.commit()
    return Response(status_code=204)


@router.post(
    f"{PREFIX}/{{schedule_id}}/pause",
    response_model=ScheduleOut,
    responses=errors(400, 403, 404, 413),
)
async def pause_schedule(
    schedule_id: uuid.UUID,
    db: DB,
    state: State,
    principal: Engineer,
    body: PauseRequest | None = None,
) -> ScheduleOut:
    reason = body.reason if body else None
    schedule = await schedules.pause_schedule(
        db, state.clock, principal.team_id, schedule_id, reason
    )
    await db.commit()
    return _out(schedule)


@router.post(
    f"{PREFIX}/{{schedule_id}}/resume", response_model=ScheduleOut, responses=errors(403, 404)
)
async def resume_schedule(
    schedule_id: uuid.UUID, db: DB, state: State, principal: Engineer
) -> ScheduleOut:
    schedule = await schedules.resume_schedule(db, state.clock, principal.team_id, schedule_id)
    await db.commit()
    return _out(schedule)


@router.post(
    f"{PREFIX}/{{schedule_id}}/run-now",
    status_code=202,
    response_model=RunNowAccepted,
    responses=errors(403, 404),
)
async def run_now(
    schedule_id: uuid.UUID,
    db: DB,
    state: State,
    principal: Engineer,
    key: IdempotencyKey = None,
) -> Response:
    async def work() -> RunNowAccepted:
        batch_id = await launch.run_now(
            db, state.clock, state.store, principal.team_id, schedule_id
        )
        return RunNowAccepted(batch_id=batch_id)

    return await run_once(db, state, principal, f"run-now:{schedule_id}", key, 202, work)


@router.get(f"{PREFIX}/{{schedule_id}}/preview", response_model=Preview, responses=errors(404))
async def preview(
    schedule_id: uuid.UUID,
    db: DB,
    state: State,
    principal: Viewer,
    count: Annotated[int, Query(ge=1, le=1000)] = 5,
    after: Annotated[
        AwareInstant | None, Query(description="RFC 3339 with an offset; default now.")
    ] = None,
) -> Preview:
    schedule = await schedules.get_schedule(db, principal.team_id, schedule_id)
    times = schedules.preview(schedule, after or state.clock.now(), count)
    return Preview.model_validate({"fire_times": times})


@router.get("/v1/flows/{flow_id}/schedule", response_model=ScheduleOut, responses=errors(404))
async def schedule_of_flow(flow_id: uuid.UUID, db: DB, principal: Viewer) -> ScheduleOut:
    return _out(await schedules.schedule_of_flow(db, principal.team_id, flow_id))
