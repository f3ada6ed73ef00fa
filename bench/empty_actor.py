"""Import target of the `dramatiq` CLI for row 1's baseline: an empty actor on a RedisBroker built
exactly like maintflow's (same middleware list, heartbeat and maintenance settings, the same
worker-context and engine-disposal middleware), so the only difference from the fan-out worker is
what the actor does. Run it as maintflow runs its worker:

    python -m dramatiq bench.empty_actor --processes 1 --threads 8 --queues bench_empty
"""

from __future__ import annotations

import dramatiq

from maintflow_broker.brokers import redis_broker
from maintflow_core.db.store import open_store
from maintflow_core.logging import configure_logging
from maintflow_core.settings import Settings
from maintflow_workers import context
from maintflow_workers.lifecycle import DisposeEngine

QUEUE = "bench_empty"  # bench.fanout sends to these names
ACTOR = "bench_empty"


async def empty(_batch_id: str, _label: str, _notes: str | None = None) -> None:
    """Takes the arguments create_session takes and does nothing (async, like the real actors,
    so it runs through the same AsyncIO event-loop thread)."""


def build(settings: Settings) -> dramatiq.Broker:
    broker = redis_broker(settings)
    dramatiq.set_broker(broker)
    dramatiq.actor(
        actor_name=ACTOR,
        queue_name=QUEUE,
        broker=broker,
        max_retries=settings.actor_max_retries,
        time_limit=int(settings.actor_time_limit_s * 1000),
    )(empty)
    return broker


# Like maintflow_workers.entry, this module is only ever imported by the dramatiq CLI: the harness
# does not import it (bench.fanout names the queue and actor itself).
settings = Settings()
configure_logging(settings)
if settings.redis_url is None:
    raise SystemExit("bench.empty_actor needs MAINTFLOW_REDIS_URL")
broker = build(settings)
context.configure(context.WorkerContext(settings, broker=broker, store=open_store(settings)))
broker.add_middleware(DisposeEngine())
