"""Reading sessions (one, a page, a batch's briefs and targets) and moving them through their
states: pending → in_progress → completed | failed, and pending | in_progress → cancelled."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from functools import cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from maintflow_core.clock import Clock
from maintflow_core.db.store import Store
from maintflow_core.errors import IllegalTransition, InvalidField
from maintflow_core.models import Session
from maintflow_core.schemas.batches import SessionUpdate
from maintflow_core.usecases.completion import session_finished
from maintflow_core.usecases.owned import get_owned
from maintflow_core.usecases.pagination import keyset, keyset_params

TRANSITIONS: dict[str, frozenset[str]] = {
    "pending": frozenset({"in_progress", "cancelled"}),
    "in_progress": frozenset({"completed", "failed", "cancelled"}),
    "completed": frozenset(),
    "failed": frozenset(),
    "cancelled": frozenset(),
}
FINAL = frozenset({"completed", "failed", "cancelled"})


def check_transition(current: str, new: str) -> None:
    if new != current and new not in TRANSITIONS[current]:
        allowed = ", ".join(sorted(TRANSITIONS[current])) or "none (it is final)"
        raise IllegalTransition(
            f"a session cannot move from {current} to {new}; allowed from {current}: {allowed}"
        )


async def get_session(
    db: AsyncSession, team_id: uuid.UUID, session_id: uuid.UUID, *, for_update: bool = False
) -> Session:
    return await get_owned(db, Session, team_id, session_id, "session", for_update=for_update)


async def targets_of_batch(db: AsyncSession, batch_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = await db.execute(
        sa.select(Session.target_label, Session.target_notes)
        .where(Session.batch_id == batch_id)
        .order_by(Session.target_label)
    )
    return [{"label": label, "notes": notes} for label, notes in rows]


async def session_briefs(db: AsyncSession, batch_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = await db.execute(
        sa.select(
            Session.id, Session.batch_id, Session.target_label, Session.flow_id, Session.status
        )
        .where(Session.batch_id == batch_id)
        .order_by(Session.target_label)
    )
    return [dict(r._mapping) for r in rows]


@dataclass(frozen=True)
class SessionFilter:
    batch_id: uuid.UUID | None = None
    flow_id: uuid.UUID | None = None
    status: str | None = None
    target_label: str | None = None


_SESSION_FILTERS = (Session.batch_id, Session.flow_id, Session.status, Session.target_label)


@cache
def _session_page(filters: frozenset[str], after: bool) -> sa.Select[Any]:
    """The page statement for one combination of filters (`filters`: the names of the
    SessionFilter fields given), built once (see `keyset`)."""
    query = sa.select(*sa.inspect(Session).columns).where(
        Session.team_id == sa.bindparam("team_id")
    )
    for column in _SESSION_FILTERS:
        if column.key in filters:
            query = query.where(column == sa.bindparam(column.key))
    return keyset(query, Session.created_at, Session.id, after=after)


async def list_sessions(
    db: AsyncSession,
    team_id: uuid.UUID,
    limit: int,
    cursor: str | None,
    where: SessionFilter = SessionFilter(),
) -> list[sa.Row[Any]]:
    """A page of sessions as plain rows (every column; no ORM entities to build and track)."""
    params = keyset_params(limit, cursor)
    given = {name: value for name, value in asdict(where).items() if value is not None}
    params.update(team_id=team_id, **given)
    query = _session_page(frozenset(given), bool(cursor))
    return list((await db.execute(query, params)).all())


async def update_session(
    db: AsyncSession,
    clock: Clock,
    store: Store,
    team_id: uuid.UUID,
    session_id: uuid.UUID,
    data: SessionUpdate,
) -> Session:
    # Row lock: two engineers moving the same session at once are serialised, and the second
    # sees the first one's status when its transition is checked.
    session = await get_session(db, team_id, session_id, for_update=True)
    now = clock.now()
    finished = False
    if data.status is not None and data.status != session.status:
        check_transition(session.status, data.status)
        if data.status == "in_progress":
            session.started_at = now
        if data.status in FINAL:
            session.finished_at = now
            finished = True
        session.status = data.status
    if data.current_step_id is not None:
        if not any(step.get("id") == data.current_step_id for step in session.steps):
            raise InvalidField("current_step_id", "no step with this id in the session's flow")
        session.current_step_id = data.current_step_id
    if data.notes is not None:
        session.notes = data.notes
    session.updated_at = now
    await db.flush()
    if finished:
        # After the session's own changes: its batch's and team's row locks come last.
        await session_finished(db, store, now, session)
    return session
