"""`maintflow dev | api | scheduler | worker | migrate | admin`: one command for every role."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from maintflow_core.queues import QUEUES
from maintflow_core.settings import Settings


def _settings() -> Settings:
    return Settings()


def cmd_dev(args: argparse.Namespace) -> int:
    from maintflow_cli.embedded import run_dev

    return run_dev(_settings(), args.host, args.port)


def _exit_cleanly_after_graceful_stop() -> None:
    """uvicorn handles SIGTERM/SIGINT itself (a graceful shutdown), then restores the handlers it
    found and raises the signal again. With the default handlers in place that second delivery
    kills the process (exit status -15), which supervisors read as a crash; with these, the
    finished shutdown exits 0."""

    def exit_zero(signum: int, frame: object) -> None:
        raise SystemExit(0)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, exit_zero)


def _fresh_metrics_dir(configured: str | None, role: str) -> str:
    """The directory a role's processes write their metrics to (prometheus-client's
    multiprocess mode), empty: files left by an earlier run would add its counts to this one's.
    Set in the environment before any process imports prometheus_client, which reads it then
    (Dramatiq's Prometheus middleware reads `dramatiq_prom_db`)."""
    if configured:
        path = Path(configured)
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
    else:
        path = Path(tempfile.mkdtemp(prefix=f"maintflow-{role}-metrics-"))
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)
    os.environ["dramatiq_prom_db"] = str(path)
    return str(path)


def cmd_api(args: argparse.Namespace) -> int:
    import uvicorn

    from maintflow_core.logging import configure_logging

    settings = _settings()
    configure_logging(settings)
    _exit_cleanly_after_graceful_stop()
    if args.workers > 1:
        # One /metrics for all of them: whichever process answers sums every process's files.
        _fresh_metrics_dir(None, "api")
    uvicorn.run(
        "maintflow_api.main:app_from_env",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=settings.log_level.lower(),
        # Our logging, not uvicorn's own configuration: its lines go out in the same format,
        # and the API logs one `http_request` line per request itself (with its request id).
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=20,
        timeout_keep_alive=settings.api_keep_alive_s,
    )
    return 0


def cmd_scheduler(_args: argparse.Namespace) -> int:
    from maintflow_scheduler.main import main

    main(_settings())
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    settings = _settings()
    if settings.redis_url is None:
        print("maintflow worker needs MAINTFLOW_REDIS_URL (distributed mode)", file=sys.stderr)
        return 2
    threads = args.threads or settings.worker_threads
    # Each worker process reads its settings again; its connection pools follow its threads.
    os.environ["MAINTFLOW_WORKER_THREADS"] = str(threads)
    _fresh_metrics_dir(settings.worker_metrics_dir, "worker")
    argv = [
        sys.executable,
        "-m",
        "dramatiq",
        "maintflow_workers.entry",
        "--processes",
        str(args.processes or settings.worker_processes),
        "--threads",
        str(threads),
        "--queues",
        *(args.queues or QUEUES),
        "--worker-shutdown-timeout",
        str(int(settings.actor_time_limit_s * 1000)),
    ]
    os.execv(sys.executable, argv)


def cmd_migrate(args: argparse.Namespace) -> int:
    from maintflow_core.db import migrate

    settings = _settings()
    if args.downgrade:
        migrate.downgrade(settings.database_url, args.downgrade)
        print(f"downgraded to {args.downgrade}")
    else:
        migrate.upgrade(settings.database_url, args.revision)
        print(f"database at {args.revision}")
    return 0


def cmd_healthcheck(args: argparse.Namespace) -> int:
    """Exit 0 when GET <path> answers 200 on one of the ports (the image's HEALTHCHECK: one
    image, whichever role it runs — the API's port, the scheduler's or the worker's ops port)."""
    import urllib.request

    settings = _settings()
    ports = args.port or [8000, settings.scheduler_ops_port, settings.worker_ops_port]
    for port in ports:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{port}{args.path}", timeout=args.timeout
            ) as resp:
                if resp.status == 200:
                    return 0
        except OSError:
            continue
    print(f"no 200 from {args.path} on port(s) {', '.join(map(str, ports))}", file=sys.stderr)
    return 1


def cmd_create_team(args: argparse.Namespace) -> int:
    from maintflow_cli.admin import create_team

    result = asyncio.run(create_team(_settings(), args.name, args.email))
    print(json.dumps(result))
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="maintflow", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    dev = sub.add_parser("dev", help="embedded mode: API, scheduler and workers in one process")
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=int, default=8000)
    dev.set_defaults(func=cmd_dev)

    api = sub.add_parser("api", help="serve the REST API (distributed mode)")
    api.add_argument("--host", default="0.0.0.0")
    api.add_argument("--port", type=int, default=8000)
    api.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    api.set_defaults(func=cmd_api)

    sched = sub.add_parser("scheduler", help="run one scheduler replica (leader-elected)")
    sched.set_defaults(func=cmd_scheduler)

    worker = sub.add_parser("worker", help="run Dramatiq workers on Redis")
    worker.add_argument("--processes", type=int, default=None)
    worker.add_argument("--threads", type=int, default=None)
    worker.add_argument(
        "--queues",
        nargs="+",
        choices=QUEUES,
        default=None,
        help="take only these queues (default: all); e.g. a deployment of `--queues webhooks` "
        "beside one of the others keeps webhook traffic off the fan-out's threads",
    )
    worker.set_defaults(func=cmd_worker)

    check = sub.add_parser(
        "healthcheck", help="probe this container's API or ops port (exit 0 when it answers)"
    )
    check.add_argument(
        "--port", type=int, action="append", help="port to try (repeatable; default: all roles')"
    )
    check.add_argument("--path", default="/readyz", choices=["/healthz", "/readyz"])
    check.add_argument("--timeout", type=float, default=3.0)
    check.set_defaults(func=cmd_healthcheck)

    mig = sub.add_parser("migrate", help="apply database migrations")
    mig.add_argument("--revision", default="head")
    mig.add_argument("--downgrade", metavar="REVISION", default=None)
    mig.set_defaults(func=cmd_migrate)

    admin = sub.add_parser("admin", help="administration")
    admin_sub = admin.add_subparsers(dest="admin_command", required=True)
    team = admin_sub.add_parser("create-team", help="create a team and its first admin")
    team.add_argument("name")
    team.add_argument("--email", default=None)
    team.set_defaults(func=cmd_create_team)
    return p


def main(argv: Sequence[str] | None = None) -> None:
    args = parser().parse_args(argv)
    sys.exit(args.func(args))
