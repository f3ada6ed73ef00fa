"""Webhook deliveries from an event to a real HTTP receiver on 127.0.0.1, on both databases: the
real actor (maintflow_workers.actors.deliver_webhooks) and sender, the leader's due-work source
for retries and re-drives, on the test's fake clock — which stands at the real time, so that
receivers can check signatures with the `standardwebhooks` package. Backoff is shortened only
by moving that clock."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from maintflow_core.clock import FakeClock, SystemClock
from maintflow_core.db.store import Store
from maintflow_core.due.webhooks import WebhookDeliveries
from maintflow_core.models import Outbox, WebhookDelivery
from maintflow_core.queues import DELIVER_WEBHOOKS
from maintflow_core.settings import Settings
from maintflow_core.usecases import outbox, webhook_delivery, webhooks
from maintflow_core.usecases.events import Event, raise_event
from maintflow_workers import actors, context
from maintflow_workers.broker import build_broker
from maintflow_workers.context import WorkerContext
from tests.conftest import TeamCtx
from tests.kit.webhook_receiver import HANG, Receiver

RETRY_WAIT = timedelta(seconds=1)  # the longest backoff at this module's settings


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # The receivers listen on 127.0.0.1; short timeout and backoff (tests only).
    return settings.model_copy(
        update={
            "webhook_allow_private": True,
            "webhook_timeout_s": 1.0,
            "webhook_backoff_base_s": 0.5,
            "webhook_backoff_max_s": 1.0,
        }
    )


@pytest.fixture
def clock(clock: FakeClock) -> FakeClock:
    clock.set(SystemClock().now())
    return clock


@pytest.fixture
async def worker(
    settings: Settings, clock: FakeClock, store: Store
) -> AsyncIterator[WorkerContext]:
    """The context a worker process configures for its actors."""
    ctx = WorkerContext(settings, clock, broker=build_broker(settings, stub=True), store=store)
    context.configure(ctx)
    yield ctx
    await ctx.dispose()
    context.configure(None)  # type: ignore[arg-type]


async def register(team: TeamCtx, url: str, events: Sequence[str] = ("batch.completed",)) -> Any:
    r = await team.req("POST", "/v1/webhooks", json={"url": url, "events": list(events)})
    assert r.status_code == 201, r.text
    return r.json()


async def raise_completed(team: TeamCtx, store: Store) -> uuid.UUID:
    """A batch.completed event of the team (as the sessions' last PATCH raises it)."""
    cause = uuid.uuid4()
    async with team.sessions() as db, db.begin():
        note = await raise_event(
            db,
            store,
            team.clock.now(),
            team.team_id,
            Event.BATCH_COMPLETED,
            {"batch_id": str(cause), "status_counts": {"completed": 3}},
            cause,
            title="Batch completed",
            message="3 of 3 sessions completed",
        )
    assert note is not None
    return note.id


async def deliver_queued(team: TeamCtx, worker: WorkerContext, *, drain: bool = True) -> int:
    """Relay the outbox as the leader does, run each deliver_webhooks message as a worker
    does, and (`drain`) wait for the requests to end. Returns how many deliveries the messages
    held."""
    sent: list[list[str]] = []

    async def publish(rows: Sequence[outbox.OutboxMessage]) -> None:
        sent.extend(p["delivery_ids"] for _id, kind, p in rows if kind == DELIVER_WEBHOOKS.name)

    async with team.sessions() as db, db.begin():
        await outbox.relay_once(db, publish, team.clock.now(), limit=500)
    for delivery_ids in sent:
        await actors.deliver_webhooks(delivery_ids)
    if drain:
        await worker.webhooks.drain()
    return sum(len(ids) for ids in sent)


async def one_delivery(team: TeamCtx, store: Store, url: str) -> tuple[Any, uuid.UUID]:
    """A webhook to `url` and the one delivery a batch.completed event offers it."""
    hook = await register(team, url)
    await raise_completed(team, store)
    async with team.sessions() as db:
        (delivery_id,) = (await db.scalars(sa.select(WebhookDelivery.id))).all()
    return hook, delivery_id


async def leader_drives(team: TeamCtx, settings: Settings, store: Store) -> list[uuid.UUID]:
    """One claim pass of the leader's webhook due-work source at the clock's time."""
    async with team.sessions() as db, db.begin():
        result = await WebhookDeliveries(store, settings).claim(db, team.clock.now(), 100)
    return result.fired


async def deliveries(team: TeamCtx, webhook: Any) -> list[Any]:
    r = await team.req("GET", f"/v1/webhooks/{webhook['id']}/deliveries")
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


async def test_an_event_reaches_a_receiver_that_verifies_it_with_standardwebhooks(
    team: TeamCtx, other_team: TeamCtx, store: Store, worker: WorkerContext
) -> None:
    with Receiver() as receiver, Receiver() as bystander:
        hook = await register(team, receiver.url)
        await register(team, bystander.url, events=["session.failed"])
        await register(other_team, bystander.url)
        note_id = await raise_completed(team, store)
        assert await deliver_queued(team, worker) == 1
        (payload,) = receiver.verified(hook["secret"])
        assert bystander.count() == 0
    assert payload["type"] == "batch.completed"
    assert payload["data"]["notification_id"] == str(note_id)
    assert payload["data"]["status_counts"] == {"completed": 3}
    (delivery,) = await deliveries(team, hook)
    assert delivery["status"] == "succeeded" and delivery["attempts"] == 1
    assert delivery["status_code"] == 200 and delivery["error"] is None
    assert delivery["message_id"] == receiver.received()[0].webhook_id
    assert delivery["next_retry_at"] is None and delivery["duration_ms"] > 0
    assert [a["status_code"] for a in delivery["attempt_log"]] == [200]


async def test_a_receiver_failing_twice_gets_the_same_webhook_id_three_times(
    team: TeamCtx, settings: Settings, store: Store, worker: WorkerContext
) -> None:
    with Receiver(answers=[500, 503]) as receiver:
        hook = await register(team, receiver.url)
        await raise_completed(team, store)
        await deliver_queued(team, worker)
        for _ in range(2):
            (delivery,) = await deliveries(team, hook)
            assert delivery["status"] == "pending" and delivery["next_retry_at"] is not None
            assert await leader_drives(team, settings, store) == []  # not due yet
            team.clock.advance(RETRY_WAIT)
            assert len(await leader_drives(team, settings, store)) == 1
            await deliver_queued(team, worker)
        verified = receiver.verified(hook["secret"])
        ids = {r.webhook_id for r in receiver.received()}
    assert len(verified) == 3 and len(ids) == 1
    (delivery,) = await deliveries(team, hook)
    assert delivery["status"] == "succeeded" and delivery["attempts"] == 3
    assert [a["status_code"] for a in delivery["attempt_log"]] == [500, 503, 200]
    assert delivery["message_id"] in ids


async def test_a_receiver_that_never_answers_times_out_and_is_retried_later(
    team: TeamCtx, settings: Settings, store: Store, worker: WorkerContext
) -> None:
    with Receiver(answers=[HANG]) as receiver:
        hook = await register(team, receiver.url)
        await raise_completed(team, store)
        await deliver_queued(team, worker)
        assert receiver.count() == 1
    (delivery,) = await deliveries(team, hook)
    assert delivery["status"] == "pending" and delivery["next_retry_at"] is not None
    (attempt,) = delivery["attempt_log"]
    assert attempt["status_code"] is None and attempt["error"] == "timed out after 1 s"
    assert attempt["duration_ms"] >= 1000


async def test_attempts_end_after_the_limit_and_the_delivery_is_failed(
    team: TeamCtx, settings: Settings, store: Store, worker: WorkerContext
) -> None:
    settings.webhook_max_attempts = 2
    with Receiver(answers=[500, 500, 500]) as receiver:
        hook = await register(team, receiver.url)
        await raise_completed(team, store)
        await deliver_queued(team, worker)
        team.clock.advance(RETRY_WAIT)
        await leader_drives(team, settings, store)
        await deliver_queued(team, worker)
        team.clock.advance(RETRY_WAIT)
        assert await leader_drives(team, settings, store) == []
        assert receiver.count() == 2
    (delivery,) = await deliveries(team, hook)
    assert delivery["status"] == "failed" and delivery["attempts"] == 2
    assert delivery["next_retry_at"] is None and delivery["status_code"] == 500


async def test_410_gone_disables_the_webhook(
    team: TeamCtx, store: Store, worker: WorkerContext
) -> None:
    with Receiver(answers=[410]) as receiver:
        hook = await register(team, receiver.url)
        await raise_completed(team, store)
        await deliver_queued(team, worker)
        await raise_completed(team, store)  # not offered to a disabled webhook
        assert await deliver_queued(team, worker) == 0
        assert receiver.count() == 1
    read = (await team.req("GET", f"/v1/webhooks/{hook['id']}")).json()
    assert read["enabled"] is False and "410" in read["disabled_reason"]
    (delivery,) = await deliveries(team, hook)
    assert delivery["status"] == "failed" and delivery["status_code"] == 410


async def test_a_private_address_is_refused_at_delivery_when_not_allowed(
    team: TeamCtx, settings: Settings, store: Store, worker: WorkerContext
) -> None:
    with Receiver() as receiver:
        hook = await register(team, receiver.url)  # allowed when it was registered
        settings.webhook_allow_private = False  # the operator turned it off since
        await raise_completed(team, store)
        await deliver_queued(team, worker)
        assert receiver.count() == 0
    (delivery,) = await deliveries(team, hook)
    assert delivery["status"] == "pending"
    assert delivery["error"] == "refused: 127.0.0.1 is a loopback address"


async def test_a_name_that_resolves_elsewhere_at_delivery_is_refused_there(
    team: TeamCtx, settings: Settings, store: Store, clock: FakeClock, worker: WorkerContext
) -> None:
    """DNS rebinding: the name resolved to a public address when it was registered and to
    127.0.0.1 when the worker connects; the connection is refused, the receiver gets nothing."""
    settings.webhook_allow_private = False

    async def at_registration(host: str, port: int) -> list[str]:
        return ["93.184.215.14"]

    async def at_delivery(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    worker.resolver = at_delivery
    with Receiver() as receiver:
        port = receiver.url.split(":")[2].split("/")[0]
        async with team.sessions() as db, db.begin():
            hook = await webhooks.create_webhook(
                db,
                clock,
                team.team_id,
                f"http://hooks.rebind.test:{port}/hooks",
                ["batch.completed"],
                None,
                allow_private=False,
                resolver=at_registration,
            )
        await raise_completed(team, store)
        await deliver_queued(team, worker)
        assert receiver.count() == 0
    (delivery,) = await deliveries(team, {"id": hook.id})
    assert delivery["error"] == (
        "refused: hooks.rebind.test resolves to 127.0.0.1, a loopback address"
    )


async def test_an_attempt_whose_worker_was_lost_is_made_again_with_the_same_webhook_id(
    team: TeamCtx, settings: Settings, store: Store, worker: WorkerContext
) -> None:
    with Receiver() as receiver:
        hook, delivery_id = await one_delivery(team, store, receiver.url)
        policy = webhook_delivery.Policy.of(settings)
        # A worker claims the attempt, then dies before sending it.
        async with worker.statements() as statements:
            (claimed,) = await webhook_delivery.claim(
                statements, [delivery_id], team.clock.now(), policy
            )
        assert await leader_drives(team, settings, store) == []  # its lease still runs
        team.clock.advance(policy.lease + timedelta(seconds=1))
        assert await leader_drives(team, settings, store) == [delivery_id]
        await deliver_queued(team, worker)
        (received,) = receiver.received()
    assert received.webhook_id == claimed.message_id
    (delivery,) = await deliveries(team, hook)
    assert delivery["status"] == "succeeded" and delivery["attempts"] == 2
    log = delivery["attempt_log"]
    assert log[0]["error"] == webhook_delivery.LOST_ATTEMPT and log[1]["status_code"] == 200


async def test_a_lost_last_attempt_fails_the_delivery_and_a_lost_earlier_one_is_retried(
    team: TeamCtx, settings: Settings, store: Store, worker: WorkerContext
) -> None:
    settings.webhook_max_attempts = 2
    policy = webhook_delivery.Policy.of(settings)
    with Receiver() as receiver:
        first, last = await register(team, receiver.url), await register(team, receiver.url)
        await raise_completed(team, store)  # a delivery to each
        async with team.sessions() as db, db.begin():
            ids = dict(
                (str(webhook_id), delivery_id)
                for delivery_id, webhook_id in await db.execute(
                    sa.select(WebhookDelivery.id, WebhookDelivery.webhook_id)
                )
            )
            first_id, last_id = ids[first["id"]], ids[last["id"]]
            # The second is on its last attempt.
            await db.execute(
                sa.update(WebhookDelivery).where(WebhookDelivery.id == last_id).values(attempts=1)
            )
        # Workers claim both attempts and die; both leases end in the same claim pass.
        async with worker.statements() as statements:
            await webhook_delivery.claim(statements, [first_id, last_id], team.clock.now(), policy)
        team.clock.advance(policy.lease + timedelta(seconds=1))
        assert await leader_drives(team, settings, store) == [first_id]
        assert receiver.count() == 0
    (retried,) = await deliveries(team, first)
    assert retried["status"] == "queued" and retried["attempts"] == 1
    (failed,) = await deliveries(team, last)
    assert failed["status"] == "failed" and failed["error"] == webhook_delivery.LOST_ATTEMPT
    for delivery in (retried, failed):
        (lost,) = [a for a in delivery["attempt_log"] if a["number"] == delivery["attempts"]]
        assert lost["error"] == webhook_delivery.LOST_ATTEMPT


async def test_a_failure_is_not_retried_while_too_many_deliveries_await_a_retry(
    team: TeamCtx, settings: Settings, store: Store, worker: WorkerContext
) -> None:
    settings.webhook_max_pending = 1
    with Receiver(answers=[500, 500]) as receiver:
        hook = await register(team, receiver.url)
        await raise_completed(team, store)
        await deliver_queued(team, worker)  # fails: awaits a retry
        team.clock.advance(timedelta(milliseconds=1))
        await raise_completed(team, store)
        await deliver_queued(team, worker)  # fails too, with one awaiting a retry already
        assert receiver.count() == 2
    newest, oldest = await deliveries(team, hook)
    assert oldest["status"] == "pending"
    assert newest["status"] == "failed" and newest["attempts"] == 1
    assert newest["error"] == f"HTTP 500; no retry: {webhook_delivery.RETRY_LIMIT_NOTE}"


async def test_a_ping_from_the_test_route_is_delivered_and_signed(
    team: TeamCtx, store: Store, worker: WorkerContext
) -> None:
    with Receiver() as receiver:
        hook = await register(team, receiver.url)
        sent = (await team.req("POST", f"/v1/webhooks/{hook['id']}/test")).json()
        await deliver_queued(team, worker)
        (payload,) = receiver.verified(hook["secret"])
        (received,) = receiver.received()
    assert payload["type"] == "ping" and payload["data"] == {"webhook_id": hook["id"]}
    assert received.webhook_id == sent["message_id"]
    assert json.loads(received.body) == payload


async def test_a_burst_goes_out_several_deliveries_to_a_message_each_as_a_slot_comes_free(
    team: TeamCtx, settings: Settings, store: Store, worker: WorkerContext
) -> None:
    settings.webhook_concurrency = 4
    many = webhook_delivery.DELIVERIES_PER_MESSAGE + 3
    with Receiver() as receiver:
        hooks = [await register(team, receiver.url) for _ in range(many)]
        await raise_completed(team, store)
        async with team.sessions() as db:
            messages = list(
                await db.scalars(
                    sa.select(Outbox.payload).where(Outbox.kind == DELIVER_WEBHOOKS.name)
                )
            )
        sizes = sorted(len(m["delivery_ids"]) for m in messages)
        assert sizes == [3, webhook_delivery.DELIVERIES_PER_MESSAGE]
        assert await deliver_queued(team, worker) == many
        assert receiver.count(200) == many
    for hook in hooks:
        (delivery,) = await deliveries(team, hook)
        assert delivery["status"] == "succeeded" and delivery["attempts"] == 1


async def test_what_finds_no_free_slot_within_the_wait_is_put_back_for_the_leader(
    team: TeamCtx, settings: Settings, store: Store, worker: WorkerContext
) -> None:
    settings.webhook_concurrency = 2
    settings.webhook_timeout_s = 5.0  # the held requests outlast the wait for a slot
    with Receiver(answers=[HANG, HANG]) as receiver:
        hooks = [await register(team, receiver.url) for _ in range(3)]
        await raise_completed(team, store)
        # One message of three: two requests hang, holding both slots; the third waits.
        await deliver_queued(team, worker, drain=False)
        assert receiver.count() == 2
        waiting = [d for h in hooks for d in await deliveries(team, h) if d["attempts"] == 0]
        assert [(d["status"], d["attempt_log"]) for d in waiting] == [("pending", [])]
        receiver.release()
        await worker.webhooks.drain()
        team.clock.advance(webhook_delivery.BUSY_RETRY)
        driven = await leader_drives(team, settings, store)
        assert uuid.UUID(waiting[0]["id"]) in driven
        await deliver_queued(team, worker)
    (put_back,) = [d for h in hooks for d in await deliveries(team, h) if d["attempts"] == 1]
    assert put_back["id"] == waiting[0]["id"] and put_back["status"] == "succeeded"


async def test_a_message_mixing_claimable_taken_and_disabled_deliveries_sends_only_the_first(
    team: TeamCtx, store: Store, worker: WorkerContext
) -> None:
    with Receiver() as receiver:
        kept, gone = await register(team, receiver.url), await register(team, receiver.url)
        await raise_completed(team, store)
        async with team.sessions() as db, db.begin():
            ids = {
                str(webhook_id): delivery_id
                for delivery_id, webhook_id in await db.execute(
                    sa.select(WebhookDelivery.id, WebhookDelivery.webhook_id)
                )
            }
            await webhook_delivery.disable(
                db, uuid.UUID(gone["id"]), team.clock.now(), "test: switched off"
            )
        # The same delivery twice in one message, and once more in another: one request.
        twice = [str(ids[kept["id"]])] * 2 + [str(ids[gone["id"]])]
        await actors.deliver_webhooks(twice)
        await actors.deliver_webhooks(twice)
        await worker.webhooks.drain()
        assert receiver.count() == 1
    (sent,) = await deliveries(team, kept)
    assert sent["status"] == "succeeded" and sent["attempts"] == 1
    (refused,) = await deliveries(team, gone)
    assert refused["status"] == "failed" and refused["attempts"] == 0


async def test_a_one_delivery_message_of_an_earlier_version_is_still_delivered(
    team: TeamCtx, store: Store, worker: WorkerContext
) -> None:
    with Receiver() as receiver:
        hook, delivery_id = await one_delivery(team, store, receiver.url)
        await actors.deliver_webhook(str(delivery_id))
        await worker.webhooks.drain()
        assert receiver.count(200) == 1
    (delivery,) = await deliveries(team, hook)
    assert delivery["status"] == "succeeded"
