"""What a chaos run does while it runs: a supervisor that restarts what the faults killed (and
records any process that died on its own), a monitor that samples the lease and the backlog, and
the fault injector (SIGKILL the leader, SIGKILL a worker, SIGSTOP the leader past its lease,
restart Redis, restart PostgreSQL). A fault that could not be injected is recorded as failed,
and a failed fault fails the run."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import itertools
import random
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from tests.chaos.config import ChaosConfig
from tests.chaos.servers import Restarts, restart_postgres, restart_redis
from tests.kit.cluster import Cluster
from tests.kit.db import Probe
from tests.kit.lease import holder_pid
from tests.kit.poll import poll_until
from tests.kit.procs import Proc

Log = Callable[[str], None]
# A run with no live leader for this long has a bigger problem than a missed fault.
LEADER_WAIT_S = 60.0
RESTART_WAIT_S = 30.0  # a killed worker is running again well within this
TAKEOVER_WAIT_S = 120.0


@dataclass
class Fault:
    at_s: float  # seconds since the fault phase began
    kind: str
    target: str
    detail: str = ""
    failed: str = ""  # why it could not be injected
    takeover_s: float | None = None  # leader faults: until another replica held a newer lease

    def __str__(self) -> str:
        detail = f" {self.detail}" if self.detail else ""
        failed = f" FAILED: {self.failed}" if self.failed else ""
        return f"{self.at_s:6.1f}s {self.kind} {self.target}{detail}{failed}"


@dataclass
class Death:
    """A process that exited although no fault was aimed at it: a bug."""

    at_s: float
    name: str
    returncode: int | None
    tail: str


@dataclass
class Slot:
    """One supervised process: its restart command, and whether its death is expected."""

    name: str
    role: str
    args: list[str]
    killed_at: float | None = None  # monotonic time of our SIGKILL, until it is restarted
    restarts: int = 0


class Supervisor:
    """Restarts a killed process after `restart_delay_s` (like a container runtime would), and
    records and restarts any process that died without being killed."""

    def __init__(self, cluster: Cluster, config: ChaosConfig, t0: float, log: Log) -> None:
        self.cluster = cluster
        self.config = config
        self.t0 = t0
        self.log = log
        self.slots: dict[str, Slot] = {}
        self.deaths: list[Death] = []

    def add(self, name: str, role: str, args: Sequence[str]) -> None:
        self.slots[name] = Slot(name, role, list(args))

    def proc(self, name: str) -> Proc:
        return self.cluster[name]

    def kill(self, name: str) -> None:
        """SIGKILL the process group of `name`; the supervisor starts it again."""
        self.slots[name].killed_at = time.monotonic()
        self.proc(name).signal(signal.SIGKILL)

    def down(self) -> list[str]:
        return [s.name for s in self.slots.values() if not self.proc(s.name).alive]

    async def run(self) -> None:
        while True:
            self.check()
            await asyncio.sleep(0.2)

    def check(self) -> None:
        now = time.monotonic()
        for slot in self.slots.values():
            proc = self.proc(slot.name)
            if proc.alive:
                continue
            if slot.killed_at is None:
                self.deaths.append(Death(now - self.t0, slot.name, proc.returncode, proc.tail(60)))
                self.log(f"!! {slot.name} died on its own (exit {proc.returncode}); restarting")
            elif now - slot.killed_at < self.config.restart_delay_s:
                continue
            self.cluster.spawn(slot.name, slot.role, slot.args)
            slot.killed_at = None
            slot.restarts += 1

    async def wait_all_up(self, timeout: float = 30.0) -> None:
        await poll_until(
            lambda: not self.down(),
            timeout,
            "every supervised process running",
            every=0.2,
            detail=lambda: f"down: {self.down()}\n{self.cluster.logs(40)}",
        )


@dataclass
class Sample:
    at_s: float
    ok: bool  # the database answered
    live: bool = False  # an unexpired lease whose holder is running (not killed, not frozen)
    holder: str = ""
    epoch: int = 0
    last_tick_at: Any = None
    not_ready: int = 0  # batches fired but not yet ready
    pending_outbox: int = 0


@dataclass
class Monitor:
    """Samples the lease row and the backlog every `every_s` from the harness's own connection.
    A failed sample (database unreachable) counts as "no live leader"."""

    probe: Probe
    t0: float
    holder_running: Callable[[str], bool]
    every_s: float = 0.25
    samples: list[Sample] = field(default_factory=list)
    queue_peak: dict[str, int] = field(default_factory=dict)

    async def run(self, redis_url: str, namespace: str, queues: Sequence[str]) -> None:
        client = aioredis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)
        try:
            while True:
                self.samples.append(await self.sample())
                with contextlib.suppress(Exception):  # Redis down or restarting
                    await self._queues(client, namespace, queues)
                await asyncio.sleep(self.every_s)
        finally:
            await client.aclose()

    async def sample(self) -> Sample:
        at = time.monotonic() - self.t0
        rows = await self.probe.try_fetch(
            "SELECT l.holder, l.epoch, l.expires_at > now() AS live, l.last_tick_at, "
            "(SELECT count(*) FROM batches WHERE ready_at IS NULL) AS not_ready, "
            "(SELECT count(*) FROM outbox WHERE dispatched_at IS NULL) AS pending "
            "FROM scheduler_leases l WHERE l.name = 'scheduler'"
        )
        if not rows:
            return Sample(at, ok=rows is not None)
        r = rows[0]
        live = bool(r["live"]) and self.holder_running(r["holder"])
        return Sample(
            at,
            True,
            live,
            r["holder"],
            r["epoch"],
            r["last_tick_at"],
            r["not_ready"],
            r["pending"],
        )

    async def _queues(self, client: aioredis.Redis, namespace: str, queues: Sequence[str]) -> None:
        with contextlib.suppress(OSError, aioredis.RedisError):
            for q in queues:
                n = int(await client.llen(f"{namespace}:{q}"))
                self.queue_peak[q] = max(self.queue_peak.get(q, 0), n)

    def longest_leaderless_s(self) -> tuple[float, float]:
        """The longest stretch between two samples that saw a running process hold an unexpired
        lease (start offset, length). A killed or frozen holder's lease stays unexpired for up
        to a lease length, so this counts from the fault, not from the expiry."""
        return _longest_gap([s.at_s for s in self.samples if s.ok and s.live], self._end())

    def longest_tickless_s(self) -> tuple[float, float]:
        """The longest stretch without a tick: between two samples whose `last_tick_at` changed
        (a frozen leader still holds a live lease, but does not tick)."""
        changes: list[float] = []
        previous: Any = None
        for s in self.samples:
            if s.ok and s.last_tick_at is not None and s.last_tick_at != previous:
                changes.append(s.at_s)
                previous = s.last_tick_at
        return _longest_gap(changes, self._end())

    def write_csv(self, path: Path) -> None:
        """The samples, one line each (seconds since the fault phase began)."""
        with path.open("w", newline="") as f:
            out = csv.writer(f)
            out.writerow(
                [
                    "at_s",
                    "db_ok",
                    "leader_running",
                    "holder",
                    "epoch",
                    "last_tick_at",
                    "not_ready",
                    "pending_outbox",
                ]
            )
            for s in self.samples:
                out.writerow(
                    [
                        f"{s.at_s:.2f}",
                        int(s.ok),
                        int(s.live),
                        s.holder,
                        s.epoch,
                        s.last_tick_at,
                        s.not_ready,
                        s.pending_outbox,
                    ]
                )

    def _end(self) -> float:
        return self.samples[-1].at_s if self.samples else 0.0

    def epochs(self) -> int:
        seen = {s.epoch for s in self.samples if s.ok and s.epoch}
        return max(seen) - min(seen) if seen else 0

    def peak(self, attr: str) -> int:
        return max((getattr(s, attr) for s in self.samples if s.ok), default=0)


def _longest_gap(times: list[float], end: float) -> tuple[float, float]:
    """The longest interval between consecutive `times`, the last one running to `end`."""
    best = (0.0, 0.0)
    for a, b in itertools.pairwise([*times, end] if times else []):
        if b - a > best[1]:
            best = (a, b - a)
    return best


class FaultInjector:
    """Runs the fault plan for `config.seconds`. Recurring faults (leader and worker SIGKILL)
    run on jittered intervals; the one-shot ones (freeze, Redis and PostgreSQL restarts) at a
    fraction of the phase. A leader SIGKILL never hits a frozen leader. Every attempt is
    recorded; one that could not be injected is recorded as failed."""

    def __init__(
        self,
        cluster: Cluster,
        supervisor: Supervisor,
        probe: Probe,
        config: ChaosConfig,
        t0: float,
        log: Log,
        restarts: Restarts,
    ) -> None:
        self.cluster = cluster
        self.supervisor = supervisor
        self.probe = probe
        self.config = config
        self.t0 = t0
        self.log = log
        self.restarts = restarts
        self.rng = random.Random(config.seed)
        self.faults: list[Fault] = []
        self.frozen: str | None = None
        self.thawed = asyncio.Event()
        self.thawed.set()
        self._workers = [s.name for s in supervisor.slots.values() if s.role == "worker"]
        self._next_worker = 0
        self._measure: set[asyncio.Task[None]] = set()

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def record(self, kind: str, target: str, detail: str = "", failed: str = "") -> Fault:
        fault = Fault(round(self.elapsed(), 1), kind, target, detail, failed)
        self.faults.append(fault)
        self.log(f"fault {fault}")
        return fault

    def fail(self, fault: Fault, why: str) -> None:
        fault.failed = why
        self.log(f"fault {fault}")

    async def run(self) -> None:
        c = self.config
        jobs: list[Any] = []
        if c.leader_kill_every_s > 0:
            jobs.append(self._every(c.leader_kill_every_s, self.kill_leader))
        if c.worker_kill_every_s > 0:
            jobs.append(self._every(c.worker_kill_every_s, self.kill_worker))
        if c.restart_redis:
            jobs.append(self._at(c.redis_restart_at, self.restart_redis))
        if c.freeze_leader:
            jobs.append(self._at(c.freeze_at, self.freeze_leader))
        if c.restart_postgres:
            jobs.append(self._at(c.postgres_restart_at, self.restart_postgres))
        try:
            await asyncio.gather(*jobs)
        finally:
            if self.frozen is not None:
                self.cluster[self.frozen].signal(signal.SIGCONT)
                self.frozen = None
                self.thawed.set()
            if self._measure:  # let the last takeovers be measured
                await asyncio.wait(list(self._measure), timeout=self.config.lease_s + 15)
            for task in list(self._measure):
                task.cancel()

    async def _every(self, interval: float, action: Callable[[], Any]) -> None:
        at = interval * self.rng.uniform(0.8, 1.2)
        while at < self.config.seconds:
            await asyncio.sleep(max(0.0, at - self.elapsed()))
            await action()
            at = max(at, self.elapsed()) + interval * self.rng.uniform(0.8, 1.2)

    async def _at(self, fraction: float, action: Callable[[], Any]) -> None:
        await asyncio.sleep(max(0.0, fraction * self.config.seconds - self.elapsed()))
        await action()

    # ---- the faults --------------------------------------------------------------------------

    async def leader(self, timeout: float) -> tuple[Proc, int] | None:
        """The scheduler holding a live lease (not a frozen one) and its epoch, waiting up to
        `timeout` s for one; None if there was none."""

        async def live() -> tuple[Proc, int] | None:
            rows = await self.probe.try_fetch(
                "SELECT holder, epoch FROM scheduler_leases "
                "WHERE name = 'scheduler' AND expires_at > now()"
            )
            if rows:
                pid = holder_pid(rows[0]["holder"])
                for proc in self.cluster.schedulers:
                    if proc.pid == pid and proc.alive and not proc.stopped:
                        return proc, int(rows[0]["epoch"])
            return None

        try:
            found: tuple[Proc, int] = await poll_until(live, timeout, "a live leader")
        except AssertionError:
            return None
        return found

    async def kill_leader(self) -> None:
        await self.thawed.wait()  # never SIGKILL the frozen one; wait for it to wake
        found = await self.leader(timeout=LEADER_WAIT_S)
        if found is None:
            self.record("kill_leader", "-", failed=f"no live leader for {LEADER_WAIT_S:g} s")
            return
        proc, epoch = found
        self.supervisor.kill(proc.name)
        fault = self.record("kill_leader", proc.name, f"epoch {epoch}")
        self._takeover(fault, epoch, exclude=proc.pid)

    async def kill_worker(self) -> None:
        if not self._workers:
            self.record("kill_worker", "-", failed="the run has no worker")
            return
        name = self._workers[self._next_worker % len(self._workers)]
        self._next_worker += 1
        try:  # the supervisor may be starting it again after the previous kill
            await poll_until(lambda: self.cluster[name].alive, RESTART_WAIT_S, f"{name} running")
        except AssertionError:
            self.record("kill_worker", name, failed=f"not running for {RESTART_WAIT_S:g} s")
            return
        self.supervisor.kill(name)
        self.record("kill_worker", name)

    async def freeze_leader(self) -> None:
        await self.thawed.wait()
        found = await self.leader(timeout=LEADER_WAIT_S)
        if found is None:
            self.record("freeze_leader", "-", failed=f"no live leader for {LEADER_WAIT_S:g} s")
            return
        proc, epoch = found
        self.frozen = proc.name
        self.thawed.clear()
        proc.signal(signal.SIGSTOP)
        freeze_s = self.config.freeze_s
        fault = self.record("freeze_leader", proc.name, f"epoch {epoch}, for {freeze_s:g} s")
        self._takeover(fault, epoch, exclude=proc.pid)
        await asyncio.sleep(freeze_s)
        proc.signal(signal.SIGCONT)
        self.frozen = None
        self.thawed.set()
        self.record("thaw_leader", proc.name)

    async def restart_redis(self) -> None:
        fault = self.record("restart_redis", self.restarts.redis_target)
        try:
            down_s = await asyncio.to_thread(
                restart_redis, self.restarts.redis_url, self.restarts.redis_start
            )
        except Exception as exc:
            self.fail(fault, f"{type(exc).__name__}: {exc}")
            return
        fault.detail = f"unreachable {down_s:.2f} s, every queued message lost"

    async def restart_postgres(self) -> None:
        fault = self.record("restart_postgres", self.restarts.postgres_target)
        started = time.monotonic()
        try:
            async with _Outage(self.probe.connects) as outage:
                await restart_postgres(self.probe, self.restarts.postgres_restart)
        except Exception as exc:
            self.fail(fault, f"{type(exc).__name__}: {exc}")
            return
        fault.detail = (
            f"unreachable {outage.seconds:.1f} s (restart command + first query "
            f"{time.monotonic() - started:.1f} s)"
        )

    def _takeover(self, fault: Fault, epoch: int, exclude: int) -> None:
        """Measure, in the background, how long until another replica holds a newer lease."""

        async def measure() -> None:
            started = time.monotonic()

            async def newer() -> tuple[Proc, int] | None:
                found = await self.leader(timeout=1.0)
                return found if found and found[1] > epoch and found[0].pid != exclude else None

            try:
                proc, new_epoch = await poll_until(newer, TAKEOVER_WAIT_S, "a takeover", every=0)
            except AssertionError:
                self.fail(fault, f"no other replica took over within {TAKEOVER_WAIT_S:g} s")
                return
            fault.takeover_s = time.monotonic() - started
            fault.detail += (
                f"; {proc.name} leads (epoch {new_epoch}) after {fault.takeover_s:.1f} s"
            )

        task = asyncio.get_running_loop().create_task(measure())
        self._measure.add(task)
        task.add_done_callback(self._measure.discard)


class _Outage:
    """Polls `check` while the block runs; `seconds` is how long it answered False (from the
    first failure to the first success after it)."""

    def __init__(self, check: Callable[[], Awaitable[bool]], every_s: float = 0.05) -> None:
        self.check = check
        self.every_s = every_s
        self.down_at: float | None = None
        self.up_at: float | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def seconds(self) -> float:
        if self.down_at is None:
            return 0.0
        return (self.up_at or time.monotonic()) - self.down_at

    async def __aenter__(self) -> _Outage:
        self._task = asyncio.get_running_loop().create_task(self._poll())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None and self.down_at is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._task), 5)
        if self._task is not None:
            self._task.cancel()

    async def _poll(self) -> None:
        while self.up_at is None:
            ok = await self.check()
            now = time.monotonic()
            if not ok and self.down_at is None:
                self.down_at = now
            elif ok and self.down_at is not None:
                self.up_at = now
            await asyncio.sleep(self.every_s)


def holder_running(cluster: Cluster) -> Callable[[str], bool]:
    """Whether the lease holder id names a scheduler process of `cluster` that is alive and not
    frozen."""

    def running(holder: str) -> bool:
        pid = holder_pid(holder)
        return any(p.pid == pid and p.alive and not p.stopped for p in cluster.schedulers)

    return running
