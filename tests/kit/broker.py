"""Dramatiq brokers and Redis key namespaces in tests. Building a broker (`build_broker`) also
makes it Dramatiq's global broker, the one actors send through: a test that built one on Redis
must put an in-memory one back when it is done, or the next test sends through a closed
connection."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dramatiq
import redis

from maintflow_core.settings import Settings
from maintflow_workers.broker import build_broker


@contextmanager
def redis_broker(settings: Settings, redis_url: str, namespace: str) -> Iterator[dramatiq.Broker]:
    """A broker on Redis in `namespace`, with maintflow's actors; closed afterwards, and an
    in-memory broker made the global one again."""
    broker = build_broker(
        settings.model_copy(update={"redis_url": redis_url, "broker_namespace": namespace})
    )
    try:
        yield broker
    finally:
        broker.close()
        build_broker(settings, stub=True)


def drop_namespace(redis_url: str, namespace: str) -> int:
    """Delete every key of `namespace` (`<namespace>:*`); returns how many there were."""
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(f"{namespace}:*", count=5000))
        for start in range(0, len(keys), 5000):
            client.delete(*keys[start : start + 5000])
        return len(keys)
    finally:
        client.close()
