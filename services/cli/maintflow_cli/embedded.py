"""`maintflow dev`: the whole system in one process — the API, the scheduler (always leader: it is
the only replica) and Dramatiq workers on an in-memory broker — over a SQLite file by default."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import uvicorn

from maintflow_api.app import create_app
from maintflow_api.deps import AppState
from maintflow_core import metrics
from maintflow_core.clock import SystemClock
from maintflow_core.db import migrate
from maintflow_core.db.store import open_store
from maintflow_core.logging import configure_logging
from maintflow_core.settings import EMBEDDED_DIR, Settings
from maintflow_core.usecases.auth import authenticate
from maintflow_core.usecases.teams import create_team
from maintflow_scheduler.service import SchedulerService
from maintflow_workers import context
from maintflow_workers.broker import build_broker
from maintflow_workers.lifecycle import start_worker

TOKEN_FILE = EMBEDDED_DIR / "dev-token"


async def _demo_token(state: AppState) -> str:
    """The demo team's admin token: made on first start, kept in .maintflow/dev-token (a local
    development convenience; the database itself stores only hashes)."""
    if TOKEN_FILE.exists():
        token = TOKEN_FILE.read_text().strip()
        async with state.open_db() as db:
            if await authenticate(db, token) is not None:
                return token
    async with state.open_db() as db, db.begin():
        new = await create_team(db, state.clock, "Demo team", "admin@demo.maintflow.local")
    TOKEN_FILE.parent.mkdir(parents=True, exist_ok=True)
    TOKEN_FILE.write_text(new.token + "\n")
    TOKEN_FILE.chmod(0o600)
    return new.token


def run_dev(settings: Settings, host: str, port: int) -> int:
    settings = settings.model_copy(update={"redis_url": None})
    configure_logging(settings, default_format="text")
    migrate.upgrade(settings.database_url)
    clock = SystemClock()
    store = open_store(settings)
    runtime: dict[str, Any] = {}

    async def on_startup(state: AppState) -> None:
        token = await _demo_token(state)
        broker = build_broker(settings, stub=True)
        context.configure(context.WorkerContext(settings, clock, broker=broker, store=store))
        worker = start_worker(broker, threads=4)
        state.broker = broker
        scheduler = SchedulerService(
            settings,
            state.open_db,
            clock,
            broker,
            holder_id=f"embedded:{uuid.uuid4().hex[:8]}",
            store=store,
        )
        await scheduler.renew()
        scheduler.start()
        runtime.update(broker=broker, worker=worker, scheduler=scheduler)
        base = f"http://{host}:{port}"
        print(
            f"\nmaintflow dev is running\n"
            f"  API:      {base}/v1\n"
            f"  docs:     {base}/docs\n"
            f"  database: {settings.database_url}\n"
            f"  token:    {token}\n\n"
            f'  try: curl -H "Authorization: Bearer {token}" {base}/v1/users/me\n'
            f"  Ctrl-C stops it.\n",
            flush=True,
        )

    async def on_shutdown(state: AppState) -> None:
        scheduler: SchedulerService | None = runtime.get("scheduler")
        if scheduler is not None:
            await scheduler.stop()
        worker = runtime.get("worker")
        if worker is not None:
            await asyncio.to_thread(worker.stop)

    app = create_app(
        settings,
        clock,
        store=store,
        on_startup=on_startup,
        on_shutdown=on_shutdown,
        metric_roles=metrics.ROLES,
    )
    Path(EMBEDDED_DIR).mkdir(exist_ok=True)
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning")
    except KeyboardInterrupt:
        # uvicorn shuts down gracefully on Ctrl-C, then re-raises the signal; that is a clean stop.
        pass
    return 0
