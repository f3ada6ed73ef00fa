"""`maintflow scheduler`: one replica of the scheduler service, stopped cleanly by
SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import signal

from maintflow_core.clock import SystemClock
from maintflow_core.db.session import create_engine, create_sessionmaker
from maintflow_core.logging import configure_logging
from maintflow_core.settings import Settings
from maintflow_scheduler.service import SchedulerService
from maintflow_workers.broker import build_broker


async def serve(settings: Settings) -> None:
    if settings.redis_url is None or settings.is_sqlite:
        raise SystemExit(
            "maintflow scheduler runs in distributed mode: set MAINTFLOW_DATABASE_URL "
            "(PostgreSQL) and MAINTFLOW_REDIS_URL (use `maintflow dev` for the embedded mode)"
        )
    engine = create_engine(settings, pool_size=4, max_overflow=2)
    broker = build_broker(settings)
    service = SchedulerService(settings, create_sessionmaker(engine), SystemClock(), broker)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await service.run_forever(stop)
    finally:
        await engine.dispose()
        broker.close()


def main(settings: Settings | None = None) -> None:
    settings = settings or Settings()
    configure_logging(settings)
    asyncio.run(serve(settings))
