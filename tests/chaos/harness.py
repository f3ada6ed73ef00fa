"""A chaos run, reusable with any sizes: start the API, N scheduler replicas and M worker processes
on one database and Redis namespace, create S schedules firing every second with T targets each,
inject faults for a while (see faults.py), pause every schedule, wait until every batch is ready,
and verify from the database (see verify.py).

    report = await run_chaos(ChaosConfig().with_env(), database_url, redis_url, namespace, workdir)
    print(report); assert not report.failures

The CI test (test_chaos.py) runs a bounded version; `python -m tests.chaos.run` runs the full
sizes by hand on a database of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import random
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
from sqlalchemy.engine import make_url

from maintflow_core.queues import QUEUES
from tests.chaos import recovery
from tests.chaos.config import ChaosConfig
from tests.chaos.faults import FaultInjector, Monitor, Supervisor, holder_running
from tests.chaos.servers import Restarts, plan_restarts
from tests.chaos.verify import ChaosReport, verify
from tests.kit.cluster import Cluster, cluster_env
from tests.kit.db import Probe, plain_pg_url
from tests.kit.logs import json_objects, last_json_object
from tests.kit.poll import poll_until
from tests.kit.seed import STEPS, post_created

REPO = Path(__file__).resolve().parents[2]
CRON = "* * * * * *"  # every second: the 6th field is seconds
API_CONCURRENCY = 8
# Events counted in the process logs for the report (JSON lines: "event": "<name>").
LOG_EVENTS = (
    "leader_elected",
    "leadership_lost",
    "fenced_out",
    "lease_renew_failed",
    "scheduler_job_failed",
    "schedules_fired",
    "batches_redriven",
)


def log_stdout(text: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {text}", flush=True)


def process_env(
    config: ChaosConfig, database_url: str, redis_url: str, namespace: str
) -> dict[str, str]:
    return cluster_env(
        database_url,
        redis_url,
        namespace,
        min_schedule_interval_s=1,
        **config.settings(),
    )


async def _plan_restarts(
    config: ChaosConfig, probe: Probe, database_url: str, redis_url: str
) -> Restarts:
    db = make_url(database_url)
    return await plan_restarts(
        redis_url=redis_url,
        database_host=db.host or "",
        database_port=db.port or 5432,
        probe=probe,
        restart_redis=config.restart_redis,
        restart_postgres=config.restart_postgres,
        redis_start=config.redis_start,
        postgres_restart=config.postgres_restart,
    )


@dataclass
class Fleet:
    """What setup created: the schedules (id → first instant) and the target labels."""

    token: str
    api_url: str
    first_instants: dict[str, datetime]
    labels: list[str]


async def run_chaos(
    config: ChaosConfig,
    database_url: str,
    redis_url: str,
    namespace: str,
    workdir: Path,
    log: Callable[[str], None] = log_stdout,
) -> ChaosReport:
    seed = config.seed or random.SystemRandom().randrange(1, 2**31)
    config = dataclasses.replace(config, seed=seed)
    env = process_env(config, database_url, redis_url, namespace)
    probe = Probe(plain_pg_url(database_url))
    code_before = code_stamp()
    started = time.monotonic()
    log(config.summary())
    try:
        # Before anything starts: a restart that cannot be done fails here, not halfway.
        restarts = await _plan_restarts(config, probe, database_url, redis_url)
        async with Cluster(workdir, env) as cluster:
            supervisor = Supervisor(cluster, config, started, log)
            fleet = await _setup(cluster, supervisor, probe, config, log)
            setup_s = time.monotonic() - started
            t0 = time.monotonic()
            t0_wall = datetime.now(UTC)
            supervisor.t0 = t0
            monitor = Monitor(probe, t0, holder_running(cluster))
            injector = FaultInjector(cluster, supervisor, probe, config, t0, log, restarts)
            background = {
                "supervisor": asyncio.create_task(supervisor.run()),
                "monitor": asyncio.create_task(monitor.run(redis_url, namespace, QUEUES)),
            }
            try:
                await injector.run()
                await asyncio.sleep(max(0.0, t0 + config.seconds - time.monotonic()))
                faults_s = time.monotonic() - t0
                log(f"faults done after {faults_s:.0f} s; waiting for every process to be up")
                await supervisor.wait_all_up()
                settled = time.monotonic()
                await _pause_all(fleet, log)
                await _settle(probe, config, log)
                settle_s = time.monotonic() - settled
            finally:
                stopped = _stopped_early(background)
                for task in background.values():
                    task.cancel()
                await asyncio.gather(*background.values(), return_exceptions=True)
            supervisor.check()  # a death during the last moments counts too
            monitor.write_csv(workdir / "timeline.csv")
            verdict = await verify(probe, fleet.first_instants, fleet.labels)
            recoveries = await recovery.measure(probe, injector.faults, t0_wall)
            events = _log_events(cluster)
            report = ChaosReport(
                config=config,
                verdict=verdict,
                faults=injector.faults,
                deaths=supervisor.deaths,
                leaderless=monitor.longest_leaderless_s(),
                tickless=monitor.longest_tickless_s(),
                leader_changes=monitor.epochs(),
                peak_not_ready=monitor.peak("not_ready"),
                peak_pending_outbox=monitor.peak("pending_outbox"),
                queue_peak=dict(monitor.queue_peak),
                log_events=events,
                setup_s=setup_s,
                faults_s=faults_s,
                settle_s=settle_s,
                total_s=time.monotonic() - started,
                seed=seed,
                workdir=str(workdir),
                code_version=code_before[0],
                warnings=_code_warnings(code_before, code_stamp()),
                harness_errors=stopped,
                probe_errors=dict(probe.errors),
                recoveries=recoveries,
            )
    finally:
        await probe.close()
    (workdir / "report.txt").write_text(str(report) + "\n")
    return report


def code_stamp() -> tuple[str, str]:
    """(git HEAD, a digest of every application source file's path and mtime). Processes that a
    fault restarts load the code on disk at that moment: in a shared working tree, someone
    else's change mid-run would mix versions."""
    head = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    digest = hashlib.sha256()
    for path in sorted((REPO / "libs").rglob("*.py")) + sorted((REPO / "services").rglob("*.py")):
        with contextlib.suppress(OSError):
            digest.update(f"{path}:{path.stat().st_mtime_ns}".encode())
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--", "libs", "services"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    if not head:  # an exported tree (git archive); its COMMIT file, if any, says which
        commit = (REPO / "COMMIT").read_text().strip() if (REPO / "COMMIT").exists() else "?"
        return f"snapshot of {commit} in {REPO}", digest.hexdigest()
    return f"{head}{' + uncommitted changes' if dirty else ''}", digest.hexdigest()


def _stopped_early(tasks: dict[str, asyncio.Task[None]]) -> list[str]:
    """The harness's own background tasks run until cancelled; one that ended by itself means
    its figures (or, for the supervisor, the deaths it should have seen) are incomplete."""
    return [
        f"harness {name} stopped early: {task.exception()!r}"
        for name, task in tasks.items()
        if task.done() and not task.cancelled() and task.exception() is not None
    ]


def _code_warnings(before: tuple[str, str], after: tuple[str, str]) -> list[str]:
    if before == after:
        return []
    return [
        f"application code changed during the run ({before[0]} -> {after[0]}): processes "
        "restarted after the change ran the new code; rerun before trusting a failure"
    ]


# ---- setup ----------------------------------------------------------------------------------


async def _setup(
    cluster: Cluster,
    supervisor: Supervisor,
    probe: Probe,
    config: ChaosConfig,
    log: Callable[[str], None],
) -> Fleet:
    created = await cluster.run_cli("admin", "create-team", "chaos")
    token = last_json_object(created)["token"]
    schedulers = [f"scheduler-{i + 1}" for i in range(config.schedulers)]
    workers = [f"worker-{i + 1}" for i in range(config.workers)]
    api, *_ = await asyncio.gather(
        cluster.start_api(),
        *(cluster.start_scheduler(name) for name in schedulers),
        *(
            cluster.start_worker(name, processes=1, threads=config.worker_threads, timeout=60)
            for name in workers
        ),
    )
    supervisor.add("api", "api", ["api", "--host", "127.0.0.1", "--port", str(api.port)])
    for name in schedulers:
        supervisor.add(name, "scheduler", ["scheduler"])
    for name in workers:
        supervisor.add(
            name, "worker", ["worker", "--processes", "1", "--threads", str(config.worker_threads)]
        )
    leader = await cluster.wait_leader(timeout=30)
    log(f"processes up; {leader.name} leads; creating {config.schedules} schedules")
    fleet = await _create_schedules(api.url, token, config)
    await _wait_all_fired(probe, config, log)
    await asyncio.sleep(config.warmup_s)
    return fleet


async def _create_schedules(api_url: str, token: str, config: ChaosConfig) -> Fleet:
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=api_url, headers=headers, timeout=30) as client:
        targets = [{"label": f"chaos-host-{i:03d}"} for i in range(config.targets)]
        tl = await post_created(
            client, "/v1/target-lists", {"name": "Chaos hosts", "targets": targets}
        )
        labels = [t["label"] for t in tl["targets"]]
        gate = asyncio.Semaphore(API_CONCURRENCY)

        async def one(i: int) -> tuple[str, datetime]:
            async with gate:
                flow = await post_created(
                    client,
                    "/v1/flows",
                    {"name": f"Chaos patch {i:04d}", "flow_type": "maintenance", "steps": STEPS},
                )
                body = await post_created(
                    client,
                    "/v1/maintenance-schedules",
                    {
                        "flow_id": flow["id"],
                        "cron_expression": CRON,
                        "target_list_id": tl["id"],
                    },
                )
            return body["id"], datetime.fromisoformat(body["next_run_at"])

        pairs = await asyncio.gather(*(one(i) for i in range(config.schedules)))
    return Fleet(token, api_url, dict(pairs), labels)


