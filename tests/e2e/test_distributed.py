"""End to end, as separate processes: the API, two schedulers and a worker on real PostgreSQL and
Redis. A schedule with a seconds field fires every 2 s; the leader scheduler is killed (SIGKILL)
or frozen past its lease (SIGSTOP … SIGCONT) mid-run; afterwards every instant of the observed
interval has exactly one batch, with exactly one session per target and one "batch.ready"
notification, and no instant is missing (an instant missed during the failover fires late).
A leader frozen while its transaction holds the lease row is replaced too: PostgreSQL ends the
frozen session (the scheduler's session timeouts), and a standby takes over within the lease."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.kit.cluster import Cluster, cluster_env
from tests.kit.db import plain_pg_url
from tests.kit.invariants import Verdict, verify
from tests.kit.logs import event_count, last_json_object
from tests.kit.poll import poll_until
from tests.kit.procs import Proc
from tests.kit.seed import STEPS

pytestmark = pytest.mark.e2e

EVERY = timedelta(seconds=2)
CRON = "* * * * * */2"  # every 2 seconds: the 6th field is seconds
LEASE_S = 3
RENEW_S = 1
TAKEOVER_TIMEOUT_S = LEASE_S + RENEW_S + 5
LABELS = [f"e2e-host-{i:02d}" for i in range(5)]


# ---- fixtures -------------------------------------------------------------------------------


@pytest.fixture
async def cluster(
    tmp_path: Path,
    database_url: str,
    redis_url: str,
    redis_namespace: str,
    sessions: async_sessionmaker[AsyncSession],  # requesting it truncates the tables first
) -> AsyncIterator[Cluster]:
    """A cluster environment on this run's database and this test's Redis namespace; every
    process it started is stopped afterwards."""
    env = cluster_env(
        database_url,
        redis_url,
        redis_namespace,
        min_schedule_interval_s=1,
        scheduler_lease_s=LEASE_S,
        scheduler_renew_interval_s=RENEW_S,
        reconcile_after_s=10,
        reconcile_interval_s=2,
        db_pool_size=4,
    )
    async with Cluster(tmp_path / "procs", env) as c:
        yield c
        codes = await asyncio.to_thread(c.stop_all)
        print(f"\nexit codes after SIGTERM: {codes}; process logs in {c.workdir}")


@dataclass
class Running:
    cluster: Cluster
    api: Proc
    client: httpx.AsyncClient  # authenticated as the team's admin, on the API process


@pytest.fixture
async def running(cluster: Cluster) -> AsyncIterator[Running]:
    """A team, then the API, two schedulers and one worker, all ready."""
    created = await cluster.run_cli("admin", "create-team", "e2e")
    token = last_json_object(created)["token"]
    api, *_ = await asyncio.gather(
        cluster.start_api(),
        cluster.start_scheduler("scheduler-a"),
        cluster.start_scheduler("scheduler-b"),
        cluster.start_worker("worker", processes=1, threads=8),
    )
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=api.url, headers=headers, timeout=10) as client:
        yield Running(cluster, api, client)


# ---- helpers --------------------------------------------------------------------------------


@dataclass
class Schedule:
    id: str
    labels: list[str]
    first_instant: datetime  # next_run_at when created


async def _create_schedule(r: Running) -> Schedule:
    """A maintenance flow, a target list of 5 and a schedule firing every 2 s, via the API."""
    c = r.client
    flow = await c.post(
        "/v1/flows", json={"name": "E2E patch", "flow_type": "maintenance", "steps": STEPS}
    )
    assert flow.status_code == 201, flow.text
    targets = [{"label": label} for label in LABELS]
    tl = await c.post("/v1/target-lists", json={"name": "E2E hosts", "targets": targets})
    assert tl.status_code == 201, tl.text
    created = await c.post(
        "/v1/maintenance-schedules",
        json={
            "flow_id": flow.json()["id"],
            "cron_expression": CRON,
            "target_list_id": tl.json()["id"],
        },
    )
    assert created.status_code == 201, created.text
    body = created.json()
    return Schedule(
        body["id"],
        [t["label"] for t in tl.json()["targets"]],
        datetime.fromisoformat(body["next_run_at"]),
    )


async def _batches(r: Running, schedule_id: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"schedule_id": schedule_id, "limit": 500}
        if cursor:
            params["cursor"] = cursor
        resp = await r.client.get("/v1/batches", params=params)
        assert resp.status_code == 200, resp.text
        page = resp.json()
        items += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return items


async def _wait_batches(r: Running, schedule_id: str, count: int, timeout: float) -> None:
    async def enough() -> bool:
        return len(await _batches(r, schedule_id)) >= count

    await poll_until(enough, timeout, f"{count} batches", every=0.25, detail=r.cluster.logs)


async def _pause_and_settle(r: Running, schedule_id: str, timeout: float = 60) -> None:
    """Pause the schedule, then wait until every batch is fanned out and ready."""
    resp = await r.client.post(f"/v1/maintenance-schedules/{schedule_id}/pause", json={})
    assert resp.status_code == 200, resp.text
    assert resp.json()["is_active"] is False

    async def settled() -> bool:
        batches = await _batches(r, schedule_id)
        done = [b for b in batches if b["ready_at"] and b["sessions_created"] == b["target_count"]]
        return bool(batches) and len(done) == len(batches)

    logs = r.cluster.logs
    await poll_until(settled, timeout, "every batch ready", every=0.25, detail=lambda: logs(40))


async def _sleep_until(t: float) -> None:
    await asyncio.sleep(max(0.0, t - time.monotonic()))


async def _freeze_between_transactions(cluster: Cluster, proc: Proc) -> None:
    """SIGSTOP `proc` at a moment when none of its database sessions is inside a transaction
    (thawing it and trying again a few ms later otherwise), so the freeze tests the lease and
    the fence, not PostgreSQL's row locks (the last test below freezes one inside one)."""

    async def frozen_idle() -> bool:
        proc.signal(signal.SIGSTOP)
        await asyncio.sleep(0.05)  # let statements already sent finish
        backends = await cluster.db_backends(proc.name)
        if backends and all(b["state"] == "idle" for b in backends):
            return True
        proc.signal(signal.SIGCONT)
        return False

    await poll_until(frozen_idle, 10, f"{proc.name} frozen outside a transaction", every=0.03)


