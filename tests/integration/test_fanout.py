"""The worker side of a fire: one session per target whatever is delivered twice, one "run
ready" notification per batch, re-driving a stalled fan-out, and the real Redis broker. The
actors are the real ones (maintflow_workers.actors), called as a worker calls them, with the
context a worker process configures (on the test's fake clock and an in-memory broker)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from dramatiq import Message
from dramatiq.brokers.stub import StubBroker
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from maintflow_core.clock import FakeClock, SystemClock
from maintflow_core.db.store import Store, open_store
from maintflow_core.due.schedules import MaintenanceSchedules
from maintflow_core.queues import SESSIONS_QUEUE
from maintflow_core.settings import Settings
from maintflow_core.usecases import fanout, outbox
from maintflow_workers import actors, context
from maintflow_workers.broker import build_broker
from maintflow_workers.context import WorkerContext
from maintflow_workers.lifecycle import start_worker
from tests.conftest import TeamCtx
from tests.integration.helpers import new_schedule, rows, scalar, scheduler
from tests.kit.broker import redis_broker
from tests.kit.poll import poll_until

Sessions = async_sessionmaker[AsyncSession]
T9 = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


async def fire(
    team: TeamCtx, settings: Settings, sessions: Sessions, clock: FakeClock, **schedule: Any
) -> tuple[dict[str, Any], uuid.UUID]:
    clock.set(T9 - timedelta(minutes=1))
    s = await new_schedule(team, cron_expression="0 9 * * *", **schedule)
    clock.set(T9 + timedelta(milliseconds=100))
    source = MaintenanceSchedules(open_store(settings), settings)
    async with sessions() as db, db.begin():
        (batch_id,) = (await source.claim(db, clock.now(), settings.scheduler_claim_batch)).fired
    return s, batch_id


async def notifications(team: TeamCtx, batch_id: uuid.UUID) -> list[Any]:
    return await rows(
        team,
        "SELECT event, message FROM notifications WHERE batch_id = :b ORDER BY seq",
        b=batch_id,
    )


async def sessions_of(team: TeamCtx, batch_id: uuid.UUID) -> list[str]:
    found = await rows(
        team, "SELECT target_label FROM sessions WHERE batch_id = :b ORDER BY 1", b=batch_id
    )
    return [r[0] for r in found]


async def relayed(sessions: Sessions, now: datetime) -> None:
    """The relay published every pending outbox row (to nowhere: these tests drive by hand)."""

    async def publish(_rows: Any) -> None:
        return None

    async with sessions() as db, db.begin():
        await outbox.relay_once(db, publish, now, limit=500)


@pytest.fixture
async def worker(
    settings: Settings, clock: FakeClock, store: Store
) -> AsyncIterator[WorkerContext]:
    """The context a worker process configures for its actors, on the test's clock, with an
    in-memory broker the actors enqueue their follow-up messages on."""
    ctx = WorkerContext(settings, clock, broker=build_broker(settings, stub=True), store=store)
    context.configure(ctx)
    yield ctx
    await ctx.dispose()
    context.configure(None)  # type: ignore[arg-type]


def queued_sessions(ctx: WorkerContext) -> list[tuple[Any, ...]]:
    """Take every create_session message off the in-memory queue; returns their arguments."""
    broker: StubBroker = ctx.broker
    queue = broker.queues[SESSIONS_QUEUE]
    taken = []
    while not queue.empty():
        taken.append(tuple(Message.decode(queue.get_nowait()).args))
    return taken


async def fan_out(ctx: WorkerContext, batch_id: uuid.UUID) -> list[tuple[Any, ...]]:
    """fire_schedule for the batch, then every create_session message it enqueued, delivered
    one after the other. Returns the delivered messages' arguments."""
    await actors.fire_schedule(str(batch_id))
    delivered = queued_sessions(ctx)
    for args in delivered:
        await actors.create_session(*args)
    return delivered


async def fired_and_driven(
    team: TeamCtx, settings: Settings, sessions: Sessions, clock: FakeClock, targets: int
) -> tuple[uuid.UUID, fanout.Resolved]:
    """A fired batch, relayed, whose fire_schedule has taken the snapshot."""
    _s, batch_id = await fire(team, settings, sessions, clock, targets=targets)
    await relayed(sessions, clock.now())
    async with sessions() as db, db.begin():
        resolved = await fanout.resolve_batch(db, batch_id, clock.now())
    assert resolved is not None
    return batch_id, resolved


