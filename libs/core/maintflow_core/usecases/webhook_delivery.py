"""A webhook delivery's life, as the workers and the scheduler leader drive it: offered in the
event's transaction (a delivery row and an outbox row per subscribed webhook), claimed for one
attempt, its outcome recorded (success, a retry after backoff, failed, or the webhook disabled
by 410 Gone), and driven again by the leader when its retry falls due or a worker was lost
mid-attempt. Every step is one conditional UPDATE, so a step run twice does nothing twice."""

from __future__ import annotations

import json
import logging
import random
import uuid
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from maintflow_core import metrics
from maintflow_core.db.store.base import DeliveryStatements
from maintflow_core.models import Notification, Outbox, Webhook, WebhookAttempt, WebhookDelivery
from maintflow_core.queues import DELIVER_WEBHOOKS
from maintflow_core.records import outbox_row
from maintflow_core.settings import Settings

log = logging.getLogger("maintflow.webhooks")
# The worker's steps run on a plain connection (no ORM session: it costs more than they do);
# the leader's, in its claim transaction's session.
Executor = AsyncSession | AsyncConnection
D = WebhookDelivery

# A delivery handed to the broker and not taken within this long is presumed lost with its
# message (Redis lost it, an embedded process stopped) and is enqueued again. A message that
# was only slow then finds the delivery taken and does nothing.
QUEUED_REDRIVE = timedelta(minutes=5)
# When a worker process already has `webhook_concurrency` requests in flight, a message waits
# at most BUSY_WAIT for one to end (a burst to fast receivers frees one within milliseconds);
# what still has no room then is enqueued again after BUSY_RETRY, so that slow receivers hold a
# worker thread no longer than that.
BUSY_WAIT = timedelta(seconds=1)
BUSY_RETRY = timedelta(seconds=1)
GONE = 410
RETRY_LIMIT_NOTE = "the webhook's limit of deliveries awaiting a retry is reached"
# Deliveries handed to the workers in one message at most: enough that a burst costs the broker
# and the workers a message per this many, few enough that a burst still spreads over the
# worker processes (and that one message never wants more than a process's request slots).
DELIVERIES_PER_MESSAGE = 16


def message_id(delivery_id: uuid.UUID) -> str:
    """The Standard Webhooks `webhook-id` of a delivery: the same on every attempt."""
    return f"msg_{delivery_id.hex}"


def event_body(event: str, data: dict[str, Any] | None, at: datetime) -> str:
    """The JSON body of a delivery, in the Standard Webhooks payload shape."""
    payload = {"type": event, "timestamp": at.isoformat(), "data": data or {}}
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def new_delivery(
    webhook_id: uuid.UUID, event: str, event_id: uuid.UUID | None, body: str, now: datetime
) -> dict[str, Any]:
    """A delivery row ready for its first attempt (`queue_deliveries` writes it)."""
    return {
        "id": uuid.uuid4(),
        "webhook_id": webhook_id,
        "event": event,
        "event_id": event_id,
        "body": body,
        "status": "queued",
        "attempts": 0,
        "next_attempt_at": now + QUEUED_REDRIVE,
        "created_at": now,
    }


async def queue_deliveries(
    db: Executor, deliveries: Sequence[dict[str, Any]], now: datetime
) -> None:
    """Write new deliveries (`new_delivery`) and the outbox rows that hand them to the workers,
    in the caller's transaction."""
    if not deliveries:
        return
    await db.execute(sa.insert(WebhookDelivery), list(deliveries))
    await db.execute(sa.insert(Outbox), deliver_messages([d["id"] for d in deliveries], now))


def deliver_messages(delivery_ids: Sequence[uuid.UUID], now: datetime) -> list[dict[str, Any]]:
    """The outbox rows that hand these deliveries to the workers, `DELIVERIES_PER_MESSAGE` a
    message."""
    return [
        outbox_row(
            DELIVER_WEBHOOKS,
            {"delivery_ids": [str(i) for i in delivery_ids[at : at + DELIVERIES_PER_MESSAGE]]},
            now,
        )
        for at in range(0, len(delivery_ids), DELIVERIES_PER_MESSAGE)
    ]


async def offer_to_webhooks(db: AsyncSession, notes: Sequence[Notification]) -> int:
    """In the events' transaction: one delivery (and its outbox row) for each enabled webhook
    of each note's team that subscribes to its event — one lookup of the teams' webhooks and
    one INSERT of each kind of row, whatever the number of notes. Returns how many deliveries."""
    webhooks: dict[uuid.UUID, list[tuple[uuid.UUID, list[str]]]] = {}
    teams = {note.team_id for note in notes}
    if teams:
        for webhook_id, team_id, events in await db.execute(
            sa.select(Webhook.id, Webhook.team_id, Webhook.events)
            .where(Webhook.team_id.in_(teams), Webhook.disabled_at.is_(None))
            .order_by(Webhook.id)
        ):
            webhooks.setdefault(team_id, []).append((webhook_id, events))
    made: list[dict[str, Any]] = []
    for note in notes:
        subscribed = [w for w, events in webhooks.get(note.team_id, []) if note.event in events]
        body = _note_body(note) if subscribed else ""
        made += [new_delivery(w, note.event, note.id, body, note.created_at) for w in subscribed]
    if made:
        await queue_deliveries(db, made, max(note.created_at for note in notes))
    return len(made)