async def _waiting_for(cluster: Cluster, proc: Proc, blocker: int) -> list[int]:
    """Backend pids of `proc`'s sessions that wait for a lock the backend `blocker` holds."""
    rows = await cluster.fetch(
        "SELECT pid FROM pg_stat_activity WHERE client_port = ANY($1::int[]) "
        "AND $2 = ANY(pg_blocking_pids(pid))",
        cluster.db_ports(proc.name),
        blocker,
    )
    return [r["pid"] for r in rows]


async def _holding_the_lease_row(cluster: Cluster, backends: list[int]) -> int | None:
    """The one of `backends` that sits idle inside the transaction that has updated the lease row
    and not committed (the row's xmax, as our snapshot sees it, is that transaction's id)."""
    rows = await cluster.fetch(
        "SELECT a.pid FROM pg_stat_activity a, scheduler_leases l "
        "WHERE l.name = 'scheduler' AND a.pid = ANY($1::int[]) "
        "AND a.state = 'idle in transaction' AND a.backend_xid = l.xmax",
        backends,
    )
    return rows[0]["pid"] if rows else None


async def _freeze_holding_the_lease_row(cluster: Cluster, leader: Proc, attempts: int = 3) -> int:
    """SIGSTOP the leader while one of its transactions holds the lease row; returns that
    session's backend pid.

    The test locks the row itself. The leader's next renew or claim updates the row and so
    waits for the test's lock; once PostgreSQL shows it waiting, the test freezes the leader and
    lets the update through. The update completes, and its transaction stays open, the row
    locked, for as long as the leader is frozen. The leader's lock_timeout (one renew interval)
    ends its wait if the test is slower than that: the attempt is then made again."""
    conn = await asyncpg.connect(plain_pg_url(cluster.env["MAINTFLOW_DATABASE_URL"]))
    try:
        me = await conn.fetchval("SELECT pg_backend_pid()")
        for _ in range(attempts):
            lock = conn.transaction()
            await lock.start()
            try:
                await conn.execute(
                    "SELECT 1 FROM scheduler_leases WHERE name = 'scheduler' FOR UPDATE"
                )
                waiting = await poll_until(
                    lambda: _waiting_for(cluster, leader, me),
                    5,
                    f"{leader.name} waiting for the lease row",
                    every=0.01,
                )
                leader.signal(signal.SIGSTOP)
            finally:
                await lock.rollback()
            try:
                held = await poll_until(
                    lambda w=waiting: _holding_the_lease_row(cluster, w),
                    1,
                    f"{leader.name} holding the lease row",
                    every=0.01,
                )
            except AssertionError:
                leader.signal(signal.SIGCONT)  # its wait had timed out first: try again
                continue
            return int(held)
        raise AssertionError(
            f"{leader.name} never held the lease row while frozen ({attempts} attempts)\n"
            f"{cluster.logs()}"
        )
    finally:
        await conn.close()