async def test_a_create_session_delivered_twice_creates_one_session(
    team: TeamCtx, settings: Settings, sessions: Sessions, clock: FakeClock, worker: WorkerContext
) -> None:
    _s, batch_id = await fire(team, settings, sessions, clock, targets=3)
    delivered = await fan_out(worker, batch_id)
    assert len(delivered) == 3
    for args in delivered:  # every create_session delivered a second time
        await actors.create_session(*args)
    assert await fan_out(worker, batch_id) == []  # a redelivered fire_schedule: nothing missing
    assert await sessions_of(team, batch_id) == ["rds-000", "rds-001", "rds-002"]
    assert await scalar(team, "SELECT sessions_created FROM batches WHERE id=:b", b=batch_id) == 3
    assert len(await notifications(team, batch_id)) == 1


async def test_the_notification_is_created_once_when_the_last_two_land_together(
    team: TeamCtx, settings: Settings, sessions: Sessions, clock: FakeClock, worker: WorkerContext
) -> None:
    for round_ in range(10):
        clock.set(T9 + timedelta(days=round_))
        _s, batch_id = await fire(team, settings, sessions, clock, targets=2)
        await actors.fire_schedule(str(batch_id))
        messages = queued_sessions(worker)
        assert len(messages) == 2

        # Each message twice, all four at once.
        await asyncio.gather(*(actors.create_session(*args) for args in messages * 2))
        assert await sessions_of(team, batch_id) == ["rds-000", "rds-001"]
        assert len(await notifications(team, batch_id)) == 1


async def test_a_redelivered_create_session_completes_a_batch_whose_worker_died_before_the_check(
    team: TeamCtx, settings: Settings, sessions: Sessions, clock: FakeClock, worker: WorkerContext
) -> None:
    _s, batch_id = await fire(team, settings, sessions, clock, targets=2)
    await actors.fire_schedule(str(batch_id))
    first, last = queued_sessions(worker)
    await actors.create_session(*first)
    async with worker.statements() as statements:  # the last insert committed, then it died
        assert await statements.create_session(batch_id, last[1], last[2], clock.now())
    assert await notifications(team, batch_id) == []

    await actors.create_session(*last)  # Dramatiq redelivers the unacknowledged message

    assert await sessions_of(team, batch_id) == ["rds-000", "rds-001"]
    assert len(await notifications(team, batch_id)) == 1


async def test_the_run_ready_message_names_the_flow_and_count(
    team: TeamCtx, settings: Settings, sessions: Sessions, clock: FakeClock, worker: WorkerContext
) -> None:
    _s, batch_id = await fire(team, settings, sessions, clock, targets=4, flow_name="Patch RDS")
    await fan_out(worker, batch_id)
    assert await notifications(team, batch_id) == [
        ("batch.ready", "Maintenance run ready: Patch RDS — 4 sessions created")
    ]


async def test_a_schedule_without_targets_makes_an_empty_batch_and_says_so(
    team: TeamCtx, settings: Settings, sessions: Sessions, clock: FakeClock, worker: WorkerContext
) -> None:
    _s, batch_id = await fire(team, settings, sessions, clock, targets=None, flow_name="Certs")
    assert await fan_out(worker, batch_id) == []
    batch = (await team.req("GET", f"/v1/batches/{batch_id}")).json()
    assert batch["target_count"] == 0 and batch["ready_at"] is not None
    assert await notifications(team, batch_id) == [
        (
            "batch.ready",
            "Maintenance run ready: Certs — 0 sessions created (the schedule has no target list)",
        ),
        # None of its (no) sessions is open: it is complete as soon as it is ready.
        (
            "batch.completed",
            "Maintenance run completed: Certs — 0 completed, 0 failed, 0 cancelled",
        ),
    ]


