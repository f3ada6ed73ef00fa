from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response

from maintflow_api.deps import DB, Cursor, Engineer, IdempotencyKey, Limit, State, Viewer
from maintflow_api.etag import READ, WRITTEN, IfMatch, IfNoneMatch, require_match, tagged
from maintflow_api.idempotent import run_once
from maintflow_api.ratelimit import LAUNCH_LIMITED
from maintflow_api.responses import AUTHED, errors
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

router = APIRouter(tags=["maintenance schedules"], responses=AUTHED)
PREFIX = "/v1/maintenance-schedules"


RULES = """Give `cron_expression` (5 fields, `L`, `W` and `#n` allowed; a 6th field, seconds,
last, only where `MAINTFLOW_MIN_SCHEDULE_INTERVAL_S` allows fires that often) or `recurrence`
(`once`, `daily`, `weekly`, `monthly`), read in the schedule's IANA `timezone`.

Daylight-saving changes follow the classic cron rule:

- hour field not starting with `*` (a time of day: `30 2 * * *`, `0 9,17 * * 1-5`): a wall time
  skipped by a jump forward fires once, at the first wall time after the gap (02:30 on a
  02:00→03:00 night fires at 03:00); a wall time that occurs twice fires once, at its first
  occurrence.
- hour field starting with `*` (`*/15 * * * *`, `0 * * * *`): follows real time; nothing fires
  for wall times that do not exist, and wall times that occur twice fire at each occurrence.

A monthly recurrence on day 29, 30 or 31 does not fire in months without that day (the
response's `skipped_months` names them; `"day": "last"` fires on every month's last day).
Bad cron or unknown timezone: 422 naming the field. Flow not `maintenance`: 400."""


def _out(schedule: object) -> ScheduleOut:
    return ScheduleOut(**schedules.local_view(schedule))  # type: ignore[arg-type]


@router.post(
    PREFIX,
    status_code=201,
    response_model=ScheduleOut,
    responses=errors(400, 403, 404, 409, 413),
    operation_id="schedules_create",
    summary="Schedule a maintenance flow",
    description=f"{RULES}\n\nThe flow already has a schedule: 409.",
)
async def create_schedule(
    body: ScheduleCreate, db: DB, state: State, principal: Engineer
) -> ScheduleOut:
    schedule = await schedules.create_schedule(
        db, state.clock, state.settings, principal.team_id, body
    )
    await db.commit()
    return _out(schedule)


@router.get(
    PREFIX,
    response_model=Page[ScheduleOut],
    operation_id="schedules_list",
    summary="List schedules",
)
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


@router.get(
    f"{PREFIX}/stats",
    response_model=ScheduleStats,
    operation_id="schedules_stats",
    summary="Count schedules and their batches by state",
)
async def schedule_stats(db: DB, principal: Viewer) -> ScheduleStats:
    return ScheduleStats(**await schedules.stats(db, principal.team_id))


@router.get(
    f"{PREFIX}/{{schedule_id}}",
    response_model=ScheduleOut,
    responses={**errors(404), **READ},
    operation_id="schedules_get",
    summary="Read a schedule",
)
async def get_schedule(
    schedule_id: uuid.UUID, db: DB, principal: Viewer, if_none_match: IfNoneMatch = None
) -> Response:
    schedule = await schedules.get_schedule(db, principal.team_id, schedule_id)
    return tagged(_out(schedule), if_none_match)


@router.patch(
    f"{PREFIX}/{{schedule_id}}",
    response_model=ScheduleOut,
    responses={**errors(400, 403, 404, 412, 413), **WRITTEN},
    operation_id="schedules_update",
    summary="Change a schedule",
    description=f"{RULES}\n\nA change of rule or timezone recomputes `next_run_at`; "
    "`is_active: false` pauses (without a reason), `true` resumes.",
)
async def update_schedule(
    schedule_id: uuid.UUID,
    body: ScheduleUpdate,
    db: DB,
    state: State,
    principal: Engineer,
    if_match: IfMatch = None,
) -> Response:
    await require_match(if_match, schedules.get_schedule, db, principal.team_id, schedule_id, _out)
    schedule = await schedules.update_schedule(
        db, state.clock, state.settings, principal.team_id, schedule_id, body
    )
    await db.commit()
    return tagged(_out(schedule))


@router.delete(
    f"{PREFIX}/{{schedule_id}}",
    status_code=204,
    response_class=Response,
    responses=errors(403, 404, 412),
    operation_id="schedules_delete",
    summary="Delete a schedule",
)
async def delete_schedule(
    schedule_id: uuid.UUID, db: DB, principal: Engineer, if_match: IfMatch = None
) -> Response:
    await require_match(if_match, schedules.get_schedule, db, principal.team_id, schedule_id, _out)
    await schedules.delete_schedule(db, principal.team_id, schedule_id)
    await db.commit()
    return Response(status_code=204)


@router.post(
    f"{PREFIX}/{{schedule_id}}/pause",
    response_model=ScheduleOut,
    responses=errors(400, 403, 404, 413),
    operation_id="schedules_pause",
    summary="Pause a schedule: nothing fires until it is resumed",
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
    f"{PREFIX}/{{schedule_id}}/resume",
    response_model=ScheduleOut,
    responses=errors(403, 404),
    operation_id="schedules_resume",
    summary="Resume a paused schedule",
    description="`next_run_at` from now; instants missed while paused follow the `misfire_policy`.",
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
    operation_id="schedules_run_now",
    dependencies=LAUNCH_LIMITED,
    summary="Fire a schedule now, outside its rule",
    description="A batch like a scheduled one, for the targets of the schedule's list at the "
    "moment of the request; its sessions exist within seconds.",
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


@router.get(
    f"{PREFIX}/{{schedule_id}}/preview",
    response_model=Preview,
    responses=errors(404),
    operation_id="schedules_preview",
    summary="The next fire times, by the scheduler's own code",
)
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
    return Preview.model_validate(schedules.preview(schedule, after or state.clock.now(), count))


@router.get(
    "/v1/flows/{flow_id}/schedule",
    response_model=ScheduleOut,
    responses={**errors(404), **READ},
    operation_id="schedules_of_flow",
    summary="The schedule of a flow (404 when it has none)",
)
async def schedule_of_flow(
    flow_id: uuid.UUID, db: DB, principal: Viewer, if_none_match: IfNoneMatch = None
) -> Response:
    schedule = await schedules.schedule_of_flow(db, principal.team_id, flow_id)
    return tagged(_out(schedule), if_none_match)
