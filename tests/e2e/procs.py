"""A small process harness for end-to-end and chaos tests: run `maintflow api | scheduler | worker`
as real subprocesses against one database and one Redis namespace, wait until each is ready,
send it signals (SIGKILL, SIGSTOP/SIGCONT, SIGTERM), find the scheduler leader from the lease row,
and always clean up.

    async with Cluster(tmp_path, env) as cluster:
        api = await cluster.start_api()
        await cluster.start_scheduler("s1")
        await cluster.start_worker("w1", processes=1, threads=4)
        leader = await cluster.wait_leader()
        cluster.kill(leader.name)               # SIGKILL by default
        ...
    # leaving the block stops everything (SIGTERM, then SIGKILL after a grace period)

Every process runs in its own process group (so a signal reaches a worker's forked children too,
like a container being killed or frozen) and writes stdout+stderr to `<workdir>/<name>.log`;
`cluster.logs()` returns the tail of every log for assertion messages.

If the test process itself is killed before it can clean up, a small watchdog process (started
with the cluster) sees its stdin close and SIGKILLs every process group the cluster started.

Linux only: scheduler readiness and `db_backends` read /proc (a process's TCP connections to the
database).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import asyncpg
import httpx
from sqlalchemy.engine import make_url

STOP_GRACE_S = 10.0
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


class ProcessFailed(AssertionError):
    """A process died or never became ready; the message carries the tail of its log."""


def maintflow_command() -> list[str]:
    """The `maintflow` console script of the running interpreter's environment. Run directly (not
    through `python -m` or a shell) so the process's pid is the one in the lease holder id."""
    script = Path(sys.executable).parent / "maintflow"
    if not script.exists():  # pragma: no cover - the package is not installed as a script
        return [sys.executable, "-c", "from maintflow_cli.main import main; main()"]
    return [str(script)]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def plain_pg_url(database_url: str) -> str:
    """postgresql+asyncpg://… (SQLAlchemy) → postgresql://… (asyncpg)."""
    url = make_url(database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def group_pids(pgid: int) -> list[int]:
    """Pids of the live members of process group `pgid` (a process and its forked children)."""
    pids: list[int] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            # "pid (comm) state ppid pgrp ...": comm may hold spaces, so split after ')'.
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                pids.append(int(entry))
    return pids


@dataclass(frozen=True)
class TcpConnection:
    local_port: int
    remote_port: int


def tcp_connections(pids: Sequence[int]) -> list[TcpConnection]:
    """Established TCP connections (IPv4 and IPv6) whose sockets the processes `pids` hold."""
    inodes: set[str] = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                    if target.startswith("socket:["):
                        inodes.add(target[8:-1])
    found: list[TcpConnection] = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as f:
            next(f)
            for line in f:
                cols = line.split()
                local, remote, state, inode = cols[1], cols[2], cols[3], cols[9]
                if state == "01" and inode in inodes:  # 01 = ESTABLISHED
                    found.append(
                        TcpConnection(
                            int(local.rsplit(":", 1)[1], 16), int(remote.rsplit(":", 1)[1], 16)
                        )
                    )
    return found


@dataclass
class Proc:
    """One started process (its own process group)."""

    name: str
    role: str
    argv: list[str]
    popen: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes]
    port: int | None = None
    stopped: bool = False  # SIGSTOPped and not yet continued
    cleaned: bool = False  # stopped by the cluster, its group killed and its log closed

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    @property
    def url(self) -> str:
        assert self.port is not None, f"{self.name} has no HTTP port"
        return f"http://127.0.0.1:{self.port}"

    def signal(self, sig: int, *, group: bool | None = None) -> None:
        """Send `sig` to the process group or to the process alone. By default SIGTERM and SIGINT
        go to the process alone, like a container runtime's stop (a Dramatiq main process
        forwards them to its children, and a second SIGTERM would make those exit at once);
        every other signal (SIGKILL, SIGSTOP, SIGCONT) goes to the whole group, like a killed
        or frozen container."""
        if not self.alive:
            return
        if group is None:
            group = sig not in (signal.SIGTERM, signal.SIGINT)
        with contextlib.suppress(ProcessLookupError):
            if group:
                os.killpg(self.pid, sig)
            else:
                os.kill(self.pid, sig)
        if sig == signal.SIGSTOP:
            self.stopped = True
        elif sig == signal.SIGCONT:
            self.stopped = False

    def pids(self) -> list[int]:
        """The process and its forked children (its process group)."""
        return group_pids(self.pid) if self.alive else []

    def tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            self.log_file.flush()
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def check_alive(self) -> None:
        if not self.alive:
            raise ProcessFailed(
                f"{self.name} ({self.role}) exited with {self.returncode}\n"
                f"--- {self.log_path} ---\n{self.tail(60)}"
            )