async def test_the_reconciler_redrives_only_the_missing_targets(
    team: TeamCtx, settings: Settings, sessions: Sessions, clock: FakeClock, worker: WorkerContext
) -> None:
    _s, batch_id = await fire(team, settings, sessions, clock, targets=5)
    await relayed(sessions, clock.now())
    await actors.fire_schedule(str(batch_id))
    for args in queued_sessions(worker)[:2]:  # then the broker lost the other three messages
        await actors.create_session(*args)
    async with sessions() as db, db.begin():
        assert await outbox.reconcile(db, clock.now(), timedelta(seconds=60)) == []
    clock.advance(61)
    async with sessions() as db, db.begin():
        assert await outbox.reconcile(db, clock.now(), timedelta(seconds=60)) == [batch_id]
    await actors.fire_schedule(str(batch_id))  # the re-drive's message
    assert [args[1] for args in queued_sessions(worker)] == ["rds-002", "rds-003", "rds-004"]


@pytest.fixture
def worker_context(settings: Settings, store: Store) -> Iterator[None]:
    """The context of actors run by an in-process Dramatiq worker (on its own event loop)."""
    context.configure(WorkerContext(settings, SystemClock(), store=store))
    yield
    context.configure(None)  # type: ignore[arg-type]


async def wait_ready(team: TeamCtx, batch_id: uuid.UUID, timeout: float = 30) -> dict[str, Any]:
    async def ready() -> dict[str, Any] | None:
        batch = dict((await team.req("GET", f"/v1/batches/{batch_id}")).json())
        return batch if batch["ready_at"] else None

    found: dict[str, Any] = await poll_until(ready, timeout, f"batch {batch_id} ready", every=0.05)
    return found


async def test_a_redelivered_fire_schedule_enqueues_only_the_missing_targets(
    team: TeamCtx, settings: Settings, sessions: Sessions, clock: FakeClock, worker: WorkerContext
) -> None:
    _s, batch_id = await fire(team, settings, sessions, clock, targets=5)
    await actors.fire_schedule(str(batch_id))
    first, *_lost = queued_sessions(worker)
    await actors.create_session(*first)

    await actors.fire_schedule(str(batch_id))

    labels = [args[1] for args in queued_sessions(worker)]
    assert labels == ["rds-001", "rds-002", "rds-003", "rds-004"]


async def test_run_now_goes_through_the_same_pipeline(
    team: TeamCtx, settings: Settings, sessions: Sessions, clock: FakeClock, worker_context: None
) -> None:
    s = await new_schedule(team, cron_expression="0 9 * * *", targets=3)
    headers = {"Idempotency-Key": "now-1"}
    r = await team.req("POST", f"/v1/maintenance-schedules/{s['id']}/run-now", headers=headers)
    assert r.status_code == 202
    again = await team.req("POST", f"/v1/maintenance-schedules/{s['id']}/run-now", headers=headers)
    assert again.json() == r.json()
    batch_id = uuid.UUID(r.json()["batch_id"])
    svc = scheduler(settings, sessions, clock)
    context.current().broker = svc.broker
    dramatiq_worker = start_worker(svc.broker, threads=2)
    try:
        await svc.renew()
        await svc.relay()
        batch = await wait_ready(team, batch_id)
    finally:
        await asyncio.to_thread(dramatiq_worker.stop)
    assert batch["trigger"] == "run_now" and batch["target_count"] == 3
    assert batch["status_counts"]["pending"] == 3
    assert len(await notifications(team, batch_id)) == 1
    assert await scalar(team, "SELECT count(*) FROM batches") == 1


async def test_fan_out_over_real_redis(
    team: TeamCtx,
    settings: Settings,
    sessions: Sessions,
    clock: FakeClock,
    redis_url: str,
    redis_namespace: str,
    worker_context: None,
) -> None:
    _s, batch_id = await fire(team, settings, sessions, clock, targets=300)
    with redis_broker(settings, redis_url, redis_namespace) as broker:
        context.current().broker = broker
        dramatiq_worker = start_worker(broker, threads=4)
        try:
            svc = scheduler(settings, sessions, clock)
            svc.broker = broker
            await svc.renew()
            assert await svc.relay() == 1
            batch = await wait_ready(team, batch_id, timeout=60)
        finally:
            await asyncio.to_thread(dramatiq_worker.stop)
    assert batch["target_count"] == batch["sessions_created"] == 300
    assert await scalar(team, "SELECT count(*) FROM sessions WHERE batch_id=:b", b=batch_id) == 300
    assert len(await notifications(team, batch_id)) == 1
    assert await scalar(team, "SELECT count(DISTINCT target_label) FROM sessions") == 300


