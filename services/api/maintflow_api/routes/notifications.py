from __future__ import annotations

import uuid

from fastapi import APIRouter

from maintflow_api.deps import DB, Cursor, Limit, State, Viewer
from maintflow_api.responses import AUTHED, errors
from maintflow_core.schemas.common import Page
from maintflow_core.schemas.notifications import MarkedRead, NotificationOut
from maintflow_core.usecases import notifications
from maintflow_core.usecases.pagination import page_of

router = APIRouter(prefix="/v1/notifications", tags=["notifications"], responses=AUTHED)


@router.get(
    "",
    response_model=Page[NotificationOut],
    operation_id="notifications_list",
    summary="List notifications",
)
async def list_notifications(
    db: DB, principal: Viewer, limit: Limit = 50, cursor: Cursor = None, unread: bool = False
) -> Page[NotificationOut]:
    rows = await notifications.list_notifications(db, principal.team_id, limit, cursor, unread)
    items, next_cursor = page_of(rows, limit, lambda n: (n.created_at, n.id))
    return Page[NotificationOut](
        items=[NotificationOut.model_validate(n) for n in items], next_cursor=next_cursor
    )


# Marking read is the reader's own bookkeeping, so viewers may do it too.
@router.post(
    "/read-all",
    response_model=MarkedRead,
    operation_id="notifications_read_all",
    summary="Mark every notification read",
)
async def read_all(db: DB, state: State, principal: Viewer) -> MarkedRead:
    marked = await notifications.mark_all_read(db, state.clock, principal.team_id)
    await db.commit()
    return MarkedRead(marked=marked)


@router.post(
    "/{notification_id}/read",
    response_model=NotificationOut,
    responses=errors(404),
    operation_id="notifications_read",
    summary="Mark a notification read",
)
async def read_one(
    notification_id: uuid.UUID, db: DB, state: State, principal: Viewer
) -> NotificationOut:
    note = await notifications.mark_read(db, state.clock, principal.team_id, notification_id)
    await db.commit()
    return NotificationOut.model_validate(note)
