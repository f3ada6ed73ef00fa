"""`maintflow api | scheduler | worker` as real subprocesses against one database and one Redis
namespace: start each and wait until it is ready, signal it (SIGKILL, SIGSTOP/SIGCONT, SIGTERM),
find the scheduler leader from the lease row, and always clean up.

    env = cluster_env(database_url, redis_url, namespace, scheduler_lease_s=3)
    async with Cluster(tmp_path, env) as cluster:
        api = await cluster.start_api()
        await cluster.start_scheduler("s1")
        await cluster.start_worker("w1", processes=1, threads=4)
        leader = await cluster.wait_leader()
        cluster.kill(leader.name)               # SIGKILL by default
        ...
    # leaving the block stops everything (SIGTERM, then SIGKILL after a grace period)

Every process runs in its own process group and writes to `<workdir>/<name>.log`;
`cluster.logs()` returns the tail of every log for assertion messages. If the test process itself
is killed before it can clean up, a small watchdog process (started with the cluster) sees its
stdin close and SIGKILLs every process group the cluster started.

Linux only: scheduler readiness and `db_backends` read /proc (a process's TCP connections to the
database)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from maintflow_core.settings import Settings
from tests.kit.db import Probe, plain_pg_url
from tests.kit.lease import LEASE_QUERY, Lease
from tests.kit.logs import assert_no_job_failures
from tests.kit.poll import poll_until
from tests.kit.procs import (
    STOP_GRACE_S,
    Proc,
    ProcessFailed,
    clean_environ,
    free_port,
    maintflow_command,
    spawn,
    tcp_connections,
)

# Reads "+pgid" / "-pgid" lines; at EOF (the test process closed the pipe or died) it SIGKILLs
# every group still listed.
_WATCHDOG = """
import os, signal, sys
groups = set()
for line in sys.stdin:
    (groups.add if line[0] == "+" else groups.discard)(int(line[1:]))