# ---- verification ---------------------------------------------------------------------------


async def _verify(cluster: Cluster, schedule: Schedule) -> Verdict:
    """The invariants, read from the database: one batch per 2-second instant from the first to
    the schedule's last_run_at, one session per target and one batch.ready per batch."""
    verdict = await verify(cluster.probe, {schedule.id: schedule.first_instant}, LABELS, EVERY)
    assert not verdict.problems, "\n".join([*verdict.problems, cluster.logs(40)])
    assert verdict.counts.schedules == 1 and verdict.counts.instants_found >= 4, verdict.counts
    return verdict


def _summary(verdict: Verdict) -> str:
    c, t = verdict.counts, verdict.timing
    return (
        f"{c.instants_found} instants, longest gap between batches "
        f"{t.longest_batch_gap_s:.2f} s, max fire lag {t.max_fire_lag_s:.2f} s"
    )


def _events_since(proc: Proc, offset: int, name: str) -> int:
    return event_count(proc.log_text()[offset:], name)


# ---- tests ----------------------------------------------------------------------------------


async def test_leader_killed_mid_run_loses_and_duplicates_nothing(running: Running) -> None:
    cluster = running.cluster
    first_leader = await cluster.wait_leader(timeout=10)
    schedule = await _create_schedule(running)
    started = time.monotonic()
    await _wait_batches(running, schedule.id, 2, timeout=10)

    await _sleep_until(started + 12)
    leader = await cluster.leader()
    lease = await cluster.lease()
    assert leader is not None and lease is not None, f"no live leader\n{cluster.logs()}"
    cluster.kill(leader.name, signal.SIGKILL)
    killed_at = time.monotonic()
    successor = await cluster.wait_leader(
        timeout=TAKEOVER_TIMEOUT_S, exclude=leader, min_epoch=lease.epoch + 1
    )
    takeover_s = time.monotonic() - killed_at
    # operations.md: a standby takes over within lease + renew interval (plus timer jitter).
    assert takeover_s < LEASE_S + RENEW_S + 2, f"takeover took {takeover_s:.1f} s\n{cluster.logs()}"
    fired_before = len(await _batches(running, schedule.id))

    await _wait_batches(running, schedule.id, fired_before + 3, timeout=15)
    await _pause_and_settle(running, schedule.id)
    verdict = await _verify(cluster, schedule)

    print(
        f"\nE2E kill -9: first leader {first_leader.name}, killed {leader.name} "
        f"(epoch {lease.epoch}), {successor.name} took over after {takeover_s:.1f} s; "
        f"{_summary(verdict)}"
    )
    # Failover is bounded by the lease: nothing came near the 60 s misfire grace.
    assert verdict.timing.max_fire_lag_s < TAKEOVER_TIMEOUT_S + 5, _summary(verdict)
    for proc in (successor, running.api, cluster["worker"]):
        proc.check_alive()
    cluster.assert_no_job_failures()


