from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from maintflow_api.deps import DB, Cursor, Engineer, IdempotencyKey, Limit, State, Viewer
from maintflow_api.idempotent import run_once
from maintflow_api.ratelimit import LAUNCH_LIMITED
from maintflow_api.responses import AUTHED, errors, serialized, transition_table
from maintflow_core.schemas.batches import (
    BatchDetail,
    BatchLaunch,
    BatchLaunched,
    BatchOut,
    SessionBrief,
    SessionOut,
    SessionStatus,
    SessionUpdate,
    Trigger,
)
from maintflow_core.schemas.common import AwareInstant, Label, Page
from maintflow_core.usecases import batches, launch, sessions
from maintflow_core.usecases.pagination import page_of

router = APIRouter(tags=["sessions and batches"], responses=AUTHED)


_UPDATE_RULES = f"""Status changes allowed (any other is 409; the same status again is no change):

{transition_table(sessions.TRANSITIONS, sessions.TRANSITIONS)}

`current_step_id` must name a step of the session's snapshot of the flow (else 422)."""


@router.post(
    "/v1/sessions/batch",
    status_code=201,
    response_model=BatchLaunched,
    responses=errors(400, 403, 404, 413),
    operation_id="batches_launch",
    dependencies=LAUNCH_LIMITED,
    summary="Launch a batch of sessions",
)
async def launch_batch(
    body: BatchLaunch, db: DB, state: State, principal: Engineer, key: IdempotencyKey = None
) -> Response:
    """One `pending` session per target, each with a snapshot of the flow's steps.

    Give exactly one target source: `targets` (the labels themselves), `target_list_id` (a
    saved list, as it is now) or `from_batch_id` (the targets of an earlier batch). None or
    several: 422 naming them; an empty `targets`: 422. The flow must be a maintenance flow
    (else 400)."""

    async def work() -> BatchLaunched:
        launched = await launch.launch_batch(db, state.clock, state.store, principal.team_id, body)
        # One validation of the whole response from plain dicts (pydantic-core), not 10,000
        # model constructions in Python.
        return BatchLaunched.model_validate(
            {
                "batch_id": launched.batch_id,
                "count": len(launched.sessions),
                "sessions": launched.sessions,
            }
        )

    return await run_once(db, state, principal, "sessions.batch", key, 201, work, body)


@router.get(
    "/v1/sessions",
    response_model=Page[SessionOut],
    operation_id="sessions_list",
    summary="List sessions",
)
async def list_sessions(
    db: DB,
    principal: Viewer,
    limit: Limit = 50,
    cursor: Cursor = None,
    batch_id: uuid.UUID | None = None,
    flow_id: uuid.UUID | None = None,
    status: SessionStatus | None = None,
    target_label: Annotated[
        Label | None, Query(description="Sessions of this target (exact label).")
    ] = None,
) -> Response:
    where = sessions.SessionFilter(batch_id, flow_id, status, target_label)
    rows = await sessions.list_sessions(db, principal.team_id, limit, cursor, where)
    items, next_cursor = page_of(rows, limit, lambda s: (s.created_at, s.id))
    page = {"items": [s._asdict() for s in items], "next_cursor": next_cursor}
    return serialized(Page[SessionOut].model_validate(page))


@router.get(
    "/v1/sessions/{session_id}",
    response_model=SessionOut,
    responses=errors(404),
    operation_id="sessions_get",
    summary="Read a session",
)
async def get_session(session_id: uuid.UUID, db: DB, principal: Viewer) -> SessionOut:
    return SessionOut.model_validate(await sessions.get_session(db, principal.team_id, session_id))


@router.patch(
    "/v1/sessions/{session_id}",
    response_model=SessionOut,
    responses=errors(400, 403, 404, 409, 413),
    operation_id="sessions_update",
    summary="Move a session on: status, current step, notes",
    description=_UPDATE_RULES,
)
async def update_session(
    session_id: uuid.UUID, body: SessionUpdate, db: DB, state: State, principal: Engineer
) -> SessionOut:
    session = await sessions.update_session(
        db, state.clock, state.store, principal.team_id, session_id, body
    )
    await db.commit()
    return SessionOut.model_validate(session)


@router.get(
    "/v1/batches",
    response_model=Page[BatchOut],
    operation_id="batches_list",
    summary="List batches with their progress",
)
async def list_batches(
    db: DB,
    principal: Viewer,
    limit: Limit = 50,
    cursor: Cursor = None,
    flow_id: uuid.UUID | None = None,
    schedule_id: uuid.UUID | None = None,
    trigger: Trigger | None = None,
    created_after: Annotated[
        AwareInstant | None, Query(description="Created after this instant (RFC 3339).")
    ] = None,
    created_before: Annotated[
        AwareInstant | None, Query(description="Created before this instant (RFC 3339).")
    ] = None,
) -> Response:
    where = batches.BatchFilter(flow_id, schedule_id, trigger, created_after, created_before)
    views = await batches.list_batches(db, principal.team_id, limit, cursor, where)
    items, next_cursor = page_of(views, limit, lambda v: (v.batch.created_at, v.batch.id))
    # One validation of the whole page from plain dicts (pydantic-core): faster than building
    # each item in Python, and still checked against the response model.
    page = {"items": [v.as_dict() for v in items], "next_cursor": next_cursor}
    return serialized(Page[BatchOut].model_validate(page))


@router.get(
    "/v1/batches/{batch_id}",
    response_model=BatchDetail,
    responses=errors(404),
    operation_id="batches_get",
    summary="Read a batch and its sessions",
)
async def get_batch(batch_id: uuid.UUID, db: DB, principal: Viewer) -> BatchDetail:
    batch = await batches.get_batch(db, principal.team_id, batch_id)
    counts = await batches.status_counts(db, [batch.id])
    view = batches.BatchView(batch, counts.get(batch.id, {}))
    briefs = await sessions.session_briefs(db, batch.id)
    return BatchDetail(**view.as_dict(), sessions=[SessionBrief(**s) for s in briefs])
