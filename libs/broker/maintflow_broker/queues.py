"""What is read of the queues: their depths (GET /v1/ops/queues), the oldest message still
waiting (the reconciler), and Dramatiq's dead-worker sweep run on demand (the scheduler leader).
Each works on Redis and on the in-memory broker."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.common import current_millis, dq_name, xq_name

from maintflow_broker.enqueue import evalsha_all
from maintflow_core.queues import FANOUT_QUEUE, QUEUES, SESSIONS_QUEUE


def queue_stats(broker: dramatiq.Broker | None) -> list[dict[str, Any]]:
    """Per maintflow queue: messages waiting, delayed (retries) and dead-lettered. No broker
    (an API without one): zeros. Redis errors propagate."""
    if isinstance(broker, RedisBroker):
        ns = broker.namespace
        pipe = broker.client.pipeline(transaction=False)
        for q in QUEUES:
            pipe.llen(f"{ns}:{q}")
            pipe.hlen(f"{ns}:{dq_name(q)}.msgs")
            pipe.zcard(f"{ns}:{xq_name(q)}")
        values = pipe.execute()
        counts = [tuple(values[3 * i : 3 * i + 3]) for i in range(len(QUEUES))]
    elif isinstance(broker, StubBroker):
        counts = [
            (
                broker.queues[q].qsize() if q in broker.queues else 0,
                broker.queues[dq_name(q)].qsize() if dq_name(q) in broker.queues else 0,
                len(broker.dead_letters_by_queue.get(q, [])),
            )
            for q in QUEUES
        ]
    else:
        counts = [(0, 0, 0) for _ in QUEUES]
    return [
        {"name": q, "depth": depth, "delayed": delayed, "dead_letter": dead}
        for q, (depth, delayed, dead) in zip(QUEUES, counts, strict=True)
    ]


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
    evalsha_all(broker.client, broker.scripts["dispatch"], calls)


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
