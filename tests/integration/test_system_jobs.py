"""System jobs on a fake clock, on both databases: the nightly fires once per instant whoever
claims it, a manual run executes once to success with its counts, a failing job records why and
tells every team, a run whose worker died is failed at its deadline, and the API's rules (admins
of any team; 409 while running; PATCH validation)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from maintflow_core.clock import FakeClock
from maintflow_core.db.store import Store
from maintflow_core.due.system_jobs import SystemJobs
from maintflow_core.models import Notification, Outbox, SystemJob, SystemJobRun
from maintflow_core.settings import Settings
from maintflow_core.usecases import system_jobs
from tests.conftest import TeamCtx
from tests.integration.helpers import scheduler, transactions
from tests.kit.seed import builtin_system_jobs

Sessions = async_sessionmaker[AsyncSession]
NIGHTLY = "retention_cleanup_nightly"
MANUAL = "retention_cleanup_manual"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


async def execute(
    sessions: Sessions, store: Store, clock: FakeClock, settings: Settings, run_id: str
) -> bool:
    """What the run_system_job actor does with its message."""
    return await system_jobs.execute_run(
        transactions(sessions), store, clock, settings, uuid.UUID(run_id)
    )


async def run(t: TeamCtx, run_id: str) -> dict[str, Any]:
    r = await t.req("GET", f"/v1/system-job-runs/{run_id}")
    assert r.status_code == 200, r.text
    return dict(r.json())


async def runs_of(sessions: Sessions, key: str) -> list[SystemJobRun]:
    async with sessions() as db:
        return list(
            (
                await db.scalars(
                    sa.select(SystemJobRun)
                    .join(SystemJob)
                    .where(SystemJob.key == key)
                    .order_by(SystemJobRun.started_at)
                )
            ).all()
        )


async def failure_events(sessions: Sessions) -> list[tuple[uuid.UUID, dict[str, Any]]]:
    async with sessions() as db:
        rows = await db.execute(
            sa.select(Notification.team_id, Notification.data).where(
                Notification.event == "system_job.failed"
            )
        )
        return [(r[0], r[1]) for r in rows]


async def test_the_nightly_fires_once_per_instant_whoever_claims_it(
    team: TeamCtx, settings: Settings, sessions: Sessions, clock: FakeClock, store: Store
) -> None:
    clock.set(at("2026-06-01T02:59:00+00:00"))
    await builtin_system_jobs(sessions, clock.now())
    now = at("2026-06-01T03:00:00.4+00:00")

    async def claim() -> list[uuid.UUID]:
        async with sessions() as db, db.begin():
            return (await SystemJobs(store, settings).claim(db, now, limit=5)).fired

    results = await asyncio.gather(*(claim() for _ in range(6)), return_exceptions=True)
    fired = [r for result in results if isinstance(result, list) for r in result]
    a, b = scheduler(settings, sessions, clock, "a"), scheduler(settings, sessions, clock, "b")
    clock.set(now)
    for svc in (a, b):
        await svc.renew()
        fired += (await svc.tick()).fired
    (nightly,) = await runs_of(sessions, NIGHTLY)
    assert fired == [nightly.id]
    assert nightly.trigger == "schedule" and nightly.scheduled_for == at("2026-06-01T03:00Z")
    async with sessions() as db:
        job = await db.scalar(sa.select(SystemJob).where(SystemJob.key == NIGHTLY))
        messages = await db.scalar(
            sa.select(sa.func.count()).where(Outbox.kind == "run_system_job")
        )
    assert job is not None and job.next_run_at == at("2026-06-02T03:00Z")
    assert messages == 1
    assert await runs_of(sessions, MANUAL) == []


async def test_a_manual_run_executes_once_to_success_with_its_counts(
    team: TeamCtx,
    other_team: TeamCtx,
    settings: Settings,
    sessions: Sessions,
    clock: FakeClock,
    store: Store,
) -> None:
    await builtin_system_jobs(sessions, clock.now())
    r = await other_team.req("POST", f"/v1/system-jobs/{MANUAL}/run")
    assert r.status_code == 202, r.text
    run_id = r.json()["run_id"]
    again = await team.req("POST", f"/v1/system-jobs/{MANUAL}/run")
    assert again.status_code == 409
    assert (await run(team, run_id))["status"] == "running"
    clock.advance(2)
    assert await execute(sessions, store, clock, settings, run_id)
    assert not await execute(sessions, store, clock, settings, run_id)  # a redelivery
    done = await run(team, run_id)
    assert done["status"] == "success" and done["trigger"] == "manual"
    assert done["job_key"] == MANUAL and done["duration_s"] == 2.0
    assert done["result"]["batches"] == {"deleted": 0, "kept": 0}
    assert set(done["result"]) >= {
        "batches",
        "sessions",
        "notifications",
        "webhook_deliveries",
        "outbox",
        "cutoff",
    }
    listed = (await other_team.req("GET", "/v1/system-job-runs")).json()["items"]
    assert [x["id"] for x in listed] == [run_id]
    assert (await team.req("POST", f"/v1/system-jobs/{MANUAL}/run")).status_code == 202


async def test_a_failing_job_records_why_and_tells_every_team(
    team: TeamCtx,
    other_team: TeamCtx,
    settings: Settings,
    sessions: Sessions,
    clock: FakeClock,
    store: Store,
) -> None:
    async with sessions() as db, db.begin():
        db.add(
            SystemJob(
                key="vacuum_everything",
                job_type="vacuum",
                schedule_cron=None,
                timezone="UTC",
                enabled=True,
                visible_in_ui=True,
                created_at=clock.now(),
                updated_at=clock.now(),
            )
        )
    run_id = (await team.req("POST", "/v1/system-jobs/vacuum_everything/run")).json()["run_id"]
    assert await execute(sessions, store, clock, settings, run_id)
    failed = await run(team, run_id)
    assert failed["status"] == "failed"
    assert failed["message"] == "LookupError: no job type 'vacuum' in this version of maintflow"
    told = await failure_events(sessions)
    assert sorted(t for t, _ in told) == sorted([team.team_id, other_team.team_id])
    assert all(data == {"job_key": "vacuum_everything", "run_id": run_id} for _, data in told)


async def test_a_run_whose_worker_died_is_failed_at_its_deadline(
    team: TeamCtx, settings: Settings, sessions: Sessions, clock: FakeClock, store: Store
) -> None:
    settings.system_job_time_limit_s = 30
    await builtin_system_jobs(sessions, clock.now())
    run_id = (await team.req("POST", f"/v1/system-jobs/{MANUAL}/run")).json()["run_id"]
    async with sessions() as db, db.begin():  # a worker takes it up, then is killed
        assert await system_jobs.take_up(db, settings, clock.now(), uuid.UUID(run_id))
    svc = scheduler(settings, sessions, clock)
    clock.advance(29)
    await svc.renew()
    await svc.tick()
    assert (await run(team, run_id))["status"] == "running"
    assert not await execute(sessions, store, clock, settings, run_id)  # the redelivery
    clock.advance(2)
    await svc.renew()
    await svc.tick()
    lost = await run(team, run_id)
    assert lost["status"] == "failed"
    assert lost["message"] == "worker lost: no result within the time limit (30 s)"
    assert [t for t, _ in await failure_events(sessions)] == [team.team_id]
    async with sessions() as db, db.begin():  # the worker's late result changes nothing
        assert not await system_jobs.finish(
            db, store, clock.now(), uuid.UUID(run_id), failed=False, message="late"
        )
    assert (await run(team, run_id))["status"] == "failed"


async def test_only_admins_see_system_jobs_and_patch_is_validated(
    team: TeamCtx, settings: Settings, sessions: Sessions, clock: FakeClock
) -> None:
    await builtin_system_jobs(sessions, clock.now())
    for role in ("viewer", "engineer"):
        token = await team.user(role)
        for method, url in (
            ("GET", "/v1/system-jobs"),
            ("GET", "/v1/system-job-runs"),
            ("POST", f"/v1/system-jobs/{MANUAL}/run"),
            ("PATCH", f"/v1/system-jobs/{NIGHTLY}"),
        ):
            r = await team.req(method, url, token=token, json={})
            assert r.status_code == 403, (role, method, url)
    visible = (await team.req("GET", "/v1/system-jobs", params={"visible_in_ui": True})).json()
    assert [j["key"] for j in visible["items"]] == [NIGHTLY]
    every = (await team.req("GET", "/v1/system-jobs")).json()["items"]
    assert sorted(j["key"] for j in every) == [MANUAL, NIGHTLY]
    visible = visible["items"]
    assert visible[0]["schedule_cron"] == "0 3 * * *" and visible[0]["timezone"] == "UTC"
    url = f"/v1/system-jobs/{NIGHTLY}"
    r = await team.req("PATCH", url, json={"schedule_cron": "not cron"})
    assert r.status_code == 422 and "schedule_cron" in r.text
    r = await team.req("PATCH", url, json={"timezone": "Mars/Olympus"})
    assert r.status_code == 422 and "timezone" in r.text
    r = await team.req(
        "PATCH", url, json={"schedule_cron": "30 1 * * *", "timezone": "Europe/Paris"}
    )
    assert r.status_code == 200 and r.json()["next_run_at"] == "2026-06-01T23:30:00Z"
    r = await team.req("PATCH", url, json={"enabled": False})
    assert r.json()["enabled"] is False
    clock.set(at("2026-06-02T00:00:00+00:00"))
    svc = scheduler(settings, sessions, clock)
    await svc.renew()
    assert (await svc.tick()).fired == []
    assert (await team.req("PATCH", "/v1/system-jobs/nope", json={})).status_code == 404
    assert (await team.req("GET", f"/v1/system-job-runs/{uuid.uuid4()}")).status_code == 404


async def test_a_nightly_missed_during_downtime_runs_once_for_its_newest_instant(
    team: TeamCtx, settings: Settings, sessions: Sessions, clock: FakeClock
) -> None:
    clock.set(at("2026-06-01T02:00:00+00:00"))
    await builtin_system_jobs(sessions, clock.now())
    clock.set(at("2026-06-04T10:00:00+00:00"))  # three nightly instants passed while down
    svc = scheduler(settings, sessions, clock)
    await svc.renew()
    result = await svc.tick()
    assert len(result.fired) == 1 and result.missed == 1
    (nightly,) = await runs_of(sessions, NIGHTLY)
    assert nightly.scheduled_for == at("2026-06-04T03:00Z")
    jobs = (await team.req("GET", "/v1/system-jobs")).json()["items"]
    (job,) = [j for j in jobs if j["key"] == NIGHTLY]
    assert job["next_run_at"] == "2026-06-05T03:00:00Z"
    assert job["last_run_at"] == "2026-06-04T03:00:00Z"


async def test_a_job_without_a_schedule_runs_by_hand_only_and_resumes_from_now(
    team: TeamCtx, settings: Settings, sessions: Sessions, clock: FakeClock
) -> None:
    await builtin_system_jobs(sessions, clock.now())
    url = f"/v1/system-jobs/{NIGHTLY}"
    r = await team.req("PATCH", url, json={"schedule_cron": None})
    assert r.status_code == 200 and r.json()["next_run_at"] is None
    clock.set(at("2026-06-03T12:00:00+00:00"))
    svc = scheduler(settings, sessions, clock)
    await svc.renew()
    assert (await svc.tick()).fired == []
    await team.req("PATCH", url, json={"enabled": False, "schedule_cron": "0 3 * * *"})
    clock.set(at("2026-06-05T12:00:00+00:00"))
    r = await team.req("PATCH", url, json={"enabled": True})
    # Instants that passed while it was disabled are not owed.
    assert r.json()["next_run_at"] == "2026-06-06T03:00:00Z"
    await svc.renew()
    assert (await svc.tick()).fired == []
