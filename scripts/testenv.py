#!/usr/bin/env python3
"""Provide PostgreSQL and Redis for a test run, then run pytest (normally via scripts/test).

Usage: scripts/testenv.py [-- pytest args...]

PostgreSQL: $MAINTFLOW_TEST_DATABASE_URL, else postgres@/root@127.0.0.1:5432 (trust auth),
else a throwaway cluster (initdb + pg_ctl) in a temp dir on a free port.
Redis: $MAINTFLOW_TEST_REDIS_URL, else redis://127.0.0.1:6379/0, else a throwaway redis-server.
MAINTFLOW_TEST_FORCE_THROWAWAY=1 skips the localhost probes (explicit URLs still win).

pytest gets MAINTFLOW_TEST_DATABASE_URL (postgresql+asyncpg://user[:pw]@host:port/<maintenance
db>: the conftest creates and drops its own database on that server) and MAINTFLOW_TEST_REDIS_URL.

With no arguments that pick tests (paths, -k, -m, --lf…), the whole suite runs as two pytest
runs: everything but SERIAL on MAINTFLOW_TEST_WORKERS (2) pytest-xdist workers, whole files per
worker (a module's cluster of processes stays in one worker; each worker has its own database),
then SERIAL one after the other. MAINTFLOW_TEST_WORKERS=1: one run, in order.
Exits with the first failing run's exit code (0 if all passed), or 2 if a service cannot be
provided.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from types import FrameType
from urllib.parse import urlsplit

LOCAL_PG = [
    "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres",
    "postgresql+asyncpg://root@127.0.0.1:5432/postgres",
]
LOCAL_REDIS = "redis://127.0.0.1:6379/0"
PG_HOWTO = (
    "no PostgreSQL server binaries (initdb, pg_ctl) found. Install them "
    "(Debian/Ubuntu: apt-get install postgresql; macOS: brew install postgresql@16) "
    "or set MAINTFLOW_TEST_DATABASE_URL=postgresql+asyncpg://USER[:PASSWORD]@HOST:PORT/postgres "
    "pointing at a server where USER may CREATE DATABASE."
)
REDIS_HOWTO = (
    "no redis-server found. Install it (Debian/Ubuntu: apt-get install redis-server; "
    "macOS: brew install redis) or set MAINTFLOW_TEST_REDIS_URL=redis://HOST:PORT/0."
)


class SetupError(Exception):
    """A service cannot be provided; the message says what to do."""


def log(msg: str) -> None:
    print(f"testenv: {msg}", file=sys.stderr, flush=True)


def redact(url: str) -> str:
    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", url)


def normalize_pg_url(url: str) -> str:
    """Any postgres URL -> postgresql+asyncpg://... with a database part (default: postgres)."""
    scheme, rest = url.split("://", 1)
    if not scheme.startswith("postgres"):
        raise SetupError(f"MAINTFLOW_TEST_DATABASE_URL is not a PostgreSQL URL: {redact(url)}")
    if not urlsplit(url).path.strip("/"):
        base, sep, query = rest.partition("?")
        rest = base.rstrip("/") + "/postgres" + sep + query
    return "postgresql+asyncpg://" + rest


def pg_error(url: str, timeout: float = 2.0) -> str | None:
    """None if PostgreSQL answers a query at this URL, else why not."""
    import asyncpg

    async def probe() -> None:
        conn = await asyncpg.connect("postgresql://" + url.split("://", 1)[1], timeout=timeout)
        try:
            await conn.fetchval("SELECT 1")
        finally:
            await conn.close()

    try:
        asyncio.run(asyncio.wait_for(probe(), timeout + 1))
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}".strip()
    return None


def redis_error(url: str, timeout: float = 2.0) -> str | None:
    """None if Redis answers PING at this URL, else why not."""
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}".strip()
    return None


def shutdown_redis(url: str) -> None:
    """SHUTDOWN NOSAVE the Redis server at `url`, if one still answers there."""
    import redis

    with contextlib.suppress(Exception):
        client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        try:
            client.shutdown(nosave=True)
        finally:
            client.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pg_bindir() -> str | None:
    """Directory holding initdb and pg_ctl: PATH first, then the newest versioned install."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return os.path.dirname(os.path.realpath(on_path))
    found = [
        d
        for pattern in (
            "/usr/lib/postgresql/*/bin",
            "/opt/homebrew/opt/postgresql@*/bin",
            "/usr/local/opt/postgresql@*/bin",
        )
        for d in glob.glob(pattern)
        if os.access(os.path.join(d, "initdb"), os.X_OK)
    ]
    found.sort(key=lambda d: [int(n) for n in re.findall(r"\d+", d)])
    return found[-1] if found else None


def as_postgres_user(cmd: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root: as root, run them as the 'postgres' user."""
    if os.geteuid() != 0:
        return cmd
    if shutil.which("runuser"):
        return ["runuser", "-u", "postgres", "--", *cmd]
    return ["su", "postgres", "-s", "/bin/sh", "-c", shlex.join(cmd)]


