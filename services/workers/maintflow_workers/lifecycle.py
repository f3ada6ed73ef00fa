"""Worker-process lifecycle: a middleware that disposes the actor engine on shutdown, and helpers
to run an in-process worker (embedded mode, tests)."""

from __future__ import annotations

from typing import Any

import dramatiq
from dramatiq.asyncio import get_event_loop_thread
from dramatiq.middleware import Middleware

from maintflow_workers import context


class DisposeEngine(Middleware):
    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: Any) -> None:
        loop_thread = get_event_loop_thread()
        if loop_thread is not None:
            loop_thread.run_coroutine(context.current().dispose())


def start_worker(broker: dramatiq.Broker, threads: int, worker_timeout_ms: int = 100) -> Any:
    broker.add_middleware(DisposeEngine())
    broker.emit_after("process_boot")
    worker = dramatiq.Worker(broker, worker_threads=threads, worker_timeout=worker_timeout_ms)
    worker.start()
    return worker
