from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException
from sse_starlette import EventSourceResponse
from starlette.background import BackgroundTask

from maintflow_api.deps import DB, Cursor, Limit, State, Viewer
from maintflow_api.responses import AUTHED, errors
from maintflow_api.streams import Stream, StreamsFull
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


# Seconds a client turned away (too many streams open) is asked to wait before trying again.
STREAM_RETRY_AFTER_S = 5
# A comment line this often keeps idle connections (and proxies) from timing out.
STREAM_KEEPALIVE_S = 15
# A client that takes longer than this to accept one message (or keep-alive) is dropped.
STREAM_SEND_TIMEOUT_S = 30


@router.get(
    "/stream",
    operation_id="notifications_stream",
    summary="Live stream of the team's notifications (Server-Sent Events)",
    description="One `event:`/`id:`/`data:` message per new notification of the caller's team "
    "(`event` its event name, `id` its id, `data` the notification as JSON), a keep-alive "
    "comment every 15 s. `Last-Event-ID` resumes after that notification, with nothing lost "
    "or repeated. 503 with `Retry-After` when the API process has "
    "`MAINTFLOW_SSE_MAX_STREAMS` streams open.",
    response_class=EventSourceResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "The stream."},
        503: {
            **errors(503)[503],
            "description": "Too many streams open on this API process (retry after "
            "`Retry-After` seconds), or the database is unreachable.",
            "headers": {
                "Retry-After": {
                    "description": "Seconds to wait before opening the stream again.",
                    "schema": {"type": "integer"},
                }
            },
        },
    },
)
async def stream(
    db: DB,
    state: State,
    principal: Viewer,
    last_event_id: Annotated[
        str | None,
        Header(
            alias="Last-Event-ID",
            description="The id of the last message received: the stream resumes after it.",
        ),
    ] = None,
) -> EventSourceResponse:
    hub = state.streams
    if hub is None:
        raise HTTPException(503, "live streams are not running in this process")
    after = await notifications.stream_start(db, principal.team_id, last_event_id)
    # The stream reads in short sessions of its own: give this request's connection back now.
    await db.close()
    try:
        opened = hub.open_stream(principal.team_id, after)
    except StreamsFull:
        raise HTTPException(
            503,
            "too many notification streams are open on this API process; retry later",
            headers={"Retry-After": str(STREAM_RETRY_AFTER_S)},
        ) from None
    return EventSourceResponse(
        _messages(opened),
        ping=STREAM_KEEPALIVE_S,
        send_timeout=STREAM_SEND_TIMEOUT_S,
        # Closes the stream even if its generator never ran (the client left at once).
        background=BackgroundTask(opened.close),
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _messages(opened: Stream) -> AsyncIterator[bytes]:
    try:
        async for message in opened.messages():
            yield message.frame
    finally:
        opened.close()


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
