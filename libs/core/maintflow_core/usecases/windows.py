"""Maintenance windows: create, read, edit their span, cancel, and their update history. Every
status change — by a user or by the scheduler at the window's start and end (`due/windows.py`)
— goes through `move`: the status, the entry of the history and the event in one transaction,
under the window's row lock."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from maintflow_core.db.store import Store
from maintflow_core.errors import IllegalTransition, InvalidField
from maintflow_core.models import MaintenanceWindow, WindowUpdate
from maintflow_core.schemas.windows import WindowCreate, WindowPost, WindowUpdateRequest
from maintflow_core.usecases.events import Event, raise_event
from maintflow_core.usecases.owned import get_owned
from maintflow_core.usecases.pagination import paginate

W = MaintenanceWindow
# Where each status may move; nothing leaves `completed` or `cancelled`.
TRANSITIONS: dict[str, frozenset[str]] = {
    "scheduled": frozenset({"in_progress", "completed", "cancelled"}),
    "in_progress": frozenset({"completed", "cancelled"}),
}
EVENTS = {"in_progress": Event.WINDOW_STARTED, "completed": Event.WINDOW_COMPLETED}
AUTOMATIC_MESSAGES = {
    "in_progress": "Maintenance started automatically",
    "completed": "Maintenance completed automatically",
}
CANCELLED_MESSAGE = "Maintenance cancelled"


def next_transition(status: str, start_at: datetime, end_at: datetime) -> datetime | None:
    """The instant the scheduler next acts on a window in `status`."""
    return {"scheduled": start_at, "in_progress": end_at}.get(status)


def check_span(start_at: datetime, end_at: datetime) -> None:
    if end_at <= start_at:
        raise InvalidField("end_at", "must be after start_at")


async def create_window(
    db: AsyncSession, now: datetime, team_id: uuid.UUID, author_id: uuid.UUID, data: WindowCreate
) -> MaintenanceWindow:
    check_span(data.start_at, data.end_at)
    window = W(
        id=uuid.uuid4(),
        team_id=team_id,
        title=data.title,
        description=data.description,
        start_at=data.start_at,
        end_at=data.end_at,
        targets=list(data.targets),
        status="scheduled",
        next_transition_at=data.start_at,
        updates_count=0,
        created_by=author_id,
        created_at=now,
        updated_at=now,
    )
    db.add(window)
    await db.flush()
    return window


async def get_window(
    db: AsyncSession, team_id: uuid.UUID, window_id: uuid.UUID, *, for_update: bool = False
) -> MaintenanceWindow:
    return await get_owned(db, W, team_id, window_id, "maintenance window", for_update=for_update)


async def list_windows(
    db: AsyncSession,
    team_id: uuid.UUID,
    limit: int,
    cursor: str | None,
    status: str | None = None,
    active_at: datetime | None = None,
) -> list[MaintenanceWindow]:
    """The team's windows, latest start first; `active_at`: those covering that instant (a
    cancelled window covers nothing unless `status` asks for cancelled ones)."""
    query = sa.select(W).where(W.team_id == team_id)
    if status is not None:
        query = query.where(W.status == status)
    if active_at is not None:
        query = query.where(W.start_at <= active_at, W.end_at > active_at)
        if status is None:
            query = query.where(W.status != "cancelled")
    return list((await db.scalars(paginate(query, W.start_at, W.id, limit, cursor))).all())


async def update_window(
    db: AsyncSession,
    now: datetime,
    team_id: uuid.UUID,
    window_id: uuid.UUID,
    data: WindowUpdateRequest,
) -> MaintenanceWindow:
    """Edit a window. Its times move only while they are still ahead of it: start_at while it
    is scheduled, end_at until it is over. The running scheduler reads next_transition_at on
    its next tick."""
    window = await get_window(db, team_id, window_id, for_update=True)
    changes = {name: getattr(data, name) for name in data.model_fields_set}
    for name in ("title", "start_at", "end_at", "targets"):
        if name in changes and changes[name] is None:
            raise InvalidField(name, "must not be null")
    movable = {"scheduled": {"start_at", "end_at"}, "in_progress": {"end_at"}}.get(
        window.status, set()
    )
    for name in ("start_at", "end_at"):
        if name in changes and name not in movable:
            raise IllegalTransition(f"{name} of a window that is {window.status} cannot change")
    start_at = changes.get("start_at", window.start_at)
    end_at = changes.get("end_at", window.end_at)
    check_span(start_at, end_at)
    for name, value in changes.items():
        setattr(window, name, list(value) if name == "targets" else value)
    window.next_transition_at = next_transition(window.status, start_at, end_at)
    window.updated_at = now
    await db.flush()
    return window


async def move(
    db: AsyncSession,
    store: Store,
    now: datetime,
    window: MaintenanceWindow,
    new_status: str | None,
    message: str,
    *,
    author_id: uuid.UUID | None,
) -> WindowUpdate:
    """Append an entry to the window's history and, with `new_status`, move it there (409 when
    the state machine forbids it), raising the status's event. The window's row must be locked
    by the caller's transaction; `author_id` None is the scheduler."""
    old_status = window.status
    if new_status is not None:
        if new_status not in TRANSITIONS.get(old_status, frozenset()):
            raise IllegalTransition(f"a {old_status} window cannot move to {new_status}")
        window.status = new_status
        window.next_transition_at = next_transition(new_status, window.start_at, window.end_at)
        window.updated_at = now
    window.updates_count += 1
    entry = WindowUpdate(
        id=uuid.uuid4(),
        window_id=window.id,
        team_id=window.team_id,
        seq=window.updates_count,
        author_id=author_id,
        automatic=author_id is None,
        message=message,
        old_status=old_status if new_status else None,
        new_status=new_status,
        created_at=now,
    )
    db.add(entry)
    await db.flush()
    event = EVENTS.get(new_status or "")
    if event is not None:
        await raise_event(
            db,
            store,
            now,
            window.team_id,
            event,
            _event_data(window, entry),
            window.id,
            title=f"{window.title}: {'started' if new_status == 'in_progress' else 'completed'}",
            message=message,
        )
    return entry