async def test_leader_frozen_past_its_lease_does_not_fire_twice(running: Running) -> None:
    cluster = running.cluster
    await cluster.wait_leader(timeout=10)
    schedule = await _create_schedule(running)
    started = time.monotonic()
    await _wait_batches(running, schedule.id, 2, timeout=10)

    await _sleep_until(started + 5)
    leader = await cluster.leader()
    lease = await cluster.lease()
    assert leader is not None and lease is not None, f"no live leader\n{cluster.logs()}"
    await _freeze_between_transactions(cluster, leader)
    stopped_at = time.monotonic()
    successor = await cluster.wait_leader(
        timeout=TAKEOVER_TIMEOUT_S, exclude=leader, min_epoch=lease.epoch + 1
    )
    takeover_s = time.monotonic() - stopped_at

    await _sleep_until(stopped_at + 2 * LEASE_S)  # frozen for twice its lease
    thawed_at = len(leader.log_text())
    cluster.kill(leader.name, signal.SIGCONT)
    # The stale leader wakes up with its old epoch and lease; it must step down, by its own
    # clock (leadership_lost at its next renew) or by the fence of a claim already under way.
    await poll_until(
        lambda: (
            _events_since(leader, thawed_at, "leadership_lost")
            + _events_since(leader, thawed_at, "fenced_out")
        ),
        RENEW_S + 5,
        f"{leader.name} stepping down after SIGCONT",
        detail=leader.tail,
    )
    await asyncio.sleep(2 * RENEW_S)  # a few more of its renews and ticks as a standby
    leader.check_alive()
    current = await cluster.leader()
    assert current is not None and current.name == successor.name, (
        f"leadership moved again after SIGCONT: {await cluster.lease()}\n{cluster.logs()}"
    )
    fired_by_stale = _events_since(leader, thawed_at, "schedules_fired")
    assert fired_by_stale == 0, f"{leader.name} fired after waking up\n{leader.tail()}"
    await _pause_and_settle(running, schedule.id)
    verdict = await _verify(cluster, schedule)

    print(
        f"\nE2E SIGSTOP: froze {leader.name} (epoch {lease.epoch}) for {2 * LEASE_S} s, "
        f"{successor.name} took over after {takeover_s:.1f} s; {_summary(verdict)}; the stale "
        f"leader logged leadership_lost={_events_since(leader, thawed_at, 'leadership_lost')} "
        f"fenced_out={_events_since(leader, thawed_at, 'fenced_out')} after SIGCONT"
    )
    assert verdict.timing.max_fire_lag_s < TAKEOVER_TIMEOUT_S + 5, _summary(verdict)
    cluster.assert_no_job_failures()


async def test_leader_frozen_holding_the_lease_row_is_replaced_within_the_lease(
    cluster: Cluster,
) -> None:
    await asyncio.gather(
        cluster.start_scheduler("scheduler-a"), cluster.start_scheduler("scheduler-b")
    )
    leader = await cluster.wait_leader(timeout=10)
    lease = await cluster.lease()
    assert lease is not None
    frozen_backend = await _freeze_holding_the_lease_row(cluster, leader)
    frozen_at = time.monotonic()

    # The scheduler's sessions carry idle_in_transaction_session_timeout = half a lease:
    # PostgreSQL ends the frozen session, and with it the transaction that locks the row.
    async def session_ended() -> bool:
        rows = await cluster.fetch("SELECT 1 FROM pg_stat_activity WHERE pid = $1", frozen_backend)
        return not rows

    what = "PostgreSQL ending the frozen session"
    await poll_until(session_ended, LEASE_S / 2 + 2, what, every=0.05, detail=cluster.logs)
    ended_s = time.monotonic() - frozen_at
    successor = await cluster.wait_leader(
        timeout=TAKEOVER_TIMEOUT_S, exclude=leader, min_epoch=lease.epoch + 1
    )
    takeover_s = time.monotonic() - frozen_at
    assert takeover_s < LEASE_S + RENEW_S + 2, f"takeover took {takeover_s:.1f} s\n{cluster.logs()}"

    thawed_at = len(leader.log_text())
    leader.signal(signal.SIGCONT)
    await poll_until(
        lambda: _events_since(leader, thawed_at, "leadership_lost"),
        RENEW_S + 5,
        f"{leader.name} stepping down after SIGCONT",
        detail=leader.tail,
    )
    leader.check_alive()
    current = await cluster.leader()
    assert current is not None and current.name == successor.name, await cluster.lease()
    print(
        f"\nfroze {leader.name} holding the lease row: its session ended after {ended_s:.1f} s, "
        f"{successor.name} took over after {takeover_s:.1f} s"
    )
