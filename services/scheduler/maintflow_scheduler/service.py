"""The leader loop. APScheduler (memory job store) drives periodic jobs — lease renewal, tick,
relay, reconciler, broker sweep — and holds nothing about individual schedules; those live in
the database. The tick walks the due-work sources (`maintflow_core.due`), whatever they are.
Every job logs and carries on after an error; only the leader does the work."""

from __future__ import annotations

import asyncio
import logging
import math
import os
import socket
import time
import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import dramatiq
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from maintflow_broker.enqueue import enqueue_many, outbox_messages
from maintflow_broker.queues import oldest_queued_at, queue_stats, requeue_from_dead_workers
from maintflow_core import due, metrics
from maintflow_core.clock import Clock
from maintflow_core.db.store import Store
from maintflow_core.settings import Settings
from maintflow_core.usecases import lease as lease_uc
from maintflow_core.usecases import outbox as outbox_uc
from maintflow_core.usecases import system_jobs

log = logging.getLogger("maintflow.scheduler")
MAX_CLAIM_PASSES = 50  # per source and tick; what is left is claimed by the next tick
RELAY_PAGE = 500  # outbox rows published per transaction
MAX_RELAY_PAGES = 50  # per relay; what is left is published by the next one
OBSERVE_INTERVAL_S = 2.0  # queue depths and outbox backlog, for /metrics (leader only)
STOP_GRACE_S = 10.0  # a claim pass waits for a lock at most a renew interval (lock_timeout)