async def _wait_all_fired(
    probe: Probe, config: ChaosConfig, log: Callable[[str], None], timeout: float = 60
) -> None:
    seen = 0

    async def all_fired() -> bool:
        nonlocal seen
        seen = int(
            await probe.fetchval(
                "SELECT count(DISTINCT schedule_id) FROM batches WHERE trigger = 'schedule'"
            )
        )
        return seen >= config.schedules

    what = f"all {config.schedules} schedules fired"
    await poll_until(all_fired, timeout, what, every=0.5, detail=lambda: f"{seen} have")
    log(f"all {config.schedules} schedules have fired; warming up {config.warmup_s:g} s")


# ---- settle ---------------------------------------------------------------------------------


async def _pause_all(fleet: Fleet, log: Callable[[str], None]) -> None:
    """Pause every schedule through the API (retrying transient errors), so the set of instants
    is final: a schedule's last_run_at is its last fired instant."""
    headers = {"Authorization": f"Bearer {fleet.token}"}
    async with httpx.AsyncClient(base_url=fleet.api_url, headers=headers, timeout=30) as client:
        gate = asyncio.Semaphore(API_CONCURRENCY)

        async def pause(sid: str) -> None:
            async with gate:
                for attempt in range(10):
                    with contextlib.suppress(httpx.HTTPError):
                        resp = await client.post(
                            f"/v1/maintenance-schedules/{sid}/pause", json={"reason": "chaos"}
                        )
                        if resp.status_code == 200 and resp.json()["is_active"] is False:
                            return
                        if resp.status_code < 500 and resp.status_code != 429:
                            raise AssertionError(f"pause {sid}: {resp.status_code} {resp.text}")
                    await asyncio.sleep(0.5 * (attempt + 1))
                raise AssertionError(f"pause {sid}: still failing after 10 attempts")

        await asyncio.gather(*(pause(sid) for sid in fleet.first_instants))
    log(f"paused all {len(fleet.first_instants)} schedules; waiting for every batch to be ready")


