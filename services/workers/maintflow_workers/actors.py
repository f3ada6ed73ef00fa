"""The actors. Thin: each takes ids, runs one core use-case in one transaction, commits, and only
then talks to the broker. All are idempotent, because delivery is at-least-once."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import dramatiq
from sqlalchemy.exc import IntegrityError

from maintflow_broker.enqueue import enqueue_many
from maintflow_core import metrics
from maintflow_core.queues import (
    DELIVER_WEBHOOK,
    DELIVER_WEBHOOKS,
    FIRE_BATCH,
    RUN_SYSTEM_JOB,
    SESSIONS_QUEUE,
)
from maintflow_core.settings import Settings
from maintflow_core.usecases import fanout, system_jobs, webhook_delivery
from maintflow_core.usecases.events import RAISED
from maintflow_workers import context

log = logging.getLogger("maintflow.workers")

CREATE_SESSION = "create_session"


async def fire_schedule(batch_id: str) -> None:
    """Resolve the batch's snapshot, then enqueue one create_session per target still lacking a
    session. A redelivery (or the reconciler) re-enqueues only what is missing; with nothing
    missing, it completes the batch (a zero-target batch, or a re-drive after the last
    create_session died between its commit and its completion check)."""
    ctx = context.current()
    bid = uuid.UUID(batch_id)
    async with ctx.transaction() as db:
        resolved = await fanout.resolve_batch(db, bid, ctx.clock.now())
    if resolved is None:
        log.warning("batch_gone", extra={"batch_id": batch_id})
        return
    if not resolved.missing:
        if not resolved.ready:
            async with ctx.statements() as statements:
                done = await statements.counts_complete(bid)
            if done:
                await _mark_ready(ctx, bid)
        return
    broker = ctx.broker or dramatiq.get_broker()
    actor = broker.get_actor(CREATE_SESSION)
    messages = [actor.message(batch_id, t["label"], t.get("notes")) for t in resolved.missing]
    # Off the event loop: the broker client is synchronous.
    await asyncio.to_thread(enqueue_many, broker, messages)
    log.info("batch_fanned_out", extra={"batch_id": batch_id, "messages": len(messages)})


async def create_session(batch_id: str, label: str, notes: str | None = None) -> None:
    ctx = context.current()
    bid = uuid.UUID(batch_id)
    async with ctx.statements() as statements:
        if await statements.create_session(bid, label, notes, ctx.clock.now()):
            metrics.sessions_created()
        # After the commit, so it sees the other workers' committed counts too. Also when the
        # session already existed: a retry after a crash between insert and mark_ready must
        # still complete the batch.
        done = await statements.counts_complete(bid)
    if done:
        await _mark_ready(ctx, bid)


async def _mark_ready(ctx: context.WorkerContext, batch_id: uuid.UUID) -> None:
    now = ctx.clock.now()
    async with ctx.transaction() as db:
        created_at = await fanout.mark_ready(db, ctx.store, batch_id, now)
    if created_at is not None:
        metrics.batch_ready((now - created_at).total_seconds())


async def deliver_webhooks(delivery_ids: list[str]) -> None:
    """Claim the next attempt of each delivery and start sending it beside the worker threads
    (see maintflow_workers.webhooks), as request slots of this process come free; each
    outcome is recorded when its request ends. What cannot be claimed (a duplicate message, a
    finished delivery) is left as it is. When no slot comes free within BUSY_WAIT (slow
    receivers hold them all), the rest is put back for the leader to enqueue again."""
    ctx = context.current()
    sender = ctx.webhooks
    ids = [uuid.UUID(i) for i in delivery_ids]
    while ids:
        slots = await sender.reserve(len(ids), webhook_delivery.BUSY_WAIT.total_seconds())
        if not slots:
            async with ctx.connection() as db:
                await webhook_delivery.postpone(db, ids, ctx.clock.now())
            return
        await _claim_and_send(ctx, ids[:slots])
        ids = ids[slots:]


async def _claim_and_send(ctx: context.WorkerContext, ids: list[uuid.UUID]) -> None:
    """Claim `ids`, for which request slots are reserved, and start sending the claimed ones;
    the slots of the others are given back."""
    sender = ctx.webhooks
    try:
        async with ctx.statements() as statements:
            claimed = await webhook_delivery.claim(statements, ids, ctx.clock.now(), sender.policy)
        if len(claimed) < len(ids):
            taken = {c.delivery_id for c in claimed}
            async with ctx.connection() as db:
                unclaimed = [i for i in ids if i not in taken]
                await webhook_delivery.end_unclaimed(db, unclaimed, ctx.clock.now())
    except BaseException:
        sender.release(len(ids))
        raise
    sender.release(len(ids) - len(claimed))
    for one in claimed:
        sender.start(one, _record_outcome)


async def deliver_webhook(delivery_id: str) -> None:
    """One delivery per message, as versions before `deliver_webhooks` sent them."""
    await deliver_webhooks([delivery_id])


async def _record_outcome(
    claimed: webhook_delivery.Claimed, outcome: webhook_delivery.Outcome
) -> None:
    ctx = context.current()
    delivery_id = str(claimed.delivery_id)
    try:
        status = await webhook_delivery.record(
            ctx.statements, ctx.connection, claimed, outcome, ctx.clock.now(), ctx.webhooks.policy
        )
    except IntegrityError:
        # The webhook was deleted meanwhile: nothing of this outcome is left to keep.
        log.info("webhook_outcome_dropped", extra={"delivery_id": delivery_id})
        return
    if outcome.succeeded:
        return  # the deliveries route shows it; only failures are worth a log line
    log.info(
        "webhook_attempt_failed",
        extra={
            "delivery_id": delivery_id,
            "attempt": claimed.attempt,
            "status_code": outcome.status_code,
            "error": outcome.error,
            "delivery_status": status,
        },
    )


async def run_system_job(run_id: str) -> None:
    """Execute a system job's run once: a redelivered message whose run a worker already took
    up does nothing (if that worker died, the leader marks the run failed at its deadline)."""
    ctx = context.current()
    await system_jobs.execute_run(
        ctx.transaction, ctx.store, ctx.clock, ctx.settings, uuid.UUID(run_id)
    )


def declare(broker: dramatiq.Broker, settings: Settings) -> None:
    """Register the actors on `broker` (and make it the global broker actors send through)."""
    dramatiq.set_broker(broker)
    metrics.preinit_workers(sorted(RAISED))
    metrics.preinit_system_jobs(job.key for job in system_jobs.BUILTIN)
    options: dict[str, Any] = {
        "broker": broker,
        "max_retries": settings.actor_max_retries,
        "time_limit": int(settings.actor_time_limit_s * 1000),
    }
    for name, queue, fn in (
        (FIRE_BATCH.name, FIRE_BATCH.queue, fire_schedule),
        (CREATE_SESSION, SESSIONS_QUEUE, create_session),
        (DELIVER_WEBHOOKS.name, DELIVER_WEBHOOKS.queue, deliver_webhooks),
        (DELIVER_WEBHOOK.name, DELIVER_WEBHOOK.queue, deliver_webhook),
    ):
        dramatiq.actor(actor_name=name, queue_name=queue, **options)(fn)
    # A run may take long (retention on a large database); its own limit is also its deadline.
    limit = int(settings.system_job_time_limit_s * 1000)
    dramatiq.actor(
        actor_name=RUN_SYSTEM_JOB.name,
        queue_name=RUN_SYSTEM_JOB.queue,
        **{**options, "time_limit": limit},
    )(run_system_job)