def make_holder_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class SchedulerService:
    def __init__(
        self,
        settings: Settings,
        open_db: async_sessionmaker[AsyncSession],
        clock: Clock,
        broker: dramatiq.Broker,
        holder_id: str | None = None,
        *,
        store: Store,
    ) -> None:
        self.settings = settings
        self.open_db = open_db
        self.clock = clock
        self.broker = broker
        self.sources = due.sources(store, settings)
        self.holder_id = holder_id or make_holder_id()
        self.leadership: lease_uc.Leadership | None = None
        self._scheduler: AsyncIOScheduler | None = None
        self._claiming = False
        self._running: set[asyncio.Task[Any]] = set()
        self._relay_lock = asyncio.Lock()
        self._relayed_at = -math.inf
        self._queues_readable = True
        metrics.preinit_scheduler(source.name for source in self.sources)
        metrics.preinit_system_jobs(job.key for job in system_jobs.BUILTIN)

    @property
    def is_leader(self) -> bool:
        return self.leadership is not None and self.leadership.expires_at > self.clock.now()

    async def renew(self) -> bool:
        """Take or extend the lease. On a database error we keep what we had until it expires."""
        was = self.leadership
        try:
            async with self.open_db() as db, db.begin():
                self.leadership = await lease_uc.acquire_or_renew(
                    db,
                    self.holder_id,
                    self.clock.now(),
                    timedelta(seconds=self.settings.scheduler_lease_s),
                )
        except Exception:
            log.exception("lease_renew_failed", extra={"holder": self.holder_id})
            if not self.is_leader:
                self.leadership = None
        if self.leadership and (was is None or was.epoch != self.leadership.epoch):
            log.info(
                "leader_elected", extra={"holder": self.holder_id, "epoch": self.leadership.epoch}
            )
        elif was and not self.leadership:
            log.warning("leadership_lost", extra={"holder": self.holder_id, "epoch": was.epoch})
        self._export_leadership()
        return self.is_leader

    def _export_leadership(self) -> None:
        metrics.leadership(self.is_leader, self.leadership.epoch if self.leadership else None)

    async def tick(self) -> due.ClaimResult:
        """Claim everything due now from each due-work source in turn, in bounded passes of one
        transaction each (the fence first), then relay (when this tick fired anything, or a
        relay is due). Returns what all sources did, added up.

        A storm's passes are not interleaved with relays of their own batches: starting their
        fan-out early would compete with the claim for the machine and delay the later fires.
        Rows written by anyone else meanwhile (a run-now, a re-drive) are not held back: when a
        relay is due between two passes and the outbox holds more than this tick wrote since its
        last relay, everything pending is relayed there."""
        total = due.ClaimResult()
        if not self.is_leader:
            return total
        started = time.perf_counter()
        self._claiming = True
        try:
            unrelayed: int | None = 0
            for source in self.sources:
                result = due.ClaimResult()
                unrelayed = await self._claim(source, result, unrelayed or 0)
                total.add(result)
                metrics.claim_observed(
                    source.name,
                    result.claimed,
                    len(result.fired),
                    result.duplicates,
                    result.missed,
                    result.lag_seconds,
                )
                if unrelayed is None:
                    return total
                if result.fired or result.missed:
                    log.info(source.event, extra=result.report(source.fired_as))
        finally:
            self._claiming = False
        if total.fired or self._relay_due():
            await self.relay()
        metrics.tick_observed(time.perf_counter() - started)
        return total

    async def _claim(
        self, source: due.DueSource, result: due.ClaimResult, unrelayed: int
    ) -> int | None:
        """One source's passes, added to `result`. Returns the outbox rows this tick has written
        since its last relay (`unrelayed` before), or None when the fence failed: this replica
        no longer leads."""
        limit = self.settings.scheduler_claim_batch
        for _ in range(MAX_CLAIM_PASSES):
            now = self.clock.now()
            async with self.open_db() as db, db.begin():
                assert self.leadership is not None
                if not await lease_uc.fence(db, self.leadership, now):
                    log.warning("fenced_out", extra={"holder": self.holder_id})
                    self.leadership = None
                    self._export_leadership()
                    return None
                passed = await source.claim(db, now, limit)
            result.add(passed)
            unrelayed += len(passed.fired)
            if passed.claimed < limit:
                break
            if self._relay_due() and await self._others_pending(unrelayed):
                await self.relay()
                unrelayed = 0
        return unrelayed

    async def _others_pending(self, mine: int) -> bool:
        async with self.open_db() as db:
            return await outbox_uc.pending_count(db) > mine

    async def _publish(self, rows: Sequence[outbox_uc.OutboxMessage]) -> None:
        messages, unknown = outbox_messages(rows)
        for outbox_id, kind, _payload in unknown:
            log.error("outbox_kind_unknown", extra={"kind": kind, "outbox_id": outbox_id})
        await asyncio.to_thread(enqueue_many, self.broker, messages)

    def _relay_due(self) -> bool:
        return time.monotonic() - self._relayed_at >= self.settings.relay_interval_s

    async def relay_if_due(self) -> int:
        """The periodic relay job, for when no tick relays: a tick relays when it ends and, for
        rows others wrote, between its claim passes (see `tick`)."""
        if not self.is_leader or self._claiming or not self._relay_due():
            return 0
        return await self.relay()

    async def relay(self) -> int:
        """Publish every pending outbox row, in pages of one transaction each; one relay at a
        time per replica (a second caller waits, then finds what is left)."""
        if not self.is_leader:
            return 0
        async with self._relay_lock:
            self._relayed_at = time.monotonic()
            sent = 0
            for _ in range(MAX_RELAY_PAGES):
                async with self.open_db() as db, db.begin():
                    n = await outbox_uc.relay_once(
                        db, self._publish, self.clock.now(), limit=RELAY_PAGE
                    )
                sent += n
                if n < RELAY_PAGE:
                    break
            metrics.relayed(sent)
            return sent

    async def reconcile(self) -> int:
        if not self.is_leader:
            return 0
        # Asked before the database: a batch driven after this read is recent anyway.
        queued_since = await asyncio.to_thread(oldest_queued_at, self.broker)
        async with self.open_db() as db, db.begin():
            ids = await outbox_uc.reconcile(
                db,
                self.clock.now(),
                timedelta(seconds=self.settings.reconcile_after_s),
                queued_since=queued_since,
            )
            await outbox_uc.purge_dispatched(db, self.clock.now() - timedelta(hours=1))
        if ids:
            log.warning("batches_redriven", extra={"count": len(ids)})
            metrics.redriven(len(ids))
            await self.relay()
        return len(ids)

    async def sweep_broker(self) -> None:
        """Requeue what dead worker processes had fetched (see `requeue_from_dead_workers`)."""
        if self.is_leader:
            await asyncio.to_thread(requeue_from_dead_workers, self.broker)

    async def observe(self) -> None:
        """Export what is exported once, by the leader: queue depths read from Redis and the
        outbox backlog. A standby exports no queue series and an empty outbox, so sums and
        maxima over replicas are the leader's figures."""
        self._export_leadership()
        if not self.is_leader or not metrics.enabled():
            metrics.queues_observed(None)
            metrics.outbox_observed(None, 0)
            return
        async with self.open_db() as db:
            pending, oldest = await outbox_uc.backlog(db)
        age = (self.clock.now() - oldest).total_seconds() if oldest else 0.0
        metrics.outbox_observed(pending, age)
        try:
            stats = await asyncio.to_thread(queue_stats, self.broker)
        except (RedisError, OSError) as exc:
            # Unknown depths are not exported as stale ones; /readyz says the broker is down.
            metrics.queues_observed(None)
            if self._queues_readable:
                log.warning("queue_stats_unavailable", extra={"error": type(exc).__name__})
            self._queues_readable = False
            return
        self._queues_readable = True
        metrics.queues_observed(
            (q["name"], q["depth"], q["delayed"], q["dead_letter"]) for q in stats
        )

    async def _guarded(self, name: str, job: Any) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._running.add(task)
        try:
            await job()
        except Exception:
            log.exception("scheduler_job_failed", extra={"job": name})
        finally:
            self._running.discard(task)

    def start(self) -> None:
        """Start the periodic jobs on the running event loop."""
        s = self.settings
        scheduler = AsyncIOScheduler(
            timezone="UTC",
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30},
        )
        for name, job, every in (
            ("renew", self.renew, s.scheduler_renew_interval_s),
            ("tick", self.tick, s.scheduler_tick_interval_s),
            ("relay", self.relay_if_due, s.relay_interval_s),
            ("reconcile", self.reconcile, s.reconcile_interval_s),
            ("sweep", self.sweep_broker, s.broker_sweep_interval_s),
            ("observe", self.observe, OBSERVE_INTERVAL_S),
        ):
            scheduler.add_job(self._guarded, "interval", args=(name, job), seconds=every, id=name)
        scheduler.start()
        self._scheduler = scheduler

    async def stop(self) -> None:
        if self._scheduler is not None:
            # No new runs, and let the running ones finish: each is one transaction at a time,
            # so cancelling one is safe, but APScheduler would log the cancellation as a
            # failure with a traceback, and a clean stop must not look like one.
            self._scheduler.pause()
            if self._running:
                await asyncio.wait(set(self._running), timeout=STOP_GRACE_S)
            self._scheduler.shutdown(wait=False)
            self._scheduler = None
        if self.leadership is not None:
            try:
                async with self.open_db() as db, db.begin():
                    await lease_uc.release(db, self.leadership, self.clock.now())
            except Exception:
                log.exception("lease_release_failed")
            self.leadership = None

    async def run_forever(self, stop: asyncio.Event) -> None:
        await self.renew()
        self.start()
        try:
            await stop.wait()
        finally:
            await self.stop()
