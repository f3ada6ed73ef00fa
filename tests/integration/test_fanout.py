"""The worker side of a fire: one session per target whatever is delivered twice, one "run
ready" notification per batch, re-driving a stalled fan-out, and the real Redis broker."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import dramatiq
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from maintflow_core.clock import FakeClock, SystemClock
from maintflow_core.settings import Settings
from maintflow_core.usecases import fanout, outbox
from maintflow_workers import context
from maintflow_workers.actors import fire_schedule
from maintflow_workers.broker import SESSIONS_QUEUE, build_broker, enqueue_many, oldest_queued_at
from maintflow_workers.lifecycle import start_worker
from tests.conftest import TeamCtx
from tests.integration.helpers import new_schedule, rows, scalar, scheduler

Sessions = async_sessionmaker[AsyncSession]
T9 = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


async def fire(
    team: TeamCtx, settings: Settings, sessions: Sessions, clock: FakeClock, **schedule: Any
) -> tuple[dict[str, Any], uuid.UUID]:
    clock.set(T9 - timedelta(minutes=1))
    s = await new_schedule(team, cron_expression="0 9 * * *", **schedule)
    clock.set(T9 + timedelta(milliseconds=100))
    async with sessions() as db, db.begin():
        from maintflow_core.usecases.firing import claim_due

        (batch_id,) = (await claim_due(db, clock.now(), settings)).batch_ids
    return s, batch_id


async def notifications(team: TeamCtx, batch_id: uuid.UUID) -> list[Any]:
    return await rows(
        team, "SELECT event, message FROM notifications WHERE batch_id = :b", b=batch_id
    )


async def relayed(sessions: Sessions, now: datetime) -> None:
    """The relay published every pending outbox row (to nowhere: these tests drive by hand)."""

    async def publish(_rows: Any) -> None:
        return None

    async with sessions() as db, db.begin():
        await outbox.relay_once(db, publish, now)


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


async def deliver_all(sessions: Sessions, batch_id: uuid.UUID, now: datetime) -> None:
    async with sessions() as db, db.begin():
        resolved = await fanout.resolve_batch(db, batch_id, now)
    assert resolved is not None
    for target in resolved.missing:
        await create_and_complete(sessions, batch_id, target["label"], now)


async def create_and_complete(
    sessions: Sessions, batch_id: uuid.UUID, label: str, now: datetime
) -> bool:
    """What the create_session actor does: create and count, commit, then check completion."""
    async with sessions() as db, db.begin():
        created = await fanout.create_session(db, batch_id, label, None, now)
    if created:
        async with sessions() as db, db.begin():
            await fanout.complete_if_done(db, batch_id, now)
    return created


async def test_a_create_session_delivered_twice_creates_one_session(
    team: TeamCtx, settings: Settings, sessions: Sessions, clock: FakeClock
) -> None:
    _s, batch_id = await fire(team, settings, sessions, clock, targets=3)
    await deliver_all(sessions, batch_id, clock.now())
    await deliver_all(sessions, batch_id, clock.now())  # the whole fan-out, redelivered
    async with sessions() as db, db.begin():
        again = await fanout.create_session(db, batch_id, "rds-001", None, clock.now())
    assert again is False
    assert await scalar(team, "SELECT count(*) FROM sessions WHERE batch_id=:b", b=batch_id) == 3
    assert await scalar(team, "SELECT sessions_created FROM batches WHERE id=:b", b=batch_id) == 3
    assert len(await notifications(team, batch_id)) == 1


async def test_the_notification_is_created_once_when_the_last_two_land_together(
    team: TeamCtx, settings: Settings, sessions: Sessions, clock: FakeClock
) -> None:
    for round_ in range(10):
        clock.set(T9 + timedelta(days=round_))
        _s, batch_id = await fire(team, settings, sessions, clock, targets=2)
        async with sessions() as db, db.begin():
            resolved = await fanout.resolve_batch(db, batch_id, clock.now())
        assert resolved is not None and len(resolved.missing) == 2

        async def one(label: str, bid: uuid.UUID = batch_id) -> bool:
            return await create_and_complete(sessions, bid, label, clock.now())

        # Each target twice, all four at once.
        results = await asyncio.gather(*(one(t["label"]) for t in resolved.missing * 2))
        assert sorted(results) == [False, False, True, True]
        assert len(await notifications(team, batch_id)) == 1


async def test_the_run_ready_message_names_the_flow_and_count(
    team: TeamCtx, settings: Settings, sessions: Sessions, clock: FakeClock
) -> None:
    _s, batch_id = await fire(team, settings, sessions, clock, targets=4, flow_name="Patch RDS")
    await deliver_all(sessions, batch_id, clock.now())
    assert await notifications(team, batch_id) == [
        ("batch.ready", "Maintenance run ready: Patch RDS — 4 sessions created")
    ]


async def test_a_schedule_without_targets_makes_an_empty_batch_and_says_so(
    team: TeamCtx, settings: Settings, sessions: Sessions, clock: FakeClock
) -> None:
    _s, batch_id = await fire(team, settings, sessions, clock, targets=None, flow_name="Certs")
    await deliver_all(sessions, batch_id, clock.now())
    batch = (await team.req("GET", f"/v1/batches/{batch_id}")).json()
    assert batch["target_count"] == 0 and batch["ready_at"] is not None
    assert await notifications(team, batch_id) == [
        (
            "batch.ready",
            "Maintenance run ready: Certs — 0 sessions created (the schedule has no target list)",
        )
    ]


async def test_the_reconciler_redrives_only_the_missing_targets(
    team: TeamCtx, settings: Settings, sessions: Sessions, clock: FakeClock
) -> None:
    batch_id, resolved = await fired_and_driven(team, settings, sessions, clock, targets=5)
    for target in resolved.missing[:2]:  # then the broker lost the other three messages
        async with sessions() as db, db.begin():
            await fanout.create_session(db, batch_id, target["label"], None, clock.now())
    async with sessions() as db, db.begin():
        assert await outbox.reconcile(db, clock.now(), timedelta(seconds=60)) == []
    clock.advance(61)
    async with sessions() as db, db.begin():
        assert await outbox.reconcile(db, clock.now(), timedelta(seconds=60)) == [batch_id]
    async with sessions() as db, db.begin():
        resolved = await fanout.resolve_batch(db, batch_id, clock.now())
    assert resolved is not None
    assert sorted(t["label"] for t in resolved.missing) == ["rds-002", "rds-003", "rds-004"]


@pytest.fixture
def worker_context(settings: Settings) -> Iterator[None]:
    context.configure(context.WorkerContext(settings, SystemClock()))
    yield
    context.configure(None)  # type: ignore[arg-type]


async def wait_ready(team: TeamCtx, batch_id: uuid.UUID, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        batch = (await team.req("GET", f"/v1/batches/{batch_id}")).json()
        if batch["ready_at"]:
            return dict(batch)
        await asyncio.sleep(0.05)
    raise AssertionError(f"batch {batch_id} not ready after {timeout}s: {batch}")


async def test_the_fire_schedule_actor_enqueues_one_message_per_missing_target(
    team: TeamCtx, settings: Settings, sessions: Sessions, clock: FakeClock, worker_context: None
) -> None:
    _s, batch_id = await fire(team, settings, sessions, clock, targets=5)
    broker = build_broker(settings, stub=True)
    context.current().broker = broker
    async with sessions() as db, db.begin():
        await fanout.resolve_batch(db, batch_id, clock.now())
    async with sessions() as db, db.begin():
        await fanout.create_session(db, batch_id, "rds-000", None, clock.now())
    await fire_schedule(str(batch_id))
    queue = broker.queues[SESSIONS_QUEUE]  # type: ignore[attr-defined]
    assert queue.qsize() == 4
    await context.current().dispose()


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
    worker = start_worker(svc.broker, threads=2)
    try:
        await svc.renew()
        await svc.relay()
        batch = await wait_ready(team, batch_id)
    finally:
        await asyncio.to_thread(worker.stop)
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
    redis_settings = settings.model_copy(
        update={"redis_url": redis_url, "broker_namespace": redis_namespace}
    )
    _s, batch_id = await fire(team, settings, sessions, clock, targets=300)
    broker = build_broker(redis_settings)
    context.current().broker = broker
    worker = start_worker(broker, threads=4)
    try:
        svc = scheduler(redis_settings, sessions, clock)
        svc.broker = broker
        await svc.renew()
        assert await svc.relay() == 1
        batch = await wait_ready(team, batch_id, timeout=60)
    finally:
        await asyncio.to_thread(worker.stop)
        broker.close()
        dramatiq.set_broker(build_broker(settings, stub=True))
    assert batch["target_count"] == batch["sessions_created"] == 300
    assert await scalar(team, "SELECT count(*) FROM sessions WHERE batch_id=:b", b=batch_id) == 300
    assert len(await notifications(team, batch_id)) == 1
    assert await scalar(team, "SELECT count(DISTINCT target_label) FROM sessions") == 300
    _ = sa  # keep the import for ad-hoc debugging queries


async def test_a_session_is_never_made_before_the_batch_is_resolved(
    team: TeamCtx, settings: Settings, sessions: Sessions, clock: FakeClock
) -> None:
    _s, batch_id = await fire(team, settings, sessions, clock, targets=2)
    async with sessions() as db, db.begin():
        assert await fanout.create_session(db, batch_id, "rds-000", None, clock.now()) is False
    await deliver_all(sessions, batch_id, clock.now())
    assert await scalar(team, "SELECT count(*) FROM sessions WHERE batch_id=:b", b=batch_id) == 2
    assert len(await notifications(team, batch_id)) == 1


async def test_a_lost_completion_check_is_made_good_by_the_next_drive(
    team: TeamCtx, settings: Settings, sessions: Sessions, clock: FakeClock
) -> None:
    batch_id, _resolved = await fired_and_driven(team, settings, sessions, clock, targets=2)
    for label in ("rds-000", "rds-001"):  # the worker died after each commit, before its check
        async with sessions() as db, db.begin():
            assert await fanout.create_session(db, batch_id, label, None, clock.now())
    assert await notifications(team, batch_id) == []
    clock.advance(settings.reconcile_after_s + 1)
    async with sessions() as db, db.begin():
        assert await outbox.reconcile(
            db, clock.now(), timedelta(seconds=settings.reconcile_after_s)
        ) == [batch_id]
    async with sessions() as db, db.begin():
        resolved = await fanout.resolve_batch(db, batch_id, clock.now())
    assert resolved is not None and resolved.ready and resolved.missing == []
    assert len(await notifications(team, batch_id)) == 1


async def test_the_reconciler_leaves_a_slow_but_moving_fan_out_alone(
    team: TeamCtx, settings: Settings, sessions: Sessions, clock: FakeClock
) -> None:
    batch_id, _resolved = await fired_and_driven(team, settings, sessions, clock, targets=3)
    stall = timedelta(seconds=60)
    clock.advance(50)
    await create_and_complete(sessions, batch_id, "rds-000", clock.now())
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


def test_oldest_queued_at_reads_the_heads_of_the_fan_out_queues(
    settings: Settings, redis_url: str, redis_namespace: str
) -> None:
    redis_settings = settings.model_copy(
        update={"redis_url": redis_url, "broker_namespace": redis_namespace}
    )
    for broker in (build_broker(settings, stub=True), build_broker(redis_settings)):
        try:
            assert oldest_queued_at(broker) is None
            t0 = 1_780_000_000_000  # ms
            fire_msg = broker.get_actor("fire_schedule").message(str(uuid.uuid4()))
            session_msgs = [
                broker.get_actor("create_session").message(str(uuid.uuid4()), label, None)
                for label in ("a", "b")
            ]
            enqueue_many(
                broker,
                [
                    session_msgs[0].copy(message_timestamp=t0 + 5_000),
                    session_msgs[1].copy(message_timestamp=t0 + 9_000),
                    fire_msg.copy(message_timestamp=t0 + 7_000),
                ],
            )
            # The head of each queue is its oldest message; the answer is the older head.
            assert oldest_queued_at(broker) == datetime.fromtimestamp((t0 + 5_000) / 1000, UTC)
        finally:
            broker.close()
    dramatiq.set_broker(build_broker(settings, stub=True))


def test_enqueue_many_reloads_the_dispatch_script_that_redis_forgot(
    settings: Settings, redis_url: str, redis_namespace: str
) -> None:
    """A Redis restart empties its script cache: the fan-out enqueue loads the script again and
    sends every message exactly once."""
    broker = build_broker(
        settings.model_copy(update={"redis_url": redis_url, "broker_namespace": redis_namespace})
    )
    try:
        actor = broker.get_actor("create_session")
        enqueue_many(broker, [actor.message(str(uuid.uuid4()), "a", None)])
        broker.client.script_flush()
        enqueue_many(broker, [actor.message(str(uuid.uuid4()), f"t{i}", None) for i in range(5)])
        assert broker.client.llen(f"{redis_namespace}:{SESSIONS_QUEUE}") == 6
        assert broker.client.hlen(f"{redis_namespace}:{SESSIONS_QUEUE}.msgs") == 6
    finally:
        broker.close()
        dramatiq.set_broker(build_broker(settings, stub=True))
