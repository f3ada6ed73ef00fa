"""Run a chaos round by hand, at the issue's full sizes unless told otherwise, on a database and a
Redis namespace of its own (both removed afterwards unless --keep):

    .venv/bin/python -m tests.chaos.run                         # 200 schedules, 10 min of faults
    .venv/bin/python -m tests.chaos.run --seconds 300 --schedules 50
    MAINTFLOW_CHAOS_WORKER_THREADS=16 .venv/bin/python -m tests.chaos.run

Every ChaosConfig field can be set as MAINTFLOW_CHAOS_<FIELD>; the flags below win over the
environment. The server URLs are those of the test suite (MAINTFLOW_TEST_DATABASE_URL,
MAINTFLOW_TEST_REDIS_URL). Exits 1 if an invariant failed or a process died on its own.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
import time
import uuid
from pathlib import Path

from maintflow_core.db import migrate
from tests.chaos.config import ChaosConfig
from tests.chaos.harness import run_chaos
from tests.conftest import REDIS_URL, create_database, drop_database
from tests.kit.broker import drop_namespace


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m tests.chaos.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--seconds", type=float, help="length of the fault phase")
    p.add_argument("--schedules", type=int, help="schedules firing every second")
    p.add_argument("--targets", type=int, help="targets per schedule")
    p.add_argument("--seed", type=int, help="jitter seed of the fault intervals")
    p.add_argument(
        "--no-service-restarts",
        action="store_true",
        help="do not restart the run's Redis and PostgreSQL servers",
    )
    p.add_argument("--workdir", type=Path, help="process logs and report (default: a new dir)")
    p.add_argument("--keep", action="store_true", help="keep the database and Redis keys")
    return p.parse_args(argv)


async def main(args: argparse.Namespace) -> int:
    config = ChaosConfig().with_env()
    flags = {k: getattr(args, k) for k in ("seconds", "schedules", "targets", "seed")}
    config = dataclasses.replace(config, **{k: v for k, v in flags.items() if v is not None})
    if args.no_service_restarts:
        config = dataclasses.replace(config, restart_redis=False, restart_postgres=False)
    tag = uuid.uuid4().hex[:10]
    workdir = args.workdir or Path(f"/tmp/maintflow-chaos-{time.strftime('%Y%m%dT%H%M%S')}-{tag}")
    name, namespace = f"maintflow_chaos_{tag}", f"mfchaos-{tag}"
    database_url = await create_database(name)
    try:
        await migrate.upgrade_async(database_url)
        report = await run_chaos(config, database_url, REDIS_URL, namespace, workdir)
    finally:
        if not args.keep:
            await drop_database(name)
            drop_namespace(REDIS_URL, namespace)
    print(report, flush=True)
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args(None))))
