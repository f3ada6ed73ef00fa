"""Broker construction: Redis in distributed mode, in-memory for the embedded mode and tests,
with an explicit middleware list. No actors: the workers declare theirs on it
(`maintflow_workers.broker`); the scheduler and the API only send and read."""

from __future__ import annotations

from typing import Any

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import (
    AgeLimit,
    AsyncIO,
    CurrentMessage,
    Retries,
    ShutdownNotifications,
    TimeLimit,
)

from maintflow_core.queues import QUEUES
from maintflow_core.settings import Settings


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


def redis_broker(settings: Settings, **client_options: Any) -> RedisBroker:
    """The Redis broker with maintflow's middleware and settings, no queue or actor declared
    (the benchmarks' empty-actor baseline builds its broker here too, so it cannot drift).
    `client_options` go to the Redis client (e.g. the API's socket timeouts)."""
    assert settings.redis_url is not None
    client = redis.Redis.from_url(settings.redis_url, **client_options) if client_options else None
    broker: RedisBroker = RedisBroker(  # type: ignore[no-untyped-call]
        url=None if client else settings.redis_url,
        client=client,
        namespace=settings.broker_namespace,
        middleware=middleware(settings),
        heartbeat_timeout=settings.broker_heartbeat_timeout_ms,
        maintenance_chance=settings.broker_maintenance_chance,
    )
    return broker


def new_broker(
    settings: Settings, *, stub: bool | None = None, **client_options: Any
) -> dramatiq.Broker:
    """maintflow's broker with its queues declared: in-memory when `stub` (default: when no
    Redis URL is set), else on Redis."""
    use_stub = stub if stub is not None else settings.redis_url is None
    broker: dramatiq.Broker
    if use_stub:
        broker = StubBroker(middleware=middleware(settings))
    else:
        broker = redis_broker(settings, **client_options)
    for queue in QUEUES:
        broker.declare_queue(queue)
    return broker