async def _settle(probe: Probe, config: ChaosConfig, log: Callable[[str], None]) -> None:
    """Wait until every batch is ready. At the timeout the run goes on to its verdict, which
    names the batches that are not."""
    started = last_log = time.monotonic()

    async def settled() -> bool:
        nonlocal last_log
        rows = await probe.try_fetch(
            "SELECT count(*) FILTER (WHERE ready_at IS NULL) AS not_ready, count(*) AS total "
            "FROM batches"
        )
        if rows and rows[0]["not_ready"] == 0:
            took = time.monotonic() - started
            log(f"settled: all {rows[0]['total']} batches ready after {took:.0f} s")
            return True
        if rows and time.monotonic() - last_log > 10:
            log(f"settling: {rows[0]['not_ready']} of {rows[0]['total']} batches not ready")
            last_log = time.monotonic()
        return False

    try:
        await poll_until(settled, config.settle_timeout_s, "every batch ready", every=1)
    except AssertionError:
        log(f"settle timeout ({config.settle_timeout_s:g} s)")


def _log_events(cluster: Cluster) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for proc in cluster.procs.values():
        text = proc.log_text()
        for entry in json_objects(text):
            event = entry.get("event")
            if event in LOG_EVENTS:
                counts[event] += 1
            if event == "batches_redriven":
                counts["batches_redriven_total"] += int(entry.get("count", 0))
        if proc.role == "worker":
            counts["worker_messages_failed"] += text.count("Failed to process message")
            counts["worker_retries_exhausted"] += text.count("Retries exceeded")
    return dict(counts)
