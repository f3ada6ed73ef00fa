"""What every benchmark row shares: a fresh PostgreSQL database and Redis namespace per run (both
removed at the end), a team with an admin token, bulk loaders (COPY) for flows, target lists and
schedules, subprocesses of `maintflow …` with their logs (the test kit's process wrapper,
tests/kit/procs.py), and the Result a row reports."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import signal
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from maintflow_core.clock import SystemClock
from maintflow_core.db import migrate
from maintflow_core.db.session import create_engine, create_sessionmaker
from maintflow_core.settings import Settings
from maintflow_core.usecases.teams import create_team
from tests.kit.broker import drop_namespace
from tests.kit.db import plain_pg_url
from tests.kit.procs import Proc, clean_environ, free_port, maintflow_command, spawn

__all__ = ["Proc", "free_port", "maintflow_command"]  # the rows import them from here

ROOT = Path(__file__).resolve().parent.parent
SERVER_URL = os.environ.get(
    "MAINTFLOW_BENCH_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("MAINTFLOW_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
STEPS = [
    {"id": "s1", "type": "procedure_step", "title": "Drain the host"},
    {"id": "s2", "type": "procedure_step", "title": "Install the update"},
    {"id": "s3", "type": "procedure_step", "title": "Reboot and check services"},
    {"id": "end", "type": "procedure_end", "title": "Done"},
]
STEPS_JSON = json.dumps(STEPS)
STOP_GRACE_S = 15.0  # a worker finishing its messages, a py-spy writing its profile
# Tables a row may fill; teams, users and tokens stay for the whole run.
DATA_TABLES = (
    "sessions",
    "notifications",
    "outbox",
    "batches",
    "maintenance_schedules",
    "target_lists",
    "flows",
    "idempotency_keys",
    "scheduler_leases",
    "maintenance_window_updates",
    "maintenance_windows",
    "system_job_runs",
)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


# ---- results ----------------------------------------------------------------------------------


@dataclass
class Result:
    """One line of the table. `ratio` is measured/baseline in the direction the target states."""

    row: str
    what: str
    measured: str
    baseline: str
    ratio: float | None
    target: str
    met: bool | None
    verdict: str
    values: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def at_least(ratio: float, target: float) -> tuple[bool, str]:
    if ratio >= target:
        return True, "met"
    return False, f"missed by {(1 - ratio / target) * 100:.0f} % ({ratio:.2f} of ≥ {target:g})"


def at_most(ratio: float, target: float) -> tuple[bool, str]:
    if ratio <= target:
        return True, "met"
    return False, f"missed by {(ratio / target - 1) * 100:.0f} % ({ratio:.2f} vs ≤ {target:g})"


def fmt_rate(per_s: float, unit: str = "/s") -> str:
    return f"{per_s:,.0f}{unit}" if per_s >= 10 else f"{per_s:.1f}{unit}"


def fmt_s(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.1f} ms"
    return f"{seconds:.2f} s"


# ---- processes ----------------------------------------------------------------------------------


def rss_kb(pid: int, key: str = "VmRSS") -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {key} for pid {pid}")


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


# ---- the run's database, Redis namespace and team -------------------------------------------


@dataclass
class Bench:
    quick: bool
    workdir: Path
    db_name: str
    database_url: str
    redis_url: str
    namespace: str
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    team_id: uuid.UUID
    token: str
    # Figures one row hands to another (row 2 needs row 1's fan-out rate).
    shared: dict[str, Any] = field(default_factory=dict)
    procs: list[Proc] = field(default_factory=list)
    side_databases: list[str] = field(default_factory=list)
    # Processes one row starts for a later one (row 4's APScheduler baseline takes minutes to
    # build, so it is built while row 3 runs); stopped by the row that uses them, or at close.
    kept: list[Proc] = field(default_factory=list)

    @property
    def dsn(self) -> str:
        return plain_pg_url(self.database_url)

    def size(self, quick: Any, full: Any) -> Any:
        return quick if self.quick else full

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a `maintflow …` subprocess: this run's database and namespace;
        no MAINTFLOW_* variable of the caller's shell leaks in."""
        pythonpath = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
        return clean_environ(
            {
                "PYTHONPATH": pythonpath,
                "MAINTFLOW_DATABASE_URL": self.database_url,
                "MAINTFLOW_REDIS_URL": self.redis_url,
                "MAINTFLOW_BROKER_NAMESPACE": self.namespace,
                # One token, far faster than the per-token limit allows (as in self.settings).
                "MAINTFLOW_RATE_LIMIT": "",
                "MAINTFLOW_LAUNCH_RATE_LIMIT": "",
                **extra,
            }
        )

    def spawn(self, name: str, argv: Sequence[str], env: Mapping[str, str] | None = None) -> Proc:
        """Start `argv` (in the repository root) with its output in `<workdir>/<name>.log`."""
        env = env if env is not None else self.env()
        proc = spawn(name, argv, self.workdir, env, cwd=ROOT, banner=False)
        self.procs.append(proc)
        return proc

    def stop(self, proc: Proc) -> None:
        proc.stop(grace=STOP_GRACE_S)
        if proc in self.procs:
            self.procs.remove(proc)

    def stop_all(self) -> None:
        """Stop every process a row started (not those kept across rows)."""
        for proc in list(self.procs):
            if proc not in self.kept:
                self.stop(proc)

    async def connect(self) -> asyncpg.Connection:
        return await asyncpg.connect(self.dsn)

    async def reset(self) -> None:
        """Empty every data table and this run's Redis keys; teams and tokens stay."""
        self.shared.pop("schedules", None)
        self.shared.pop("schedule_ids", None)
        conn = await self.connect()
        try:
            await conn.execute(f"TRUNCATE {', '.join(DATA_TABLES)} RESTART IDENTITY CASCADE")
        finally:
            await conn.close()
        drop_namespace(self.redis_url, self.namespace)

    async def analyze(self, *tables: str, vacuum: bool = False) -> None:
        conn = await self.connect()
        try:
            for table in tables:
                await conn.execute(f"{'VACUUM ' if vacuum else ''}ANALYZE {table}")
        finally:
            await conn.close()


