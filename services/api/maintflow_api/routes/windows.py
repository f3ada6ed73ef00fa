from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response

from maintflow_api.deps import DB, Cursor, Engineer, Limit, State, Viewer
from maintflow_api.etag import READ, WRITTEN, IfMatch, IfNoneMatch, require_match, tagged
from maintflow_api.responses import AUTHED, errors, transition_table
from maintflow_core.models.windows import WindowStatus
from maintflow_core.schemas.common import AwareInstant, Page
from maintflow_core.schemas.windows import (
    WindowCreate,
    WindowOut,
    WindowPost,
    WindowUpdateOut,
    WindowUpdateRequest,
)
from maintflow_core.usecases import windows
from maintflow_core.usecases.pagination import page_of

router = APIRouter(tags=["maintenance windows"], responses=AUTHED)
PREFIX = "/v1/maintenance-windows"
ONE = f"{PREFIX}/{{window_id}}"


TRANSITION_RULES = f"""Status changes allowed (any other is 409):

{transition_table(windows.TRANSITIONS, WindowStatus)}

The scheduler moves a window `scheduled → in_progress` at `start_at` and `in_progress →
completed` at `end_at`, each with an update entry (`automatic: true`) and a notification
(`window.started`, `window.completed`)."""


@router.post(
    PREFIX,
    status_code=201,
    response_model=WindowOut,
    responses=errors(400, 403, 413),
    operation_id="windows_create",
    summary="Create a maintenance window",
    description="The window starts `scheduled`; `end_at` must be after `start_at` (else 422).",
)
async def create_window(body: WindowCreate, db: DB, state: State, principal: Engineer) -> WindowOut:
    window = await windows.create_window(
        db, state.clock.now(), principal.team_id, principal.user_id, body
    )
    await db.commit()
    return WindowOut.model_validate(window)


@router.get(
    PREFIX,
    response_model=Page[WindowOut],
    operation_id="windows_list",
    summary="List maintenance windows (by status, or covering an instant)",
    description="Latest start first. With `active_at` and no `status`, cancelled windows are "
    "left out.",
)
async def list_windows(
    db: DB,
    principal: Viewer,
    limit: Limit = 50,
    cursor: Cursor = None,
    status: WindowStatus | None = None,
    active_at: Annotated[
        AwareInstant | None,
        Query(description="RFC 3339 with an offset: windows whose span covers this instant."),
    ] = None,
) -> Page[WindowOut]:
    rows = await windows.list_windows(db, principal.team_id, limit, cursor, status, active_at)
    items, next_cursor = page_of(rows, limit, lambda w: (w.start_at, w.id))
    return Page[WindowOut](
        items=[WindowOut.model_validate(w) for w in items], next_cursor=next_cursor
    )


@router.get(
    ONE,
    response_model=WindowOut,
    responses={**errors(404), **READ},
    operation_id="windows_get",
    summary="Get a maintenance window",
)
async def get_window(
    window_id: uuid.UUID, db: DB, principal: Viewer, if_none_match: IfNoneMatch = None
) -> Response:
    window = await windows.get_window(db, principal.team_id, window_id)
    return tagged(WindowOut.model_validate(window), if_none_match)


@router.patch(
    ONE,
    response_model=WindowOut,
    responses={**errors(400, 403, 404, 409, 412, 413), **WRITTEN},
    operation_id="windows_update",
    summary="Edit a maintenance window (its times only while still ahead)",
    description="`title`, `description` and `targets` change in any status. `start_at` changes "
    "only while the window is `scheduled`, `end_at` also while it is `in_progress`; any other "
    "change of time is 409. `end_at` must stay after `start_at` (else 422). The status "
    "changes through `POST …/updates` and `POST …/cancel`, not here.",
)
async def update_window(
    window_id: uuid.UUID,
    body: WindowUpdateRequest,
    db: DB,
    state: State,
    principal: Engineer,
    if_match: IfMatch = None,
) -> Response:
    await require_match(
        if_match, windows.get_window, db, principal.team_id, window_id, WindowOut.model_validate
    )
    window = await windows.update_window(db, state.clock.now(), principal.team_id, window_id, body)
    await db.commit()
    return tagged(WindowOut.model_validate(window))


@router.post(
    f"{ONE}/cancel",
    response_model=WindowOut,
    responses=errors(403, 404, 409),
    operation_id="windows_cancel",
    summary="Cancel a maintenance window that is not over",
    description="Moves a `scheduled` or `in_progress` window to `cancelled` with an update "
    "entry; a `completed` or `cancelled` one: 409.",
)
async def cancel_window(
    window_id: uuid.UUID, db: DB, state: State, principal: Engineer
) -> WindowOut:
    window = await windows.cancel_window(
        db, state.store, state.clock.now(), principal.team_id, principal.user_id, window_id
    )
    await db.commit()
    return WindowOut.model_validate(window)


@router.post(
    f"{ONE}/updates",
    status_code=201,
    response_model=WindowUpdateOut,
    responses=errors(400, 403, 404, 409, 413),
    operation_id="windows_updates_create",
    summary="Post an update to a window, optionally changing its status",
    description=TRANSITION_RULES,
)
async def post_update(
    window_id: uuid.UUID, body: WindowPost, db: DB, state: State, principal: Engineer
) -> WindowUpdateOut:
    entry = await windows.post_update(
        db, state.store, state.clock.now(), principal.team_id, principal.user_id, window_id, body
    )
    await db.commit()
    return WindowUpdateOut.model_validate(entry)


@router.get(
    f"{ONE}/updates",
    response_model=Page[WindowUpdateOut],
    responses=errors(404),
    operation_id="windows_updates_list",
    summary="A window's update history, newest first",
)
async def list_updates(
    window_id: uuid.UUID, db: DB, principal: Viewer, limit: Limit = 50, cursor: Cursor = None
) -> Page[WindowUpdateOut]:
    items, next_cursor = await windows.list_updates(db, principal.team_id, window_id, limit, cursor)
    return Page[WindowUpdateOut](
        items=[WindowUpdateOut.model_validate(u) for u in items], next_cursor=next_cursor
    )