def _note_body(note: Notification) -> str:
    data = {
        **(note.data or {}),
        "notification_id": str(note.id),
        "title": note.title,
        "message": note.message,
    }
    return event_body(note.event, data, note.created_at)


@dataclass(frozen=True)
class Policy:
    """How deliveries are retried and bounded (from the settings)."""

    timeout_s: float
    max_attempts: int
    backoff_base_s: float
    backoff_max_s: float
    max_pending: int

    @classmethod
    def of(cls, settings: Settings) -> Policy:
        return cls(
            timeout_s=settings.webhook_timeout_s,
            max_attempts=settings.webhook_max_attempts,
            backoff_base_s=settings.webhook_backoff_base_s,
            backoff_max_s=settings.webhook_backoff_max_s,
            max_pending=settings.webhook_max_pending,
        )

    @property
    def lease(self) -> timedelta:
        """How long an attempt may stay `delivering` before the leader presumes its worker lost:
        the attempt's own timeout, and as long again for recording its outcome."""
        return timedelta(seconds=2 * self.timeout_s + 1)

    def backoff(self, attempt: int, rng: Callable[[], float] = random.random) -> timedelta:
        """The wait after failed attempt number `attempt` (1-based): base·2^(attempt-1), at
        most the maximum, of which a random half is jitter."""
        full = min(self.backoff_base_s * 2 ** (attempt - 1), self.backoff_max_s)
        return timedelta(seconds=full / 2 + rng() * full / 2)


class Claimed(NamedTuple):
    """One attempt of a delivery, claimed by a worker: what to send and where."""

    delivery_id: uuid.UUID
    attempt: int
    webhook_id: uuid.UUID
    url: str
    secret: str
    body: str

    @property
    def message_id(self) -> str:
        return message_id(self.delivery_id)


class Outcome(NamedTuple):
    """What one attempt got: a status code, or an error (timeout, refused, connection)."""

    started_at: datetime
    duration_ms: float
    status_code: int | None = None
    error: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


async def claim(
    statements: DeliveryStatements,
    delivery_ids: Sequence[uuid.UUID],
    now: datetime,
    policy: Policy,
) -> list[Claimed]:
    """Take the next attempt of each queued delivery of `delivery_ids` (one statement of the
    store's); those not taken are not returned (see `end_unclaimed`)."""
    rows = await statements.claim_deliveries(delivery_ids, now + policy.lease)
    return [Claimed(r.id, r.attempts, r.webhook_id, r.url, r.secret, r.body) for r in rows]


async def end_unclaimed(db: Executor, delivery_ids: Sequence[uuid.UUID], now: datetime) -> None:
    """After a claim did not take these: a delivery still queued then has a disabled webhook,
    and fails without an attempt (taken or finished ones are left alone)."""
    await _fail(db, delivery_ids, now, "the webhook is disabled", of="queued")


async def _retrying(db: Executor, webhook_id: uuid.UUID, limit: int) -> bool:
    """Whether `limit` or more of the webhook's deliveries wait for a retry (counted only up
    to the limit, on the unfinished rows' index)."""
    waiting = (
        sa.select(sa.literal(1))
        .where(D.webhook_id == webhook_id, D.next_attempt_at.is_not(None), D.status == "pending")
        .limit(limit)
        .subquery()
    )
    return int(await db.scalar(sa.select(sa.func.count()).select_from(waiting)) or 0) >= limit


async def postpone(db: Executor, delivery_ids: Sequence[uuid.UUID], now: datetime) -> None:
    """Queued deliveries this worker has no room for: the leader enqueues them again shortly."""
    await db.execute(
        sa.update(D)
        .where(D.id.in_(delivery_ids), D.status == "queued")
        .values(status="pending", next_attempt_at=now + BUSY_RETRY)
    )


# A recorded attempt's outcome as the metric counts it (metrics.WEBHOOK_OUTCOMES).
OUTCOME_OF_STATUS = {"succeeded": "delivered", "pending": "failed", "failed": "gave_up"}