def run_quiet(cmd: list[str], what: str, cwd: str) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SetupError(f"{what} failed ({shlex.join(cmd)}):\n{proc.stdout}{proc.stderr}")


class ThrowawayPostgres:
    """A PostgreSQL cluster of its own (initdb + pg_ctl) in a temp dir on a free port, trust
    auth, removed when `stack` closes. `stop()` and `start()` again keep its data and port (the
    readiness tests stop and start it under running processes)."""

    def __init__(self, stack: contextlib.ExitStack) -> None:
        bindir = pg_bindir()
        if bindir is None:
            raise SetupError(PG_HOWTO)
        self.tmp = tmp = tempfile.mkdtemp(prefix="maintflow-pg-")
        stack.callback(shutil.rmtree, tmp, ignore_errors=True)
        if os.geteuid() == 0:
            try:
                shutil.chown(tmp, "postgres", "postgres")
            except (LookupError, OSError) as exc:
                raise SetupError(
                    "running as root, but initdb refuses to run as root and there is no usable "
                    f"'postgres' user ({exc}). Create one (useradd --system postgres), run as a "
                    "normal user, or set MAINTFLOW_TEST_DATABASE_URL."
                ) from exc
        data, port = os.path.join(tmp, "data"), free_port()
        initdb = [os.path.join(bindir, "initdb"), "-D", data, "-U", "postgres", "-A", "trust"]
        run_quiet(
            as_postgres_user([*initdb, "-E", "UTF8", "--no-locale", "--no-sync"]), "initdb", tmp
        )
        with open(os.path.join(data, "postgresql.conf"), "a") as conf:
            conf.write(
                f"\nport = {port}\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{tmp}'\n"
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                "max_connections = 200\n"
            )
        self.pg_ctl, self.data = os.path.join(bindir, "pg_ctl"), data
        self.url = f"postgresql+asyncpg://postgres@127.0.0.1:{port}/postgres"
        stack.callback(self.stop)
        self.start()

    def start(self) -> None:
        log_file = os.path.join(self.tmp, "postgres.log")
        start = [self.pg_ctl, "-D", self.data, "-l", log_file, "-w", "-t", "60", "start"]
        run_quiet(as_postgres_user(start), "pg_ctl start", self.tmp)
        err = pg_error(self.url, timeout=10)
        if err:
            raise SetupError(f"throwaway PostgreSQL started but does not answer: {err}")

    def stop(self) -> None:
        stop = as_postgres_user([self.pg_ctl, "-D", self.data, "-m", "immediate", "-w", "stop"])
        subprocess.run(stop, cwd=self.tmp, capture_output=True, check=False)


def start_throwaway_pg(stack: contextlib.ExitStack) -> str:
    return ThrowawayPostgres(stack).url


