"""Restarting the run's own Redis and PostgreSQL servers: the ones its URLs point at, whoever
started them (the machine's services, or the throwaway servers scripts/testenv.py starts). How to
start a server again is read from the running server before the run begins; a server that
cannot be restarted fails the run there, not silently later. Each restart is checked: the
server at the URL afterwards is a new process (Redis run_id, PostgreSQL postmaster start time).

`MAINTFLOW_CHAOS_REDIS_START` / `MAINTFLOW_CHAOS_POSTGRES_RESTART` (shell words) replace the
derived commands."""

from __future__ import annotations

import asyncio
import os
import pwd
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import redis

from tests.kit.db import Probe
from tests.kit.poll import poll_until, poll_until_sync

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", ""}
# Enough of a Redis server's configuration to start it again the same way (the rest stays at
# the defaults, as it was unless a config file said otherwise, and that file is passed too).
REDIS_KEYS = ("port", "bind", "dir", "save", "appendonly", "logfile", "unixsocket", "requirepass")


class CannotRestart(AssertionError):
    """A service restart the run asks for cannot be done on this server."""


def run_command(argv: Sequence[str], timeout: float) -> str:
    """Run a service command in its own session (a daemon it starts must not share our process
    group or hold a pipe of ours open); its output, or RuntimeError if it failed."""
    with tempfile.TemporaryFile() as out:
        proc = subprocess.run(
            list(argv),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            timeout=timeout,
            check=False,
        )
        out.seek(0)
        text = out.read().decode(errors="replace").strip()
    if proc.returncode != 0:
        raise RuntimeError(f"{shlex.join(argv)} exited with {proc.returncode}: {text}")
    return text


# ---- Redis ----------------------------------------------------------------------------------


def _redis(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)


def redis_start_argv(url: str) -> list[str]:
    """The command that starts the Redis server at `url` again as it runs now, daemonized."""
    host = urlsplit(url).hostname or ""
    if host not in LOCAL_HOSTS:
        raise CannotRestart(f"Redis at {host} is not on this machine")
    client = _redis(url)
    try:
        info = client.info("server")
        config = {k: str(v) for k, v in client.config_get(*REDIS_KEYS).items()}
    finally:
        client.close()
    # INFO's `executable` is argv[0] resolved against the server's working directory: wrong
    # when it was started through PATH.
    executable = str(info.get("executable") or "")
    if not os.access(executable, os.X_OK):
        executable = shutil.which("redis-server") or ""
    if not executable:
        raise CannotRestart("no redis-server executable found to start Redis again")
    argv = [executable]
    if info.get("config_file"):
        argv.append(str(info["config_file"]))
    for key in REDIS_KEYS:
        value = config.get(key, "")
        if key in ("logfile", "unixsocket", "requirepass") and not value:
            continue
        argv += [f"--{key}", *value.split()] if key == "bind" else [f"--{key}", value]
    return [*argv, "--daemonize", "yes"]


def _run_id(url: str) -> str | None:
    client = _redis(url)
    try:
        return str(client.info("server")["run_id"])
    except (OSError, redis.RedisError):
        return None
    finally:
        client.close()


def restart_redis(url: str, start_argv: Sequence[str]) -> float:
    """SHUTDOWN NOSAVE (every key of every namespace is lost), start it again, wait until it
    answers. Returns how long it was unreachable."""
    before = _run_id(url)
    if before is None:
        raise RuntimeError(f"Redis at {url} does not answer before its restart")
    client = _redis(url)
    try:
        client.shutdown(nosave=True)  # the server closing the connection is the success
    finally:
        client.close()
    what = f"Redis at {url} gone after SHUTDOWN NOSAVE"
    poll_until_sync(lambda: _run_id(url) is None, 10, what, every=0.02)
    gone = time.monotonic()
    run_command(start_argv, timeout=30)
    what = f"Redis at {url} answering again"
    after = poll_until_sync(lambda: _run_id(url), 30, what, every=0.02)
    if after == before:
        raise RuntimeError(f"Redis at {url} has the same run_id after its restart")
    return time.monotonic() - gone


# ---- PostgreSQL -----------------------------------------------------------------------------