for pgid in groups:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass
"""


def cluster_env(
    database_url: str,
    redis_url: str | None = None,
    namespace: str | None = None,
    *,
    json_logs: bool = True,
    **settings: object,
) -> dict[str, str]:
    """The MAINTFLOW_* environment of a cluster's processes. `settings` are Settings field names
    (`scheduler_lease_s=3` becomes MAINTFLOW_SCHEDULER_LEASE_S=3); a name Settings does not
    have is refused, so a typo cannot silently leave a default in place."""
    unknown = sorted(set(settings) - set(Settings.model_fields))
    if unknown:
        raise ValueError(f"not maintflow settings: {unknown}")
    env = {"MAINTFLOW_DATABASE_URL": database_url}
    if redis_url is not None:
        env["MAINTFLOW_REDIS_URL"] = redis_url
    if namespace is not None:
        env["MAINTFLOW_BROKER_NAMESPACE"] = namespace
    env["MAINTFLOW_LOG_FORMAT"] = "json" if json_logs else "text"
    env.update({f"MAINTFLOW_{name.upper()}": str(value) for name, value in settings.items()})
    return env


class Cluster:
    """Start maintflow processes with a shared environment; clean them all up on exit.

    `env` holds the MAINTFLOW_* variables (at least MAINTFLOW_DATABASE_URL; see `cluster_env`);
    other MAINTFLOW_* variables of the test process are not inherited."""

    def __init__(self, workdir: Path, env: Mapping[str, str]) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.env = dict(env)
        self.procs: dict[str, Proc] = {}
        self.probe = Probe(plain_pg_url(self.env["MAINTFLOW_DATABASE_URL"]))
        self._watchdog: subprocess.Popen[bytes] | None = None

    # ---- lifecycle --------------------------------------------------------------------------

    async def __aenter__(self) -> Cluster:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await asyncio.to_thread(self.stop_all)
        finally:
            await self.probe.close()

    def _watch(self, line: str) -> None:
        if self._watchdog is None:
            self._watchdog = subprocess.Popen(
                [sys.executable, "-c", _WATCHDOG],
                stdin=subprocess.PIPE,
                start_new_session=True,  # a Ctrl-C of the test run must not stop it first
            )
        assert self._watchdog.stdin is not None
        with contextlib.suppress(OSError):
            self._watchdog.stdin.write(f"{line}\n".encode())
            self._watchdog.stdin.flush()

    def environ(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        return clean_environ({**self.env, **(extra or {})})

    def spawn(
        self, name: str, role: str, args: Sequence[str], env: Mapping[str, str] | None = None
    ) -> Proc:
        """Start `maintflow <args>` as `name` without waiting for it to be ready."""
        if name in self.procs and not self.procs[name].cleaned:
            if self.procs[name].alive:
                raise ValueError(f"a process named {name!r} is already running")
            self._stop([self.procs[name]], 0)  # restart under the same name: reap, close log
        argv = [*maintflow_command(), *args]
        proc = spawn(name, argv, self.workdir, self.environ(env), role=role)
        self._watch(f"+{proc.pid}")
        self.procs[name] = proc
        return proc

    async def start_api(
        self, name: str = "api", port: int | None = None, timeout: float = 30.0
    ) -> Proc:
        """`maintflow api --port P`; ready when GET /readyz answers 200."""
        port = port or free_port()
        proc = self.spawn(name, "api", ["api", "--host", "127.0.0.1", "--port", str(port)])
        proc.port = port
        await proc.wait_http("/readyz", timeout)
        return proc

    async def start_scheduler(self, name: str, timeout: float = 30.0) -> Proc:
        """`maintflow scheduler` with its ops port on a free port (`proc.url`); ready when it
        holds a connection to the database (it has run its first lease attempt, leader or
        standby)."""
        port = free_port()
        proc = self.spawn(
            name, "scheduler", ["scheduler"], {"MAINTFLOW_SCHEDULER_OPS_PORT": str(port)}
        )
        proc.port = port

        def connected() -> bool:
            proc.check_alive()
            return bool(self._db_ports(proc))

        await poll_until(connected, timeout, f"{name}: a database connection", detail=self.logs)
        return proc

    async def start_worker(
        self,
        name: str,
        processes: int = 1,
        threads: int = 4,
        timeout: float = 30.0,
        queues: Sequence[str] = (),
    ) -> Proc:
        """`maintflow worker --processes N --threads M [--queues …]` with its ops port on a
        free port (`proc.url`); ready when every worker process has logged Dramatiq's "ready
        for action"."""
        port = free_port()
        argv = ["worker", "--processes", str(processes), "--threads", str(threads)]
        if queues:
            argv += ["--queues", *queues]
        proc = self.spawn(name, "worker", argv, {"MAINTFLOW_WORKER_OPS_PORT": str(port)})
        proc.port = port
        await proc.wait_log("Worker process is ready for action", timeout, count=processes)
        return proc

    async def run_cli(self, *args: str, timeout: float = 60.0) -> str:
        """Run a one-shot command (`migrate`, `admin create-team …`) with the cluster's
        environment and return its stdout; raises with its output on a non-zero exit."""
        proc = await asyncio.create_subprocess_exec(
            *maintflow_command(),
            *args,
            env=self.environ(),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=self.workdir,
        )
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
        if proc.returncode != 0:
            raise ProcessFailed(
                f"maintflow {' '.join(args)} exited with {proc.returncode}\n"
                f"{out.decode(errors='replace')}\n{err.decode(errors='replace')}"
            )
        return out.decode()

    def kill(self, name: str, sig: int = signal.SIGKILL, *, group: bool | None = None) -> Proc:
        """Send `sig` to process `name` (see `Proc.signal` for who receives it). After SIGKILL,
        waits for the process to be reaped."""
        proc = self.procs[name]
        proc.signal(sig, group=group)
        if sig == signal.SIGKILL:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(timeout=5)
        return proc

    def stop(self, name: str, timeout: float = STOP_GRACE_S) -> int | None:
        """SIGTERM (after SIGCONT if stopped), wait up to `timeout`, then SIGKILL. Returns the
        exit code of the graceful stop, or None if it had to be killed."""
        proc = self.procs[name]
        return self._stop([proc], timeout)[proc.name]

    def stop_all(self, timeout: float = STOP_GRACE_S) -> dict[str, int | None]:
        """Stop every process (SIGTERM, grace, SIGKILL) and close the logs; safe to call twice.
        Returns name → exit code (None: did not stop within the grace and was killed)."""
        codes = self._stop(list(self.procs.values()), timeout)
        if self._watchdog is not None:
            watchdog, self._watchdog = self._watchdog, None
            with contextlib.suppress(OSError):
                assert watchdog.stdin is not None
                watchdog.stdin.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                watchdog.wait(timeout=5)
        return codes

    def _stop(self, procs: list[Proc], timeout: float) -> dict[str, int | None]:
        procs = [p for p in procs if not p.cleaned]
        for proc in procs:
            proc.begin_stop()
        deadline = time.monotonic() + timeout
        codes: dict[str, int | None] = {}
        for proc in procs:
            codes[proc.name] = proc.finish_stop(deadline - time.monotonic())
            self._watch(f"-{proc.pid}")
        return codes

    # ---- observation ------------------------------------------------------------------------

    def __getitem__(self, name: str) -> Proc:
        return self.procs[name]

    @property
    def schedulers(self) -> list[Proc]:
        return [p for p in self.procs.values() if p.role == "scheduler"]

    def logs(self, lines: int = 30) -> str:
        """The tail of every process's log, for assertion messages."""
        return "\n".join(
            f"--- {p.name} ({p.role}, pid {p.pid}, "
            f"{'running' if p.alive else f'exit {p.returncode}'}) {p.log_path} ---\n"
            f"{p.tail(lines)}"
            for p in self.procs.values()
        )

    def assert_no_job_failures(self, *names: str) -> None:
        """No process (or only those named) logged a failed scheduler job or a traceback."""
        for proc in self.procs.values():
            if not names or proc.name in names:
                assert_no_job_failures(proc.log_text(), proc.name)

    async def wait_log(self, proc: Proc, text: str, timeout: float, count: int = 1) -> None:
        await proc.wait_log(text, timeout, count)

    def db_ports(self, name: str) -> list[int]:
        """Local ports of the database connections of process `name` and its children."""
        return self._db_ports(self.procs[name])

    def _db_ports(self, proc: Proc) -> list[int]:
        db_port = make_url(self.env["MAINTFLOW_DATABASE_URL"]).port or 5432
        return [c.local_port for c in tcp_connections(proc.pids()) if c.remote_port == db_port]

    async def db_backends(
        self, name: str, ports: Sequence[int] | None = None
    ) -> list[asyncpg.Record]:
        """The PostgreSQL sessions of process `name` (and its children), from pg_stat_activity:
        `pid, client_port, state, wait_event_type, xact_start, query`, `blocked_by` (the backend
        pids it waits for) and `locked`, the relations it holds locks on. A process frozen inside
        a transaction shows `state = 'idle in transaction'`. Pass `ports` (from `db_ports`) to
        skip the /proc scan in tight loops."""
        ports = list(ports) if ports is not None else self.db_ports(name)
        if not ports:
            return []
        return await self.fetch(
            "SELECT a.pid, a.client_port, a.state, a.wait_event_type, a.xact_start, a.query, "
            "pg_blocking_pids(a.pid) AS blocked_by, "
            "ARRAY(SELECT DISTINCT l.relation::regclass::text FROM pg_locks l "
            "      WHERE l.pid = a.pid AND l.relation IS NOT NULL AND l.granted) AS locked "
            "FROM pg_stat_activity a "
            "WHERE a.datname = current_database() AND a.client_port = ANY($1::int[])",
            ports,
        )

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        """Run one SQL query on the cluster's database."""
        return await self.probe.fetch(query, *args)

    async def lease(self) -> Lease | None:
        """The scheduler lease row, or None before any replica created it."""
        rows = await self.fetch(LEASE_QUERY)
        return Lease.from_row(rows[0]) if rows else None

    def holder(self, lease: Lease | None) -> Proc | None:
        """The scheduler process named by the lease's holder id, if it is one of ours."""
        if lease is None:
            return None
        return next((p for p in self.schedulers if p.pid == lease.pid), None)

    async def leader(self) -> Proc | None:
        """The scheduler process holding a live lease, or None."""
        lease = await self.lease()
        return self.holder(lease) if lease is not None and lease.live else None

    async def wait_leader(
        self, timeout: float = 30.0, exclude: Proc | str | None = None, min_epoch: int = 0
    ) -> Proc:
        """Wait until a scheduler (other than `exclude`) holds a live lease with an epoch of at
        least `min_epoch`, and return it."""
        excluded = exclude.name if isinstance(exclude, Proc) else exclude

        async def new_leader() -> Proc | None:
            lease = await self.lease()
            if lease is None or not lease.live or lease.epoch < min_epoch:
                return None
            proc = self.holder(lease)
            return proc if proc is not None and proc.name != excluded else None

        try:
            found: Proc = await poll_until(new_leader, timeout, "a new leader", detail=self.logs)
        except AssertionError as exc:
            raise ProcessFailed(f"{exc}\nlease: {await self.lease()}") from None
        return found