async def create_database(db_name: str) -> str:
    """Create and migrate `db_name` on the bench server; returns its SQLAlchemy URL."""
    conn = await asyncpg.connect(plain_pg_url(SERVER_URL))
    try:
        await conn.execute(f'CREATE DATABASE "{db_name}"')
    finally:
        await conn.close()
    url = make_url(SERVER_URL).set(database=db_name).render_as_string(hide_password=False)
    try:
        await migrate.upgrade_async(url)
    except BaseException:
        await drop_database(db_name)
        raise
    return url


@dataclass
class SideDatabase:
    """A second database of the run, for a baseline that must be measured side by side with
    the main database (row 3 alternates ticks between 1 k and 1 M schedules)."""

    database_url: str
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    team_id: uuid.UUID

    @property
    def dsn(self) -> str:
        return plain_pg_url(self.database_url)


async def open_side_database(bench: Bench, suffix: str) -> SideDatabase:
    db_name = f"{bench.db_name}_{suffix}"
    bench.side_databases.append(db_name)
    url = await create_database(db_name)
    settings = bench.settings.model_copy(update={"database_url": url})
    engine = create_engine(settings)
    sessions = create_sessionmaker(engine)
    async with sessions() as db, db.begin():
        new = await create_team(db, SystemClock(), "Bench side")
    return SideDatabase(url, settings, engine, sessions, new.team.id)


async def open_bench(quick: bool, workdir: Path) -> Bench:
    token = uuid.uuid4().hex[:10]
    db_name = f"maintflow_bench_{token}"
    database_url = await create_database(db_name)
    try:
        namespace = f"mfbench-{token}"
        # Benchmarks drive the API with one token far faster than the per-token limit allows.
        settings = Settings(
            database_url=database_url,
            redis_url=REDIS_URL,
            broker_namespace=namespace,
            rate_limit="",
            launch_rate_limit="",
        )
        engine = create_engine(settings)
        sessions = create_sessionmaker(engine)
        async with sessions() as db, db.begin():
            new = await create_team(db, SystemClock(), "Bench")
    except BaseException:
        await drop_database(db_name)
        raise
    await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
    return Bench(
        quick=quick,
        workdir=workdir,
        db_name=db_name,
        database_url=database_url,
        redis_url=REDIS_URL,
        namespace=namespace,
        settings=settings,
        engine=engine,
        sessions=sessions,
        team_id=new.team.id,
        token=new.token,
    )