async def test_a_session_is_never_made_before_the_batch_is_resolved(
    team: TeamCtx, settings: Settings, sessions: Sessions, clock: FakeClock, worker: WorkerContext
) -> None:
    _s, batch_id = await fire(team, settings, sessions, clock, targets=2)
    await actors.create_session(str(batch_id), "rds-000", None)  # ahead of its fire_schedule
    assert await sessions_of(team, batch_id) == []
    await fan_out(worker, batch_id)
    assert await sessions_of(team, batch_id) == ["rds-000", "rds-001"]
    assert len(await notifications(team, batch_id)) == 1


async def test_a_lost_completion_check_is_made_good_by_the_next_drive(
    team: TeamCtx, settings: Settings, sessions: Sessions, clock: FakeClock, worker: WorkerContext
) -> None:
    batch_id, _resolved = await fired_and_driven(team, settings, sessions, clock, targets=2)
    for label in ("rds-000", "rds-001"):  # the worker died after each commit, before its check
        async with worker.statements() as statements:
            assert await statements.create_session(batch_id, label, None, clock.now())
    assert await notifications(team, batch_id) == []
    clock.advance(settings.reconcile_after_s + 1)
    async with sessions() as db, db.begin():
        assert await outbox.reconcile(
            db, clock.now(), timedelta(seconds=settings.reconcile_after_s)
        ) == [batch_id]
    assert await fan_out(worker, batch_id) == []  # the re-drive: nothing missing, but complete
    assert len(await notifications(team, batch_id)) == 1


async def test_the_reconciler_leaves_a_slow_but_moving_fan_out_alone(
    team: TeamCtx, settings: Settings, sessions: Sessions, clock: FakeClock, worker: WorkerContext
) -> None:
    batch_id, _resolved = await fired_and_driven(team, settings, sessions, clock, targets=3)
    stall = timedelta(seconds=60)
    clock.advance(50)
    await actors.create_session(str(batch_id), "rds-000", None)
    clock.advance(50)  # 100 s since the drive, 50 s since the last session
    async with sessions() as db, db.begin():
        assert await outbox.reconcile(db, clock.now(), stall) == []
    clock.advance(11)
    async with sessions() as db, db.begin():
        assert await outbox.reconcile(db, clock.now(), stall) == [batch_id]


async def test_the_reconciler_waits_while_a_backlog_may_still_hold_the_batch(
    team: TeamCtx, settings: Settings, sessions: Sessions, clock: FakeClock
) -> None:
    """A fan-out queued behind a long backlog makes no progress, but it is not lost: re-driving
    it would enqueue its messages a second time on top of the backlog."""
    batch_id, _resolved = await fired_and_driven(team, settings, sessions, clock, targets=3)
    driven = clock.now()
    stall = timedelta(seconds=60)
    clock.advance(600)
    still_queued = driven - timedelta(seconds=1)  # the oldest queued message predates the drive
    just_after = driven + outbox.SEND_MARGIN / 2  # could be this batch's own messages
    delivered = driven + outbox.SEND_MARGIN + timedelta(seconds=1)
    async with sessions() as db, db.begin():
        assert await outbox.reconcile(db, clock.now(), stall, queued_since=still_queued) == []
        assert await outbox.reconcile(db, clock.now(), stall, queued_since=just_after) == []
    async with sessions() as db, db.begin():
        assert await outbox.reconcile(db, clock.now(), stall, queued_since=delivered) == [batch_id]


async def test_the_reconciler_leaves_a_batch_the_relay_has_not_sent_yet(
    team: TeamCtx, settings: Settings, sessions: Sessions, clock: FakeClock
) -> None:
    """Broker down: the outbox row waits for the relay; a re-drive would only add a second."""
    _s, batch_id = await fire(team, settings, sessions, clock, targets=3)
    clock.advance(600)
    async with sessions() as db, db.begin():
        assert await outbox.reconcile(db, clock.now(), timedelta(seconds=60)) == []
    await relayed(sessions, clock.now())
    clock.advance(61)
    async with sessions() as db, db.begin():
        assert await outbox.reconcile(db, clock.now(), timedelta(seconds=60)) == [batch_id]
