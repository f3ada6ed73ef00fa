"""maintflow's broker (maintflow_broker) on Redis and in memory: the oldest waiting message, the
pipelined enqueue surviving a Redis that forgot its scripts, the queue statistics, and the
messages the relay makes of outbox rows."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import dramatiq
import pytest

from maintflow_broker.enqueue import enqueue_many, outbox_messages
from maintflow_broker.queues import oldest_queued_at, queue_stats
from maintflow_core.queues import (
    DELIVER_WEBHOOK,
    DELIVER_WEBHOOKS,
    FANOUT_QUEUE,
    FIRE_BATCH,
    RUN_SYSTEM_JOB,
    SESSIONS_QUEUE,
    SYSTEM_QUEUE,
    WEBHOOKS_QUEUE,
)
from maintflow_core.settings import Settings
from maintflow_workers.broker import build_broker
from tests.kit.broker import redis_broker


@pytest.fixture(params=["memory", "redis"])
def broker(
    request: pytest.FixtureRequest, base_settings: Settings, redis_url: str, redis_namespace: str
) -> Iterator[dramatiq.Broker]:
    """maintflow's broker with the actors declared: in memory, and on Redis in this test's
    namespace."""
    if request.param == "memory":
        yield build_broker(base_settings, stub=True)
        return
    with redis_broker(base_settings, redis_url, redis_namespace) as on_redis:
        yield on_redis


def test_oldest_queued_at_reads_the_heads_of_the_fan_out_queues(broker: Any) -> None:
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


def test_enqueue_many_reloads_the_dispatch_script_that_redis_forgot(
    base_settings: Settings, redis_url: str, redis_namespace: str
) -> None:
    """A Redis restart empties its script cache: the fan-out enqueue loads the script again and
    sends every message exactly once."""
    with redis_broker(base_settings, redis_url, redis_namespace) as broker:
        actor = broker.get_actor("create_session")
        enqueue_many(broker, [actor.message(str(uuid.uuid4()), "a", None)])
        broker.client.script_flush()
        enqueue_many(broker, [actor.message(str(uuid.uuid4()), f"t{i}", None) for i in range(5)])
        assert broker.client.llen(f"{redis_namespace}:{SESSIONS_QUEUE}") == 6
        assert broker.client.hlen(f"{redis_namespace}:{SESSIONS_QUEUE}.msgs") == 6


def test_queue_stats_count_the_messages_the_relay_makes(broker: Any) -> None:
    assert {q["name"]: q["depth"] for q in queue_stats(broker)} == {
        FANOUT_QUEUE: 0,
        SESSIONS_QUEUE: 0,
        WEBHOOKS_QUEUE: 0,
        SYSTEM_QUEUE: 0,
    }
    batch_id = str(uuid.uuid4())
    messages, unknown = outbox_messages(
        [
            (1, FIRE_BATCH.name, {"batch_id": batch_id}),
            (2, "no_such_kind", {}),
            (3, DELIVER_WEBHOOKS.name, {"delivery_ids": [str(uuid.uuid4())]}),
            (5, DELIVER_WEBHOOK.name, {"delivery_id": str(uuid.uuid4())}),
            (4, RUN_SYSTEM_JOB.name, {"run_id": str(uuid.uuid4())}),
        ]
    )
    assert [row[0] for row in unknown] == [2]
    enqueue_many(broker, messages)
    stats = {q["name"]: q for q in queue_stats(broker)}
    assert stats[FANOUT_QUEUE] == {"name": FANOUT_QUEUE, "depth": 1, "delayed": 0, "dead_letter": 0}
    assert stats[SESSIONS_QUEUE]["depth"] == 0
    # Webhook deliveries (either message shape) wait on a queue of their own, never behind a
    # fan-out.
    assert stats[WEBHOOKS_QUEUE]["depth"] == 2
    # So does a system job's run.
    assert stats[SYSTEM_QUEUE]["depth"] == 1


def test_without_a_broker_every_queue_reads_empty() -> None:
    assert queue_stats(None) == [
        {"name": q, "depth": 0, "delayed": 0, "dead_letter": 0}
        for q in (FANOUT_QUEUE, SESSIONS_QUEUE, WEBHOOKS_QUEUE, SYSTEM_QUEUE)
    ]