async def record(
    open_statements: Callable[[], AbstractAsyncContextManager[DeliveryStatements]],
    open_db: Callable[[], AbstractAsyncContextManager[Executor]],
    claimed: Claimed,
    outcome: Outcome,
    now: datetime,
    policy: Policy,
) -> str | None:
    """The one place a delivery attempt's outcome is recorded: the attempt row and the
    delivery `succeeded`, `pending` its next attempt after backoff, or `failed` (attempts used
    up, or 410 Gone, which then disables the webhook), in one statement of the store's
    (`open_statements`); the rarer reads and writes go through `open_db`. Returns the
    delivery's new status, or None when the attempt was no longer this worker's (the leader
    presumed it lost, recorded it so and drove the delivery again).

    The bound on a failing receiver's work: a delivery waits for a retry only while fewer than
    `max_pending` of its webhook's deliveries do; beyond that it fails at once. Every event
    still gets its first attempt."""
    error = outcome.error
    if outcome.succeeded:
        status = "succeeded"
    elif outcome.status_code == GONE or claimed.attempt >= policy.max_attempts:
        status = "failed"
    else:
        async with open_db() as db:
            crowded = await _retrying(db, claimed.webhook_id, policy.max_pending)
        status = "failed" if crowded else "pending"
        if crowded:
            error = f"{error or f'HTTP {outcome.status_code}'}; no retry: {RETRY_LIMIT_NOTE}"
    pending = status == "pending"
    moved = {
        "status": status,
        "last_status_code": outcome.status_code,
        "last_error": error,
        "next_attempt_at": now + policy.backoff(claimed.attempt) if pending else None,
        "finished_at": None if pending else now,
    }
    async with open_statements() as statements:
        attempt = attempt_row(claimed.delivery_id, claimed.attempt, outcome)
        if not await statements.settle_delivery(attempt, moved):
            return None
    metrics.webhook_delivery(OUTCOME_OF_STATUS[status])
    if outcome.status_code == GONE:
        # After the delivery's own commit (SQLite has one writer). Lost in a crash between
        # the two, the next delivery's 410 disables the webhook.
        async with open_db() as db:
            await disable(db, claimed.webhook_id, now, f"the receiver answered {GONE} Gone")
    return status


def attempt_row(delivery_id: uuid.UUID, number: int, outcome: Outcome) -> dict[str, Any]:
    return {
        "delivery_id": delivery_id,
        "number": number,
        "started_at": outcome.started_at,
        "duration_ms": round(outcome.duration_ms, 3),
        "status_code": outcome.status_code,
        "error": outcome.error,
    }


async def _fail(
    db: Executor, delivery_ids: Sequence[uuid.UUID], now: datetime, error: str, *, of: str
) -> None:
    """End these deliveries as failed without another attempt, each only if in status `of`."""
    await db.execute(
        sa.update(D)
        .where(D.id.in_(delivery_ids), D.status == of)
        .values(status="failed", next_attempt_at=None, finished_at=now, last_error=error)
    )


async def disable(db: Executor, webhook_id: uuid.UUID, now: datetime, reason: str) -> None:
    """Stop a webhook: nothing more is offered to it, its unfinished deliveries fail."""
    await db.execute(
        sa.update(Webhook)
        .where(Webhook.id == webhook_id, Webhook.disabled_at.is_(None))
        .values(disabled_at=now, disabled_reason=reason)
    )
    await db.execute(
        sa.update(D)
        .where(
            D.webhook_id == webhook_id,
            D.next_attempt_at.is_not(None),
            D.status != "delivering",
        )
        .values(
            status="failed", next_attempt_at=None, finished_at=now, last_error="webhook disabled"
        )
    )
    log.warning("webhook_disabled", extra={"webhook_id": str(webhook_id), "reason": reason})


LOST_ATTEMPT = "no outcome: the worker stopped during the attempt"


def is_due(now: datetime) -> sa.ColumnElement[bool]:
    """Unfinished deliveries the leader must drive at `now`: a retry that fell due, a message
    presumed lost, an attempt whose worker is presumed dead."""
    return sa.and_(D.next_attempt_at.is_not(None), D.next_attempt_at <= now)


class Driven(NamedTuple):
    locked: int
    queued: list[uuid.UUID]


async def drive_due(db: AsyncSession, now: datetime, limit: int, policy: Policy) -> Driven:
    """In the leader's claim transaction: lock up to `limit` due deliveries and hand each to the
    workers again (an outbox row), after recording a lost attempt as one (failed when it was
    the last). Returns how many were locked and the deliveries enqueued."""
    due = (
        await db.execute(
            sa.select(D.id, D.status, D.attempts, D.next_attempt_at)
            .where(is_due(now))
            .order_by(D.next_attempt_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    ).all()
    queued: list[uuid.UUID] = []
    lost_attempts: list[dict[str, Any]] = []
    used_up: list[uuid.UUID] = []
    for row in due:
        if row.status == "delivering":
            started = row.next_attempt_at - policy.lease
            lost = Outcome(started, policy.lease.total_seconds() * 1000, error=LOST_ATTEMPT)
            lost_attempts.append(attempt_row(row.id, row.attempts, lost))
            if row.attempts >= policy.max_attempts:
                used_up.append(row.id)
                continue
        queued.append(row.id)
    if lost_attempts:
        await db.execute(sa.insert(WebhookAttempt), lost_attempts)
    if used_up:
        await _fail(db, used_up, now, LOST_ATTEMPT, of="delivering")
    if queued:
        await db.execute(
            sa.update(D)
            .where(D.id.in_(queued))
            .values(status="queued", next_attempt_at=now + QUEUED_REDRIVE)
        )
        await db.execute(sa.insert(Outbox), deliver_messages(queued, now))
    return Driven(len(due), queued)


async def due_count(db: AsyncSession, now: datetime) -> int:
    return int(await db.scalar(sa.select(sa.func.count()).where(is_due(now))) or 0)
