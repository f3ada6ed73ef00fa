"""Import target of the `dramatiq` CLI in distributed mode (`maintflow worker` runs it): builds
the Redis broker and the worker context from MAINTFLOW_* variables in each worker process."""

from __future__ import annotations

from maintflow_core import metrics
from maintflow_core.db.store import open_store
from maintflow_core.logging import configure_logging
from maintflow_core.settings import Settings
from maintflow_workers import context
from maintflow_workers.broker import build_broker
from maintflow_workers.lifecycle import DisposeEngine, treat_group_sigterm_as_one
from maintflow_workers.observe import LogFields, OpsPort, dramatiq_metrics

treat_group_sigterm_as_one()
settings = Settings()
configure_logging(settings)
metrics.configure(settings.metrics_enabled)
if settings.redis_url is None:
    raise SystemExit("maintflow worker needs MAINTFLOW_REDIS_URL (distributed mode)")
broker = build_broker(settings)
context.configure(context.WorkerContext(settings, broker=broker, store=open_store(settings)))
broker.add_middleware(DisposeEngine())
broker.add_middleware(LogFields())
broker.add_middleware(OpsPort())
if settings.metrics_enabled:
    broker.add_middleware(dramatiq_metrics())
