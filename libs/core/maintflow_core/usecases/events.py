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
fixed."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

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
    if event not in RAISED:
        raise ValueError(f"{event} is not an event that is raised")
    seq = await db.scalar(
        sa.update(Team)
        .where(Team.id == team_id)
        .values(notification_seq=Team.notification_seq + 1)
        .returning(Team.notification_seq)
    )
    if seq is None:
        return None  # the team is gone (and with it everything it would be told)
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "team_id": team_id,
        "event": event.value,
        "title": title,
        "message": message,
        "batch_id": batch_id,
        "data": data,
        "created_at": now,
        "dedupe_key": cause_key(event, cause),
        "seq": seq,
    }
    # A cause already raised leaves a gap in the team's sequence: readers skip gaps.
    if not await store.insert_once(db, Notification, values, key=("dedupe_key",)):
        return None
    metrics.notification_written(event.value)
    note = Notification(**values)
    await store.announce_notification(db, team_id)
    await offer_to_webhooks(db, note)
    return note
