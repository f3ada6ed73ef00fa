"""One started process (`maintflow api | scheduler | worker | dev`, or any command): its own
process group (a signal reaches a Dramatiq worker's forked children too, as in a container), its
stdout and stderr in a log file, and the ways to wait for it, signal it and stop it.

    proc = spawn("api", [*maintflow_command(), "api", "--port", str(port)], workdir, env)
    await proc.wait_http("/readyz", within=30)
    proc.stop()

Used by the end-to-end tests, the chaos harness (through `cluster.Cluster`) and bench/.
Linux only where it reads /proc (`pids`, `tcp_connections`)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

from tests.kit.poll import poll_until

STOP_GRACE_S = 10.0


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


def clean_environ(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without any MAINTFLOW_* variable (a developer's shell must not
    leak into a run), unbuffered Python output, ops ports on a port the system picks (on
    127.0.0.1: processes started side by side must not compete for the shipped default ports;
    `Cluster` gives its schedulers and workers a known one), then `extra`."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("MAINTFLOW_")}
    ops = {
        "MAINTFLOW_OPS_HOST": "127.0.0.1",
        "MAINTFLOW_SCHEDULER_OPS_PORT": "0",
        "MAINTFLOW_WORKER_OPS_PORT": "0",
    }
    return {**base, "PYTHONUNBUFFERED": "1", **ops, **(extra or {})}


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
    popen: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes]
    role: str = ""
    argv: list[str] = field(default_factory=list)
    log_start: int = 0  # where this run's output begins: a restart appends to the same log
    port: int | None = None
    stopped: bool = False  # SIGSTOPped and not yet continued
    cleaned: bool = False  # stopped, its group killed and its log closed

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

    def log_text(self) -> str:
        with contextlib.suppress(OSError, ValueError):  # ValueError: the log is closed
            self.log_file.flush()
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def own_log(self) -> str:
        """What this run of the process wrote (the log may hold earlier runs of its name)."""
        with contextlib.suppress(OSError, ValueError):
            self.log_file.flush()
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self.log_start)
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def check_alive(self) -> None:
        if not self.alive:
            raise ProcessFailed(
                f"{self.name} ({self.role or 'process'}) exited with {self.returncode}\n"
                f"--- {self.log_path} ---\n{self.tail(60)}"
            )

    async def wait_log(self, text: str, within: float, count: int = 1) -> None:
        """Wait until this run of the process has logged `text` `count` times; fails at once if
        the process exits."""

        def seen() -> bool:
            self.check_alive()
            return self.own_log().count(text) >= count

        what = f"{self.name}: {count} x {text!r} in its log"
        await poll_until(seen, within, what, detail=lambda: self.tail(40))

    async def wait_http(self, path: str = "/healthz", within: float = 60.0) -> None:
        """Wait until GET `path` answers 200; fails at once if the process exits."""
        async with httpx.AsyncClient(timeout=2.0) as client:

            async def answers() -> bool:
                self.check_alive()
                return (await client.get(self.url + path)).status_code == 200

            what = f"{self.name}: GET {path} 200"
            await poll_until(
                answers, within, what, ignore=(httpx.HTTPError,), detail=lambda: self.tail(40)
            )

    def begin_stop(self) -> None:
        """SIGTERM to the process (after which a stopped one needs SIGCONT to see it)."""
        if self.alive:
            self.signal(signal.SIGTERM)
            self.signal(signal.SIGCONT)

    def finish_stop(self, timeout: float) -> int | None:
        """Wait up to `timeout` for the exit begun by `begin_stop`, then SIGKILL whatever is left
        of the group and close the log. Returns the exit code of the graceful stop, or None if
        it had to be killed."""
        try:
            self.popen.wait(timeout=max(0.0, timeout))
            code: int | None = self.popen.returncode
        except subprocess.TimeoutExpired:
            code = None
        # Whatever is left of the group (forked children, a hung parent) goes now.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=5)
        with contextlib.suppress(OSError):
            self.log_file.close()
        self.cleaned = True
        return code

    def stop(self, grace: float = STOP_GRACE_S) -> int | None:
        """SIGTERM, wait up to `grace`, then SIGKILL the group; see `finish_stop`."""
        if self.cleaned:
            return self.returncode
        self.begin_stop()
        return self.finish_stop(grace)


def spawn(
    name: str,
    argv: Sequence[str],
    workdir: Path,
    env: Mapping[str, str],
    *,
    role: str = "",
    cwd: Path | None = None,
    banner: bool = True,
) -> Proc:
    """Start `argv` as `name` in its own process group, appending its output to
    `<workdir>/<name>.log` (after a line naming the time and command, unless `banner` is
    False); does not wait for it to be ready."""
    log_path = Path(workdir) / f"{name}.log"
    log_file = open(log_path, "ab")  # closed by Proc.finish_stop
    if banner:
        log_file.write(f"=== {time.strftime('%H:%M:%S')} start: {' '.join(argv)}\n".encode())
        log_file.flush()
    log_start = log_file.tell()
    popen = subprocess.Popen(
        list(argv),
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        cwd=cwd or workdir,
        start_new_session=True,  # own process group: signals reach forked children too
    )
    return Proc(name, popen, log_path, log_file, role=role, argv=list(argv), log_start=log_start)
