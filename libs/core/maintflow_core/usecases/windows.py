"""Maintenance windows: create, read, edit their span, cancel, and their update history. Every
status change — by a user or by the scheduler at the window's start and end (`due/windows.py`)
— goes through `move`: the status, the entry of the history and the event in one transaction,
under the window's row lock."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from maintflow_core.db.store import Store
from maintflow_core.errors import IllegalTransition, InvalidField
from maintflow_core.models import MaintenanceWindow, WindowUpdate
from maintflow_core.schemas.windows import WindowCreate, WindowPost, WindowUpdateRequest
from maintflow_core.usecases.events import Event, EventToRaise, raise_events
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


class WindowState(NamedTuple):
    """What a status change reads and writes of a window."""

    id: uuid.UUID
    team_id: uuid.UUID
    title: str
    start_at: datetime
    end_at: datetime
    targets: list[Any]
    status: str
    updates_count: int


STATE_COLUMNS = tuple(getattr(W, name) for name in WindowState._fields)


def state_of(window: MaintenanceWindow) -> WindowState:
    return WindowState(*(getattr(window, name) for name in WindowState._fields))


class Entry(NamedTuple):
    """One entry to append to a window's history (`window`: the window before it)."""

    window: WindowState
    new_status: str | None
    message: str
    author_id: uuid.UUID | None


def plan_entry(
    window: WindowState, new_status: str | None, message: str, author_id: uuid.UUID | None
) -> tuple[Entry, WindowState]:
    """Pure: the entry, and the window after it; IllegalTransition (409) when the state machine
    forbids the move."""
    if new_status is not None and new_status not in TRANSITIONS.get(window.status, frozenset()):
        raise IllegalTransition(f"a {window.status} window cannot move to {new_status}")
    after = window._replace(
        status=new_status or window.status, updates_count=window.updates_count + 1
    )
    return Entry(window, new_status, message, author_id), after


def _entry_row(entry: Entry, now: datetime) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "window_id": entry.window.id,
        "team_id": entry.window.team_id,
        "seq": entry.window.updates_count + 1,
        "author_id": entry.author_id,
        "automatic": entry.author_id is None,
        "message": entry.message,
        "old_status": entry.window.status if entry.new_status else None,
        "new_status": entry.new_status,
        "created_at": now,
    }


async def write_entries(
    db: AsyncSession,
    store: Store,
    now: datetime,
    entries: Sequence[Entry],
    windows: Sequence[WindowState],
) -> list[dict[str, Any]]:
    """Write `entries` (planned by `plan_entry`, in order) and the `windows` as they end up, in
    the caller's transaction, whose locks on those windows' rows it relies on; then raise each
    status's event. Every status change of a window, by a user or by the scheduler, comes
    here. A statement per kind of row, whatever the number of windows."""
    rows = [_entry_row(entry, now) for entry in entries]
    if not rows:
        return rows
    await db.execute(sa.insert(WindowUpdate), rows)
    await db.execute(
        sa.update(W),
        [
            {
                "id": w.id,
                "status": w.status,
                "next_transition_at": next_transition(w.status, w.start_at, w.end_at),
                "updates_count": w.updates_count,
                "updated_at": now,
            }
            for w in windows
        ],
    )
    # Events last (they lock each team's counter row until commit), all in one call.
    await raise_events(
        db,
        store,
        now,
        [
            _event(event, entry, row)
            for entry, row in zip(entries, rows, strict=True)
            if (event := EVENTS.get(row["new_status"])) is not None
        ],
    )
    return rows


def _event(event: Event, entry: Entry, row: dict[str, Any]) -> EventToRaise:
    w = entry.window
    return EventToRaise(
        w.team_id,
        event,
        {
            "window_id": str(w.id),
            "title": w.title,
            "status": row["new_status"],
            "start_at": w.start_at.isoformat(),
            "end_at": w.end_at.isoformat(),
            "targets": w.targets,
            "automatic": row["automatic"],
        },
        w.id,
        title=f"{w.title}: {'started' if event == Event.WINDOW_STARTED else 'completed'}",
        message=row["message"],
    )


async def move(
    db: AsyncSession,
    store: Store,
    now: datetime,
    window: MaintenanceWindow,
    new_status: str | None,
    message: str,
    *,
    author_id: uuid.UUID,
) -> dict[str, Any]:
    """A user's entry on `window` (locked by the caller), moving it to `new_status` if given.
    Returns the entry; `window` is read again."""
    entry, after = plan_entry(state_of(window), new_status, message, author_id)
    (row,) = await write_entries(db, store, now, [entry], [after])
    await db.refresh(window)
    return row


async def post_update(
    db: AsyncSession,
    store: Store,
    now: datetime,
    team_id: uuid.UUID,
    author_id: uuid.UUID,
    window_id: uuid.UUID,
    data: WindowPost,
) -> dict[str, Any]:
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