class ThrowawayRedis:
    """A redis-server of its own on a free port (no persistence), stopped when `stack` closes;
    `stop()` and `start()` again keep its port."""

    def __init__(self, stack: contextlib.ExitStack) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            raise SetupError(REDIS_HOWTO)
        self.exe = exe
        self.tmp = tempfile.mkdtemp(prefix="maintflow-redis-")
        stack.callback(shutil.rmtree, self.tmp, ignore_errors=True)
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None
        stack.callback(self.stop)
        self.start()

    def start(self) -> None:
        args = ["--save", "", "--appendonly", "no", "--port", str(self.port), "--bind", "127.0.0.1"]
        with open(os.path.join(self.tmp, "redis.log"), "ab") as out:
            # Own session: a terminal Ctrl-C must not kill it before pytest's teardown is done.
            self.proc = subprocess.Popen(
                [self.exe, *args, "--dir", self.tmp],
                stdout=out,
                stderr=out,
                cwd=self.tmp,
                start_new_session=True,
            )
        deadline = time.monotonic() + 15
        while (err := redis_error(self.url, timeout=1)) is not None:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                with open(os.path.join(self.tmp, "redis.log")) as f:
                    raise SetupError(f"throwaway redis-server did not come up: {err}\n{f.read()}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
        # The chaos test restarts the server it is given: the one listening now may be a
        # daemon that this process did not start.
        shutdown_redis(self.url)


def start_throwaway_redis(stack: contextlib.ExitStack) -> str:
    return ThrowawayRedis(stack).url


def forced_throwaway() -> bool:
    return os.environ.get("MAINTFLOW_TEST_FORCE_THROWAWAY", "").lower() in {"1", "true", "yes"}


def provide_pg(stack: contextlib.ExitStack) -> tuple[str, str]:
    """(SQLAlchemy server URL, description)."""
    if env := os.environ.get("MAINTFLOW_TEST_DATABASE_URL"):
        url = normalize_pg_url(env)
        if err := pg_error(url, timeout=5):
            raise SetupError(f"MAINTFLOW_TEST_DATABASE_URL={redact(url)} does not answer: {err}")
        return url, "from MAINTFLOW_TEST_DATABASE_URL"
    errors = ["skipped (MAINTFLOW_TEST_FORCE_THROWAWAY)"] if forced_throwaway() else []
    for url in [] if errors else LOCAL_PG:
        if (err := pg_error(url)) is None:
            return url, "local server"
        errors.append(f"{url.split('//')[1]}: {err}")
    log("no local PostgreSQL usable (" + "; ".join(errors) + "): starting a throwaway cluster")
    return start_throwaway_pg(stack), "throwaway, removed at exit"


def provide_redis(stack: contextlib.ExitStack) -> tuple[str, str]:
    if env := os.environ.get("MAINTFLOW_TEST_REDIS_URL"):
        if err := redis_error(env, timeout=5):
            raise SetupError(f"MAINTFLOW_TEST_REDIS_URL={redact(env)} does not answer: {err}")
        return env, "from MAINTFLOW_TEST_REDIS_URL"
    why = "skipped (MAINTFLOW_TEST_FORCE_THROWAWAY)" if forced_throwaway() else None
    if why is None and (why := redis_error(LOCAL_REDIS)) is None:
        return LOCAL_REDIS, "local server"
    log(f"no local Redis usable ({why}): starting a throwaway redis-server")
    return start_throwaway_redis(stack), "throwaway, removed at exit"


# Run alone, after the others: tests/chaos restarts the PostgreSQL and Redis servers everything
# else uses; tests/load measures latencies; schemathesis' generated tests are not collected under
# pytest-xdist.
SERIAL = ("tests/chaos", "tests/load", "tests/fuzz")
_SELECTING = ("-k", "-m", "--lf", "--last-failed", "--ff", "--failed-first", "--deselect", "-n")


def selects_tests(args: list[str]) -> bool:
    """Whether the pytest arguments pick tests (or workers) themselves."""
    return any(not a.startswith("-") or a.startswith(_SELECTING) for a in args)


def pytest_runs(args: list[str]) -> list[list[str]]:
    workers = int(os.environ.get("MAINTFLOW_TEST_WORKERS", "2"))
    if workers <= 1 or selects_tests(args):
        return [args]
    ignored = [f"--ignore={path}" for path in SERIAL]
    return [[*args, "-n", str(workers), "--dist", "loadfile", *ignored], [*args, *SERIAL]]


def terminal_sent_it_too() -> bool:
    """Ctrl-C in a terminal signals the whole foreground process group, pytest included."""
    for fd in (0, 1, 2):
        with contextlib.suppress(OSError):
            return os.tcgetpgrp(fd) == os.getpgrp()
    return False


def main(argv: list[str]) -> int:
    pytest_args = argv[1:] if argv[:1] == ["--"] else argv
    child: subprocess.Popen[bytes] | None = None

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if child is None or child.poll() is not None:
            raise KeyboardInterrupt  # not running pytest: unwind, the ExitStack cleans up
        if signum != signal.SIGINT or not terminal_sent_it_too():
            child.send_signal(signum)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        with contextlib.ExitStack() as stack:
            try:
                pg_url, pg_kind = provide_pg(stack)
                redis_url, redis_kind = provide_redis(stack)
                log(f"PostgreSQL {redact(pg_url)} ({pg_kind}); "
                    f"Redis {redact(redis_url)} ({redis_kind})")  # fmt: skip
                env = {**os.environ, "MAINTFLOW_TEST_DATABASE_URL": pg_url,
                       "MAINTFLOW_TEST_REDIS_URL": redis_url}  # fmt: skip
                failed = 0
                for args in pytest_runs(pytest_args):
                    log(f"pytest {shlex.join(args)}")
                    child = subprocess.Popen([sys.executable, "-m", "pytest", *args], env=env)
                    rc = child.wait()
                    failed = failed or (128 - rc if rc < 0 else rc)
                return failed
            finally:  # runs before the ExitStack: no signal may interrupt the cleanup
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
    except SetupError as exc:
        log(f"error: {exc}")
        return 2
    except KeyboardInterrupt:
        log("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
