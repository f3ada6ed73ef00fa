"""`maintflow scheduler`: one replica of the scheduler service, stopped cleanly by
SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import signal

from maintflow_broker.brokers import new_broker
from maintflow_broker.health import readiness
from maintflow_core import metrics
from maintflow_core.clock import SystemClock
from maintflow_core.db.session import create_engine, create_sessionmaker
from maintflow_core.db.store import open_store
from maintflow_core.logging import configure_logging
from maintflow_core.opsserver import OpsServer
from maintflow_core.settings import Settings
from maintflow_scheduler.service import SchedulerService


def session_limits(settings: Settings) -> dict[str, str]:
    """PostgreSQL limits for the scheduler's sessions. A replica frozen inside a transaction
    (SIGSTOP, a VM pause, a partition that keeps the TCP connection open) would otherwise hold
    the lease row and its claimed schedules locked for as long as it is frozen, and no standby
    could take over. PostgreSQL ends such a session after half a lease; a renew never waits on
    the lease row for longer than one renew interval."""
    lease_ms = int(settings.scheduler_lease_s * 1000)
    return {
        "idle_in_transaction_session_timeout": str(max(lease_ms // 2, 500)),
        "lock_timeout": str(max(int(settings.scheduler_renew_interval_s * 1000), 500)),
    }


async def serve(settings: Settings) -> None:
    if settings.redis_url is None or settings.is_sqlite:
        raise SystemExit(
            "maintflow scheduler runs in distributed mode: set MAINTFLOW_DATABASE_URL "
            "(PostgreSQL) and MAINTFLOW_REDIS_URL (use `maintflow dev` for the embedded mode)"
        )
    engine = create_engine(
        settings,
        pool_size=4,
        max_overflow=2,
        connect_args={"server_settings": session_limits(settings)},
    )
    broker = new_broker(settings)
    service = SchedulerService(
        settings, create_sessionmaker(engine), SystemClock(), broker, store=open_store(settings)
    )
    # Ready whether or not this replica leads: a standby is what a failover needs.
    ops = OpsServer(
        settings.ops_host, settings.scheduler_ops_port, lambda: readiness(settings), ["scheduler"]
    )
    ops.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await service.run_forever(stop)
    finally:
        ops.stop()
        await engine.dispose()
        broker.close()


def main(settings: Settings | None = None) -> None:
    settings = settings or Settings()
    configure_logging(settings)
    metrics.configure(settings.metrics_enabled)
    asyncio.run(serve(settings))