def _debian_cluster(data_dir: str) -> tuple[str, str] | None:
    """(version, name) of the pg_ctlcluster-managed cluster with this data directory, if any."""
    if shutil.which("pg_lsclusters") is None:
        return None
    out = run_command(["pg_lsclusters", "--no-header"], timeout=30)
    for line in out.splitlines():
        cols = line.split()
        if len(cols) >= 6 and os.path.realpath(cols[5]) == os.path.realpath(data_dir):
            return cols[0], cols[1]
    return None


def _pg_ctl(major: int) -> str:
    for candidate in (f"/usr/lib/postgresql/{major}/bin/pg_ctl", shutil.which("pg_ctl") or ""):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise CannotRestart(f"no pg_ctl for PostgreSQL {major} found")


async def postgres_restart_argv(probe: Probe, host: str) -> list[str]:
    """The command that restarts the PostgreSQL server the probe's database is on: the
    cluster's pg_ctlcluster if it is managed that way, else pg_ctl on its data directory (as
    the directory's owner; `restart` reuses the server's own start options)."""
    if host not in LOCAL_HOSTS:
        raise CannotRestart(f"PostgreSQL at {host} is not on this machine")
    try:
        data_dir = str(await probe.fetchval("SHOW data_directory"))
    except Exception as exc:
        raise CannotRestart(f"cannot read the server's data_directory: {exc}") from exc
    major = int(await probe.fetchval("SELECT current_setting('server_version_num')::int")) // 10000
    cluster = await asyncio.to_thread(_debian_cluster, data_dir)
    if cluster is not None:
        return ["pg_ctlcluster", "--skip-systemctl-redirect", *cluster, "restart"]
    try:
        owner = pwd.getpwuid(os.stat(data_dir).st_uid).pw_name
    except (OSError, KeyError) as exc:
        raise CannotRestart(f"cannot see who owns {data_dir}: {exc}") from exc
    log = str(Path(data_dir) / "chaos-restart.log")  # the restarted server's output
    argv = [_pg_ctl(major), "-D", data_dir, "-w", "-t", "60", "-m", "fast", "-l", log, "restart"]
    me = pwd.getpwuid(os.geteuid()).pw_name
    if owner == me:
        return argv
    if os.geteuid() == 0 and shutil.which("runuser"):
        return ["runuser", "-u", owner, "--", *argv]
    raise CannotRestart(f"{data_dir} belongs to {owner}, and this runs as {me}")


async def postmaster_started(probe: Probe) -> object:
    return await probe.fetchval("SELECT pg_postmaster_start_time()")


async def restart_postgres(probe: Probe, argv: Sequence[str]) -> None:
    """Run the restart command, wait until the database answers again (the harness's own pool
    reconnects), and check that a new server answers."""
    before = await postmaster_started(probe)
    await asyncio.to_thread(run_command, argv, 120)

    async def answers() -> object:
        rows = await probe.try_fetch("SELECT pg_postmaster_start_time() AS t")
        return rows[0]["t"] if rows else None

    after = await poll_until(answers, 120, "PostgreSQL answering after its restart", every=0.1)
    if after == before:
        raise RuntimeError(f"PostgreSQL was not restarted by {shlex.join(argv)}")


# ---- the run's plan -------------------------------------------------------------------------


@dataclass(frozen=True)
class Restarts:
    """How this run restarts its servers (empty commands: that restart is off)."""

    redis_url: str
    redis_start: list[str]
    postgres_restart: list[str]
    postgres_host: str

    @property
    def redis_target(self) -> str:
        parts = urlsplit(self.redis_url)
        return f"redis {parts.hostname}:{parts.port or 6379}"

    @property
    def postgres_target(self) -> str:
        return f"postgresql {self.postgres_host}"


async def plan_restarts(
    *,
    redis_url: str,
    database_host: str,
    database_port: int,
    probe: Probe,
    restart_redis: bool,
    restart_postgres: bool,
    redis_start: str = "",
    postgres_restart: str = "",
) -> Restarts:
    """Work out, before the run starts, how to restart each server it will restart: the given
    command (shell words) or one derived from the running server. CannotRestart if a restart
    the run asks for cannot be done."""
    redis_argv: list[str] = []
    if restart_redis:
        redis_argv = shlex.split(redis_start) or await asyncio.to_thread(
            redis_start_argv, redis_url
        )
    pg_argv: list[str] = []
    if restart_postgres:
        pg_argv = shlex.split(postgres_restart) or await postgres_restart_argv(probe, database_host)
    return Restarts(redis_url, redis_argv, pg_argv, f"{database_host}:{database_port}")