async def drop_database(db_name: str, attempts: int = 5) -> None:
    """Drop `db_name`; retried, since the shared server may be restarting under us."""
    for attempt in range(attempts):
        try:
            conn = await asyncpg.connect(plain_pg_url(SERVER_URL))
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
            finally:
                await conn.close()
            return
        except (OSError, asyncpg.PostgresError):
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(3)


async def close_bench(bench: Bench) -> None:
    bench.kept.clear()
    bench.stop_all()
    await bench.engine.dispose()
    for name in bench.side_databases:
        await drop_database(name)
    await drop_database(bench.db_name)
    drop_namespace(bench.redis_url, bench.namespace)


# ---- bulk loaders (COPY) ----------------------------------------------------------------------

FLOW_COLUMNS = ("id", "team_id", "name", "flow_type", "steps", "created_at", "updated_at")
TARGET_LIST_COLUMNS = (
    "id",
    "team_id",
    "name",
    "targets",
    "target_count",
    "created_at",
    "updated_at",
)
SCHEDULE_COLUMNS = (
    "id",
    "team_id",
    "flow_id",
    "target_list_id",
    "cron_expression",
    "timezone",
    "misfire_policy",
    "is_active",
    "next_run_at",
    "created_at",
    "updated_at",
)
CHUNK = 50_000


async def _copy(
    conn: asyncpg.Connection,
    table: str,
    columns: Sequence[str],
    n: int,
    make: Callable[[int], tuple[Any, ...]],
) -> None:
    for start in range(0, n, CHUNK):
        records = [make(i) for i in range(start, min(n, start + CHUNK))]
        await conn.copy_records_to_table(table, records=records, columns=columns)


async def copy_flows(
    conn: asyncpg.Connection, team_id: uuid.UUID, n: int, offset: int = 0
) -> list[uuid.UUID]:
    ids = [uuid.uuid4() for _ in range(n)]
    now = datetime.now(UTC)

    def make(i: int) -> tuple[Any, ...]:
        return (ids[i], team_id, f"bench flow {offset + i}", "maintenance", STEPS_JSON, now, now)

    await _copy(conn, "flows", FLOW_COLUMNS, n, make)
    return ids


async def copy_target_lists(
    conn: asyncpg.Connection, team_id: uuid.UUID, n: int, targets_each: int, offset: int = 0
) -> list[uuid.UUID]:
    ids = [uuid.uuid4() for _ in range(n)]
    now = datetime.now(UTC)

    def make(i: int) -> tuple[Any, ...]:
        targets = [
            {"label": f"host-{offset + i:07d}-{j:03d}", "notes": None} for j in range(targets_each)
        ]
        return (
            ids[i],
            team_id,
            f"bench hosts {offset + i}",
            json.dumps(targets),
            targets_each,
            now,
            now,
        )

    await _copy(conn, "target_lists", TARGET_LIST_COLUMNS, n, make)
    return ids


async def copy_schedules(
    conn: asyncpg.Connection,
    team_id: uuid.UUID,
    flow_ids: Sequence[uuid.UUID],
    *,
    cron_expression: str,
    next_run_at: datetime,
    target_list_ids: Sequence[uuid.UUID] | None = None,
    timezone: str = "UTC",
) -> list[uuid.UUID]:
    ids = [uuid.uuid4() for _ in flow_ids]
    now = datetime.now(UTC)

    def make(i: int) -> tuple[Any, ...]:
        return (
            ids[i],
            team_id,
            flow_ids[i],
            target_list_ids[i] if target_list_ids is not None else None,
            cron_expression,
            timezone,
            "run_once",
            True,
            next_run_at,
            now,
            now,
        )

    await _copy(conn, "maintenance_schedules", SCHEDULE_COLUMNS, len(ids), make)
    return ids