def _event_data(window: MaintenanceWindow, entry: WindowUpdate) -> dict[str, Any]:
    return {
        "window_id": str(window.id),
        "title": window.title,
        "status": window.status,
        "start_at": window.start_at.isoformat(),
        "end_at": window.end_at.isoformat(),
        "targets": window.targets,
        "automatic": entry.automatic,
    }


async def post_update(
    db: AsyncSession,
    store: Store,
    now: datetime,
    team_id: uuid.UUID,
    author_id: uuid.UUID,
    window_id: uuid.UUID,
    data: WindowPost,
) -> WindowUpdate:
    window = await get_window(db, team_id, window_id, for_update=True)
    return await move(db, store, now, window, data.status_change, data.message, author_id=author_id)


async def cancel_window(
    db: AsyncSession,
    store: Store,
    now: datetime,
    team_id: uuid.UUID,
    author_id: uuid.UUID,
    window_id: uuid.UUID,
) -> MaintenanceWindow:
    window = await get_window(db, team_id, window_id, for_update=True)
    await move(db, store, now, window, "cancelled", CANCELLED_MESSAGE, author_id=author_id)
    return window


UPDATES_CURSOR = "cursor"


async def list_updates(
    db: AsyncSession, team_id: uuid.UUID, window_id: uuid.UUID, limit: int, cursor: str | None
) -> tuple[list[WindowUpdate], str | None]:
    """The window's history, newest first. Entries are numbered in the order they were written
    (two written in one transaction share their time), so the cursor is an entry number."""
    await get_window(db, team_id, window_id)
    query = sa.select(WindowUpdate).where(WindowUpdate.window_id == window_id)
    if cursor is not None:
        if not cursor.isdigit() or len(cursor) > 9:
            raise InvalidField(UPDATES_CURSOR, "not a cursor returned by this API")
        query = query.where(WindowUpdate.seq < int(cursor))
    rows = list((await db.scalars(query.order_by(WindowUpdate.seq.desc()).limit(limit + 1))).all())
    items = rows[:limit]
    return items, str(items[-1].seq) if len(rows) > limit else None
