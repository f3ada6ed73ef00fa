"""Broker construction (Redis in distributed mode, in-memory for embedded mode and unit tests),
with an explicit middleware list, and fast bulk enqueue for fan-out."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.common import current_millis, dq_name
from dramatiq.middleware import (
    AgeLimit,
    AsyncIO,
    CurrentMessage,
    Retries,
    ShutdownNotifications,
    TimeLimit,
)
from redis.exceptions import NoScriptError

from maintflow_core.queues import FANOUT_QUEUE, QUEUES, SESSIONS_QUEUE
from maintflow_core.settings import Settings

__all__ = [
    "FANOUT_QUEUE",
    "QUEUES",
    "SESSIONS_QUEUE",
    "build_broker",
    "enqueue_many",
    "oldest_queued_at",
    "redis_broker",
    "requeue_from_dead_workers",
]


def middleware(settings: Settings) -> list[Any]:
    return [
        AgeLimit(),
        TimeLimit(time_limit=int(settings.actor_time_limit_s * 1000)),
        ShutdownNotifications(),
        Retries(
            max_retries=settings.actor_max_retries,
            min_backoff=settings.actor_min_backoff_ms,
            max_backoff=settings.actor_max_backoff_ms,
        ),
        CurrentMessage(),
        AsyncIO(),
    ]


def redis_broker(settings: Settings) -> RedisBroker:
    """The Redis broker with maintflow's middleware and settings, no actors declared (the
    benchmarks' empty-actor baseline builds its broker here too, so it cannot drift)."""
    assert settings.redis_url is not None
    broker: RedisBroker = RedisBroker(  # type: ignore[no-untyped-call]
        url=settings.redis_url,
        namespace=settings.broker_namespace,
        middleware=middleware(settings),
        heartbeat_timeout=settings.broker_heartbeat_timeout_ms,
        maintenance_chance=settings.broker_maintenance_chance,
    )
    return broker


def build_broker(settings: Settings, *, stub: bool | None = None) -> dramatiq.Broker:
    """A broker with maintflow's middleware and actors declared."""
    use_stub = stub if stub is not None else settings.redis_url is None
    broker: dramatiq.Broker
    if use_stub:
        broker = StubBroker(middleware=middleware(settings))
    else:
        broker = redis_broker(settings)
    from maintflow_workers.actors import declare

    declare(broker, settings)
    return broker


def message(broker: dramatiq.Broker, actor_name: str, *args: Any) -> dramatiq.Message[Any]:
    actor = broker.get_actor(actor_name)
    return actor.message(*args)


def enqueue_many(broker: dramatiq.Broker, messages: Sequence[dramatiq.Message[Any]]) -> None:
    """Enqueue many messages in few round trips. On Redis this pipelines Dramatiq's own enqueue
    script (same keys and format as `broker.enqueue`), which is several times faster than one
    `send()` per message; elsewhere it falls back to `broker.enqueue`."""
    if not isinstance(broker, RedisBroker):
        for msg in messages:
            broker.enqueue(msg)
        return
    script = broker.scripts["dispatch"]
    for start in range(0, len(messages), 1000):
        chunk = [
            m.copy(options={"redis_message_id": str(uuid.uuid4())})
            for m in messages[start : start + 1000]
        ]
        calls = []
        for msg in chunk:
            broker.emit_before("enqueue", msg, None)
            calls.append(
                (
                    broker.namespace,
                    "enqueue",
                    current_millis(),
                    msg.queue_name,
                    broker.broker_id,
                    broker.heartbeat_timeout,
                    broker.dead_message_ttl,
                    0,
                    broker._max_unpack_size(),  # type: ignore[no-untyped-call]
                    msg.options["redis_message_id"],
                    msg.encode(),
                )
            )
        _evalsha_all(broker.client, script, calls)
        for msg in chunk:
            broker.emit_after("enqueue", msg, None)


def _evalsha_all(client: Any, script: Any, calls: list[tuple[Any, ...]]) -> None:
    """EVALSHA of a one-key script for each argument tuple, in one pipeline. redis-py's Script
    objects would add a SCRIPT EXISTS round trip to every pipeline; instead the script is loaded
    only when Redis says it lacks it (after a restart), and just the refused calls are re-sent."""
    while calls:
        pipe = client.pipeline(transaction=False)
        for args in calls:
            pipe.evalsha(script.sha, 1, *args)
        results = pipe.execute(raise_on_error=False)
        refused = [
            args
            for args, result in zip(calls, results, strict=True)
            if isinstance(result, NoScriptError)
        ]
        errors = [
            r for r in results if isinstance(r, Exception) and not isinstance(r, NoScriptError)
        ]
        if errors:
            raise errors[0]
        if refused:
            client.script_load(script.script)
        calls = refused


def requeue_from_dead_workers(broker: dramatiq.Broker) -> None:
    """Run Dramatiq's dead-worker sweep on every maintflow queue and retry queue, now.

    A worker process that dies without a graceful stop (SIGKILL, OOM, a lost node) leaves the
    messages it had fetched (running and prefetched) in its acknowledgement sets. Dramatiq moves
    them back to their queues in a "maintenance" pass, once the worker's heartbeat is older than
    `heartbeat_timeout` — but it runs that pass only on a random share of broker calls, for the
    queue of that call, so recovery takes anywhere from seconds to many minutes. The scheduler
    leader calls this every `broker_sweep_interval_s` so that it takes at most that much longer
    than the heartbeat timeout. It is Dramatiq's own sweep (its dispatch script with the
    maintenance flag set, on the harmless `qsize` command): same keys, same rules, no second
    implementation. A no-op on the in-memory broker, whose messages die with the process."""
    if not isinstance(broker, RedisBroker):
        return
    calls = [
        (
            broker.namespace,
            "qsize",
            current_millis(),
            name,
            broker.broker_id,
            broker.heartbeat_timeout,
            broker.dead_message_ttl,
            1,
            broker._max_unpack_size(),  # type: ignore[no-untyped-call]
        )
        for queue in QUEUES
        for name in (queue, dq_name(queue))
    ]
    _evalsha_all(broker.client, broker.scripts["dispatch"], calls)


def oldest_queued_at(broker: dramatiq.Broker) -> datetime | None:
    """Creation time of the oldest message still waiting in the fan-out queues (and their retry
    queues), or None when they are empty. Queues are FIFO, so every message created before it
    has been handed to a worker. Reads only each queue's head; broker errors propagate."""
    names = [n for q in (FANOUT_QUEUE, SESSIONS_QUEUE) for n in (q, dq_name(q))]
    bodies: list[bytes] = []
    if isinstance(broker, RedisBroker):
        keys = [f"{broker.namespace}:{name}" for name in names]
        pipe = broker.client.pipeline(transaction=False)
        for key in keys:
            pipe.lindex(key, 0)
        heads = pipe.execute()
        pipe = broker.client.pipeline(transaction=False)
        for key, head in zip(keys, heads, strict=True):
            if head is not None:
                pipe.hget(f"{key}.msgs", head)
        # A head acknowledged in between reads as None: the next message is newer anyway.
        bodies = [body for body in pipe.execute() if body is not None]
    elif isinstance(broker, StubBroker):
        for name in names:
            queue = broker.queues.get(name)
            if queue is not None:
                with queue.mutex:
                    if queue.queue:
                        bodies.append(queue.queue[0])
    stamps = [dramatiq.Message.decode(body).message_timestamp for body in bodies]
    return datetime.fromtimestamp(min(stamps) / 1000, UTC) if stamps else None
