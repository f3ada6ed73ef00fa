"""What a worker shows of itself: its ops port (/metrics summed over the worker's processes,
/healthz, /readyz) in a process of its own, Dramatiq's Prometheus middleware, and log lines that
carry the id of the message being worked on."""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
from typing import Any

import dramatiq
from dramatiq.broker import MessageProxy
from dramatiq.middleware import Middleware

from maintflow_broker.health import readiness
from maintflow_core.logging import bind_log_fields, configure_logging
from maintflow_core.opsserver import OpsServer
from maintflow_core.settings import Settings

log = logging.getLogger("maintflow.workers")


def serve_ops_port() -> int:
    """Dramatiq fork function: the worker's ops port, started once by `dramatiq`'s main process
    after its worker processes are up. `/metrics` reads the multiprocess directory every worker
    process writes to (`PROMETHEUS_MULTIPROC_DIR`, set by `maintflow worker`)."""
    settings = Settings()
    configure_logging(settings)
    server = OpsServer(
        settings.ops_host, settings.worker_ops_port, lambda: readiness(settings), ["worker"]
    )
    server.serve_forever()
    return 0


class OpsPort(Middleware):
    """Asks Dramatiq's main process to fork `serve_ops_port` (a middleware's `forks`)."""

    @property
    def forks(self) -> list[Any]:
        return [serve_ops_port]


def dramatiq_metrics() -> Middleware:
    """Dramatiq's own Prometheus middleware (messages, errors, retries, rejects, in progress and
    durations per actor and queue), without its exposition server: the ops port serves the same
    multiprocess directory. Imported here, when the directory is already set: the module reads
    its path (`dramatiq_prom_db`) on import."""
    from dramatiq.middleware.prometheus import Prometheus

    class DramatiqMetrics(Prometheus):
        @property
        def forks(self) -> list[Any]:
            return []

        def after_process_boot(self, broker: dramatiq.Broker) -> None:
            """Also give every actor its series at 0: errors, retries and dead letters exist
            before the first one, so rates and alerts see it."""
            super().after_process_boot(broker)  # type: ignore[no-untyped-call]
            counters = (
                self.total_messages,
                self.total_errored_messages,
                self.total_retried_messages,
                self.total_rejected_messages,
            )
            for name in broker.get_declared_actors():
                labels = (broker.get_actor(name).queue_name, name)
                for counter in counters:
                    counter.labels(*labels)

    return DramatiqMetrics()


class LogFields(Middleware):
    """Bind the message id, the actor and the actor's first argument under its own name (the
    batch_id, delivery_ids, run_id… that maintflow's actors take first) to every line logged
    while a message runs — its async actor too: the event loop thread runs it in a copy of the
    worker thread's context."""

    def __init__(self) -> None:
        self._bound: dict[str, contextlib.ExitStack] = {}

    def before_process_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        stack = contextlib.ExitStack()
        fields: dict[str, Any] = {"message_id": message.message_id, "actor": message.actor_name}
        if message.args:
            name = _first_parameter(broker, message.actor_name)
            if name is not None:
                fields[name] = message.args[0]
        stack.enter_context(bind_log_fields(**fields))
        self._bound[message.message_id] = stack

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: MessageProxy,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        stack = self._bound.pop(message.message_id, None)
        if stack is not None:
            stack.close()

    def after_skip_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        self.after_process_message(broker, message)


@functools.cache
def _first_parameter_of(fn: Any) -> str | None:
    parameters = list(inspect.signature(fn).parameters)
    return parameters[0] if parameters else None


def _first_parameter(broker: dramatiq.Broker, actor_name: str) -> str | None:
    try:
        actor = broker.get_actor(actor_name)
    except dramatiq.errors.ActorNotFound:
        return None
    return _first_parameter_of(actor.fn)