@dataclass(frozen=True)
class Lease:
    holder: str
    epoch: int
    expires_at: datetime
    live: bool  # expires_at is in the future by the database's clock
    pid: int | None  # parsed from the holder id "host:pid:xxxx"


class Cluster:
    """Start maintflow processes with a shared environment; clean them all up on exit.

    `env` holds the MAINTFLOW_* variables (at least MAINTFLOW_DATABASE_URL); other MAINTFLOW_*
    variables of the test process are not inherited, so a developer's shell cannot leak into
    the run."""

    def __init__(self, workdir: Path, env: Mapping[str, str]) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.env = dict(env)
        self.procs: dict[str, Proc] = {}
        self._conn: asyncpg.Connection | None = None
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
            await self._close_conn()

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

    def _environ(self, extra: Mapping[str, str] | None) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("MAINTFLOW_")}
        base["PYTHONUNBUFFERED"] = "1"
        return {**base, **self.env, **(extra or {})}

    def spawn(
        self, name: str, role: str, args: Sequence[str], env: Mapping[str, str] | None = None
    ) -> Proc:
        """Start `maintflow <args>` as `name` without waiting for it to be ready."""
        if name in self.procs and not self.procs[name].cleaned:
            if self.procs[name].alive:
                raise ValueError(f"a process named {name!r} is already running")
            self._stop([self.procs[name]], 0)  # restart under the same name: reap, close log
        log_path = self.workdir / f"{name}.log"
        log_file = open(log_path, "ab")  # closed in stop_all
        argv = [*maintflow_command(), *args]
        log_file.write(f"=== {time.strftime('%H:%M:%S')} start: {' '.join(argv)}\n".encode())
        log_file.flush()
        popen = subprocess.Popen(
            argv,
            env=self._environ(env),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
            start_new_session=True,  # own process group: signals reach forked children too
        )
        self._watch(f"+{popen.pid}")
        proc = Proc(name, role, argv, popen, log_path, log_file)
        self.procs[name] = proc
        return proc

    async def start_api(
        self, name: str = "api", port: int | None = None, timeout: float = 30.0
    ) -> Proc:
        """`maintflow api --port P`; ready when GET /readyz answers 200."""
        port = port or free_port()
        proc = self.spawn(name, "api", ["api", "--host", "127.0.0.1", "--port", str(port)])
        proc.port = port
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=2.0) as client:
            while True:
                proc.check_alive()
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{proc.url}/readyz")).status_code == 200:
                        return proc
                if time.monotonic() > deadline:
                    raise ProcessFailed(f"{name}: /readyz not 200 after {timeout} s\n{self.logs()}")
                await asyncio.sleep(0.1)

    async def start_scheduler(self, name: str, timeout: float = 30.0) -> Proc:
        """`maintflow scheduler`; ready when it holds a connection to the database (it has run
        its first lease attempt, leader or standby)."""
        proc = self.spawn(name, "scheduler", ["scheduler"])
        await self._wait_db_connection(proc, timeout)
        return proc

    async def start_worker(
        self, name: str, processes: int = 1, threads: int = 4, timeout: float = 30.0
    ) -> Proc:
        """`maintflow worker --processes N --threads M`; ready when every worker process has
        logged Dramatiq's "ready for action"."""
        proc = self.spawn(
            name,
            "worker",
            ["worker", "--processes", str(processes), "--threads", str(threads)],
        )
        await self.wait_log(proc, "Worker process is ready for action", timeout, count=processes)
        return proc

    async def run_cli(self, *args: str, timeout: float = 60.0) -> str:
        """Run a one-shot command (`migrate`, `admin create-team …`) with the cluster's
        environment and return its stdout; raises with its output on a non-zero exit."""
        proc = await asyncio.create_subprocess_exec(
            *maintflow_command(),
            *args,
            env=self._environ(None),
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
        codes: dict[str, int | None] = {}
        procs = [p for p in procs if not p.cleaned]
        for proc in procs:
            if proc.alive:
                proc.signal(signal.SIGTERM)
                proc.signal(signal.SIGCONT)  # a stopped process only sees SIGTERM once continued
        deadline = time.monotonic() + timeout
        for proc in procs:
            try:
                proc.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
                codes[proc.name] = proc.popen.returncode
            except subprocess.TimeoutExpired:
                codes[proc.name] = None
            # Whatever is left of the group (forked children, a hung parent) goes now.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(timeout=5)
            with contextlib.suppress(OSError):
                proc.log_file.close()
            proc.cleaned = True
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

    async def wait_log(self, proc: Proc, text: str, timeout: float, count: int = 1) -> None:
        deadline = time.monotonic() + timeout
        while proc.log_text().count(text) < count:
            proc.check_alive()
            if time.monotonic() > deadline:
                raise ProcessFailed(f"{proc.name}: no {text!r} after {timeout} s\n{self.logs()}")
            await asyncio.sleep(0.1)

    async def _wait_db_connection(self, proc: Proc, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self._db_ports(proc):
            proc.check_alive()
            if time.monotonic() > deadline:
                raise ProcessFailed(
                    f"{proc.name}: no database connection after {timeout} s\n{self.logs()}"
                )
            await asyncio.sleep(0.1)

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
        `pid, client_port, state, xact_start, query` and `locked`, the relations it holds locks
        on. A process frozen inside a transaction shows `state = 'idle in transaction'`. Pass
        `ports` (from `db_ports`) to skip the /proc scan in tight loops."""
        ports = list(ports) if ports is not None else self.db_ports(name)
        if not ports:
            return []
        return await self.fetch(
            "SELECT a.pid, a.client_port, a.state, a.xact_start, a.query, "
            "ARRAY(SELECT DISTINCT l.relation::regclass::text FROM pg_locks l "
            "      WHERE l.pid = a.pid AND l.relation IS NOT NULL) AS locked "
            "FROM pg_stat_activity a "
            "WHERE a.datname = current_database() AND a.client_port = ANY($1::int[])",
            ports,
        )

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        """Run one SQL query on the cluster's database (one connection, reopened after an
        error, closed with the cluster)."""
        if self._conn is None or self._conn.is_closed():
            self._conn = await asyncpg.connect(plain_pg_url(self.env["MAINTFLOW_DATABASE_URL"]))
        try:
            return list(await self._conn.fetch(query, *args))
        except (OSError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError):
            await self._close_conn()
            raise

    async def _close_conn(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 5)
            conn.terminate()

    async def lease(self) -> Lease | None:
        """The scheduler lease row, or None before any replica created it."""
        rows = await self.fetch(
            "SELECT holder, epoch, expires_at, expires_at > now() AS live "
            "FROM scheduler_leases WHERE name = 'scheduler'"
        )
        if not rows:
            return None
        row = rows[0]
        parts = row["holder"].split(":")
        pid = int(parts[-2]) if len(parts) >= 3 and parts[-2].isdigit() else None
        return Lease(row["holder"], row["epoch"], row["expires_at"], row["live"], pid)

    async def leader(self) -> Proc | None:
        """The scheduler process holding a live lease, or None."""
        lease = await self.lease()
        if lease is None or not lease.live:
            return None
        return next((p for p in self.schedulers if p.pid == lease.pid), None)

    async def wait_leader(
        self, timeout: float = 30.0, exclude: Proc | str | None = None, min_epoch: int = 0
    ) -> Proc:
        """Wait until a scheduler (other than `exclude`) holds a live lease with an epoch of at
        least `min_epoch`, and return it."""
        excluded = exclude.name if isinstance(exclude, Proc) else exclude
        deadline = time.monotonic() + timeout
        while True:
            lease = await self.lease()
            if lease is not None and lease.live and lease.epoch >= min_epoch:
                proc = next((p for p in self.schedulers if p.pid == lease.pid), None)
                if proc is not None and proc.name != excluded:
                    return proc
            if time.monotonic() > deadline:
                raise ProcessFailed(
                    f"no new leader within {timeout} s (lease: {lease})\n{self.logs()}"
                )
            await asyncio.sleep(0.1)
