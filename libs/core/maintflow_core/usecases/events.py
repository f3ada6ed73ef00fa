"""Events: the one way anything tells a team that something happened. `raise_event` writes the
team's inbox notification in the caller's transaction — exactly once per cause, guarded by the
unique `dedupe_key`, not by memory — and offers it to the team's live streams (woken on commit,
see `Store.announce_notification`) and webhooks.

Ordering: each notification takes the next value of its team's counter (`teams.notification_seq`)
with an UPDATE whose row lock is held until the raising transaction ends. A second transaction
raising for the same team waits there, so per team a larger `seq` always commits later: a
reader that has seen `seq = n` has seen every committed row below n, and a stream that resumes
after n misses nothing and repeats nothing. Callers raise events at the end of their
transaction (after their other row locks), which keeps the lock short and the lock order
fixed.

`raise_events` is the one implementation (`raise_event` is it for one event): n events cost a
counter UPDATE per team (taking n values at once, teams in id order so that two raisers of
many teams never wait for each other in a cycle), one INSERT of the notifications, one
announcement per team and one webhook lookup, not a round trip of each per event."""

from __future__ import annotations

import enum
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from maintflow_core import metrics
from maintflow_core.db.store import Store
from maintflow_core.models import Notification, Team
from maintflow_core.usecases.webhook_delivery import offer_to_webhooks


class Event(enum.StrEnum):
    """Every event name, in one place (API.md, "Notifications and webhooks"): `batch.ready`
    (all sessions of a fired batch exist), `batch.completed` (all its sessions are final),
    `session.failed`, `window.started`, `window.completed`, `system_job.failed`; and `ping`,
    sent to one webhook by its test route only."""

    BATCH_READY = "batch.ready"
    BATCH_COMPLETED = "batch.completed"
    SESSION_FAILED = "session.failed"
    WINDOW_STARTED = "window.started"
    WINDOW_COMPLETED = "window.completed"
    SYSTEM_JOB_FAILED = "system_job.failed"
    # Sent to one webhook by its test route; never raised, never in an inbox.
    PING = "ping"


# The events a team's inbox, streams and webhooks can receive (all but `ping`).
RAISED: frozenset[Event] = frozenset(Event) - {Event.PING}
# What a webhook may subscribe to.
SUBSCRIBABLE: frozenset[Event] = frozenset(Event)


def cause_key(event: Event, cause_id: uuid.UUID | str) -> str:
    """The dedupe key of `event` raised for the thing `cause_id` names (a batch, a session, a
    window's transition, a system job run): "<event>:<cause id>"."""
    return f"{event.value}:{cause_id}"


async def raise_event(
    db: AsyncSession,
    store: Store,
    now: datetime,
    team_id: uuid.UUID,
    event: Event,
    data: dict[str, Any],
    cause: uuid.UUID | str,
    *,
    title: str,
    message: str,
    batch_id: uuid.UUID | None = None,
) -> Notification | None:
    """Raise `event` for `team_id` because of `cause` (an id: the event is raised once per
    (event, cause), whoever calls this and however often), inside the caller's transaction.
    Returns the notification written, or None when this cause had already raised it."""
    raised = EventToRaise(team_id, event, data, cause, title, message, batch_id)
    written = await raise_events(db, store, now, [raised])
    return written[0] if written else None


class EventToRaise(NamedTuple):
    """One event for `raise_events`: `event` for `team_id` because of `cause` (see
    `raise_event`)."""

    team_id: uuid.UUID
    event: Event
    data: dict[str, Any]
    cause: uuid.UUID | str
    title: str
    message: str
    batch_id: uuid.UUID | None = None


async def raise_events(
    db: AsyncSession, store: Store, now: datetime, events: Sequence[EventToRaise]
) -> list[Notification]:
    """Raise every one of `events` inside the caller's transaction, whatever their number, in a
    few statements: per team (in id order, the lock order of every raiser) one counter UPDATE
    taking n `seq` values, handed out in the order the team's events are given; one INSERT of
    all the notifications, causes already raised skipped; one announcement per team; one
    webhook lookup and one INSERT of deliveries. Returns the notifications written, in the
    order given (a cause already raised, or a team that is gone, writes nothing)."""
    if not events:
        return []
    for raised in events:
        if raised.event not in RAISED:
            raise ValueError(f"{raised.event} is not an event that is raised")
    by_team: dict[uuid.UUID, list[EventToRaise]] = {}
    given: dict[str, int] = {}  # each cause's place: a cause given twice is raised once
    for raised in events:
        key = cause_key(raised.event, raised.cause)
        if key not in given:
            given[key] = len(given)
            by_team.setdefault(raised.team_id, []).append(raised)
    rows: list[dict[str, Any]] = []
    for team_id in sorted(by_team):
        team_events = by_team[team_id]
        last = await db.scalar(
            sa.update(Team)
            .where(Team.id == team_id)
            .values(notification_seq=Team.notification_seq + len(team_events))
            .returning(Team.notification_seq)
        )
        if last is None:
            continue  # the team is gone (and with it everything it would be told)
        first = last - len(team_events) + 1
        rows += [_row(raised, now, seq) for seq, raised in enumerate(team_events, first)]
    # A cause already raised leaves a gap in its team's sequence: readers skip gaps.
    inserted = set(await store.insert_many_once(db, Notification, rows, key=("dedupe_key",)))
    notes = [Notification(**row) for row in rows if row["id"] in inserted]
    if not notes:
        return []
    for note in notes:
        metrics.notification_written(note.event)
    for team_id in sorted({note.team_id for note in notes}):
        await store.announce_notification(db, team_id)
    await offer_to_webhooks(db, notes)
    return sorted(notes, key=lambda note: given[note.dedupe_key])


def _row(raised: EventToRaise, now: datetime, seq: int) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "team_id": raised.team_id,
        "event": raised.event.value,
        "title": raised.title,
        "message": raised.message,
        "batch_id": raised.batch_id,
        "data": raised.data,
        "created_at": now,
        "dedupe_key": cause_key(raised.event, raised.cause),
        "seq": seq,
    }