async def wait_for(
    probe: Callable[[], Any], within: float, interval: float = 0.1, what: str = "condition"
) -> Any:
    """Await `probe()` until it returns something truthy; TimeoutError after `within` s."""
    deadline = time.monotonic() + within
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {within} s")
        await asyncio.sleep(interval)


def chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# ---- profiling (py-spy) -------------------------------------------------------------------------


class PySpy:
    """`py-spy record` on a running process (and its children) while a block runs; on exit the
    collapsed stacks are summarised into the top frames by inclusive and by own time."""

    def __init__(self, bench: Bench, pid: int, name: str, rate: int = 250) -> None:
        self.bench = bench
        self.pid = pid
        self.name = name
        self.rate = rate
        self.raw = bench.workdir / f"profile-{name}.txt"
        self.summary_path = bench.workdir / f"profile-{name}-summary.txt"
        self.proc: Proc | None = None

    async def __aenter__(self) -> PySpy:
        spy = Path(sys.executable).parent / "py-spy"
        argv = [
            str(spy) if spy.exists() else "py-spy",
            "record",
            "--pid",
            str(self.pid),
            "--subprocesses",
            "--rate",
            str(self.rate),
            "--format",
            "raw",
            "--output",
            str(self.raw),
        ]
        self.proc = self.bench.spawn(f"py-spy-{self.name}", argv, env=os.environ)
        await asyncio.sleep(1.0)  # attach before the measured work starts
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGINT)  # py-spy writes its output on SIGINT
        await asyncio.to_thread(self.proc.popen.wait, 30)
        self.bench.stop(self.proc)
        text = await asyncio.to_thread(summarise_collapsed, self.raw)
        await asyncio.to_thread(self.summary_path.write_text, text)
        log(f"profile {self.name}: {self.summary_path}")


def summarise_collapsed(path: Path, top: int = 30) -> str:
    """Top frames of a py-spy raw (collapsed) profile: own samples and inclusive samples."""
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    if not path.exists():
        return f"no profile written at {path}\n"
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [f for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        own[frames[-1]] = own.get(frames[-1], 0) + count
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + count
    if not total:
        return f"empty profile at {path}\n"

    def block(title: str, table: dict[str, int]) -> list[str]:
        ranked = sorted(table.items(), key=lambda kv: kv[1], reverse=True)[:top]
        return [title, *(f"{n / total * 100:6.1f} %  {frame}" for frame, n in ranked), ""]

    lines = [f"{total} samples from {path.name}", ""]
    lines += block("by own time (the frame itself was running):", own)
    lines += block("by inclusive time (the frame was on the stack):", inclusive)
    return "\n".join(lines)


class WaitSampler:
    """Samples pg_stat_activity of the run's database while a block runs: how often its client
    backends were running, idle in a transaction, or waiting (and on what). Cheap (one query
    every `interval`), and it says where a write path spends its time inside PostgreSQL."""

    def __init__(self, dsn: str, interval: float = 0.05) -> None:
        self.dsn = dsn
        self.interval = interval
        self.counts: dict[str, int] = {}
        self.samples = 0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        conn = await asyncpg.connect(self.dsn)
        try:
            while True:
                rows = await conn.fetch(
                    "SELECT state, wait_event_type, wait_event FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                    "AND backend_type = 'client backend' AND state <> 'idle'"
                )
                self.samples += 1
                for r in rows:
                    key = r["state"] + (
                        f" / {r['wait_event_type']}:{r['wait_event']}" if r["wait_event"] else ""
                    )
                    self.counts[key] = self.counts.get(key, 0) + 1
                await asyncio.sleep(self.interval)
        finally:
            await conn.close()

    async def __aenter__(self) -> WaitSampler:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    def summary(self) -> dict[str, float]:
        """Average number of backends in each state per sample, busiest first."""
        n = max(1, self.samples)
        ranked = sorted(self.counts.items(), key=lambda kv: kv[1], reverse=True)
        return {key: round(count / n, 2) for key, count in ranked}
