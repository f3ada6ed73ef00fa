"""Worker-process lifecycle: a middleware that disposes the actor engine on shutdown, and helpers
to run an in-process worker (embedded mode, tests)."""

from __future__ import annotations

import multiprocessing
import signal
import time
from types import FrameType
from typing import Any

import dramatiq
from dramatiq.asyncio import get_event_loop_thread
from dramatiq.middleware import Middleware

from maintflow_workers import context


class DisposeEngine(Middleware):
    """Close the actors' database pools once the worker has stopped: after its threads finished
    their messages (closing them before, as `before_worker_shutdown` would, fails every message
    still running with "pool is closing"), and before the AsyncIO middleware stops the event
    loop they belong to (after-hooks run in reverse order, and this one is added last)."""

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: Any) -> None:
        loop_thread = get_event_loop_thread()
        if loop_thread is not None:
            loop_thread.run_coroutine(context.current().dispose())


# A group SIGTERM reaches a worker process twice within milliseconds: once directly, once
# forwarded by Dramatiq's main process. Dramatiq reads a second SIGTERM as "kill now".
DUPLICATE_STOP_WINDOW_S = 5.0


def treat_group_sigterm_as_one() -> None:
    """In a Dramatiq worker process (a child of `dramatiq`'s main process): read the SIGTERMs that
    arrive within DUPLICATE_STOP_WINDOW_S of the first as the same stop request, so that
    `kill -TERM -PGID`, systemd's control-group kill mode or a container runtime signalling every
    process stops as gracefully as a SIGTERM to the main process (running messages finish,
    prefetched ones are requeued, exit status 0). A SIGTERM later than that still kills at once,
    as Dramatiq documents. Must run after Dramatiq installed its handler: the broker module is
    imported after that, which is where this is called."""
    if multiprocessing.parent_process() is None:
        return
    dramatiq_handler = signal.getsignal(signal.SIGTERM)
    if not callable(dramatiq_handler):
        return
    first_at: float | None = None

    def on_sigterm(signum: int, frame: FrameType | None) -> Any:
        nonlocal first_at
        now = time.monotonic()
        if first_at is not None and now - first_at < DUPLICATE_STOP_WINDOW_S:
            return None
        if first_at is None:
            first_at = now
        return dramatiq_handler(signum, frame)

    signal.signal(signal.SIGTERM, on_sigterm)


def start_worker(broker: dramatiq.Broker, threads: int, worker_timeout_ms: int = 100) -> Any:
    broker.add_middleware(DisposeEngine())
    broker.emit_after("process_boot")
    worker = dramatiq.Worker(broker, worker_threads=threads, worker_timeout=worker_timeout_ms)
    worker.start()
    return worker
