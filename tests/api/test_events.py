"""Events raised by session PATCHes: `session.failed` for each failed session and one
`batch.completed` once every session of a batch is final — also when the last two sessions
finish together, in concurrent transactions."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from maintflow_core.db.store import open_store
from maintflow_core.models import Notification
from maintflow_core.schemas.batches import SessionUpdate
from maintflow_core.settings import Settings
from maintflow_core.usecases.sessions import update_session
from tests.conftest import TeamCtx, new_flow
from tests.kit.db import Probe, plain_pg_url
from tests.kit.poll import poll_until


async def _launch(t: TeamCtx, labels: list[str]) -> dict[str, Any]:
    flow = await new_flow(t)
    r = await t.req(
        "POST",
        "/v1/sessions/batch",
        json={"flow_id": flow["id"], "targets": [{"label": label} for label in labels]},
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


async def _move(t: TeamCtx, session_id: str, *statuses: str) -> None:
    for status in statuses:
        r = await t.req("PATCH", f"/v1/sessions/{session_id}", json={"status": status})
        assert r.status_code == 200, r.text


async def _events(t: TeamCtx, event: str) -> list[dict[str, Any]]:
    items = (await t.req("GET", "/v1/notifications?limit=500")).json()["items"]
    return [n for n in items if n["event"] == event]


async def test_a_failed_session_raises_session_failed_and_the_last_final_one_completes_the_batch(
    team: TeamCtx,
) -> None:
    batch = await _launch(team, ["db-1", "db-2", "db-3"])
    s1, s2, s3 = (s["id"] for s in batch["sessions"])

    await _move(team, s1, "in_progress", "completed")
    await _move(team, s2, "in_progress", "failed")
    failed = await _events(team, "session.failed")
    assert [n["data"]["session_id"] for n in failed] == [s2]
    assert failed[0]["data"]["target_label"] == "db-2"
    assert await _events(team, "batch.completed") == []  # db-3 is still pending

    await _move(team, s3, "cancelled")
    (completed,) = await _events(team, "batch.completed")
    assert completed["batch_id"] == batch["batch_id"]
    assert completed["data"]["status_counts"] == {
        "pending": 0,
        "in_progress": 0,
        "completed": 1,
        "failed": 1,
        "cancelled": 1,
    }
    assert completed["data"]["trigger"] == "manual"
    # Notes and steps on a final session change nothing: no second event.
    r = await team.req("PATCH", f"/v1/sessions/{s3}", json={"notes": "cancelled by the owner"})
    assert r.status_code == 200, r.text
    assert len(await _events(team, "batch.completed")) == 1
    assert len(await _events(team, "session.failed")) == 1


async def test_another_teams_sessions_raise_nothing_for_this_team(
    team: TeamCtx, other_team: TeamCtx
) -> None:
    batch = await _launch(other_team, ["x"])
    await _move(other_team, batch["sessions"][0]["id"], "in_progress", "failed")
    assert len(await _events(other_team, "batch.completed")) == 1
    assert (await team.req("GET", "/v1/notifications")).json()["items"] == []


async def test_the_last_two_sessions_finishing_together_complete_the_batch_once(
    team: TeamCtx, sessions: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    """Two transactions each finish one of the last two sessions. The second one's count of its
    batch waits for the first to commit (it is caught waiting on the lock before the first
    commits), then counts on top of it: exactly one batch.completed, with both counted."""
    batch = await _launch(team, ["a", "b"])
    a, b = (uuid.UUID(s["id"]) for s in batch["sessions"])
    await _move(team, str(a), "in_progress")
    await _move(team, str(b), "in_progress")
    store = open_store(settings)
    probe = Probe(plain_pg_url(settings.database_url))
    try:
        async with sessions() as first, sessions() as second:
            await first.begin()
            await update_session(
                first, team.clock, store, team.team_id, a, SessionUpdate(status="completed")
            )
            await second.begin()
            finishing = asyncio.create_task(
                update_session(
                    second, team.clock, store, team.team_id, b, SessionUpdate(status="failed")
                )
            )
            await poll_until(
                lambda: probe.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock' AND query LIKE 'UPDATE batches%'"
                ),
                10,
                "the second transaction waiting for the batch's row lock",
            )
            await first.commit()
            await finishing
            await second.commit()
    finally:
        await probe.close()

    async with sessions() as db:
        rows = (
            await db.execute(
                sa.select(Notification.event, Notification.data).where(
                    Notification.team_id == team.team_id
                )
            )
        ).all()
    completed = [data for event, data in rows if event == "batch.completed"]
    assert len(completed) == 1
    assert completed[0]["status_counts"]["completed"] == 1
    assert completed[0]["status_counts"]["failed"] == 1
    assert [data["session_id"] for event, data in rows if event == "session.failed"] == [str(b)]


async def test_concurrent_patches_of_the_last_sessions_of_many_batches_complete_each_once(
    team: TeamCtx,
) -> None:
    """The same race through HTTP: for each of 8 batches, its last two sessions are PATCHed to
    final states at the same time (whatever the interleaving, each batch completes once)."""
    batches = [await _launch(team, ["x", "y"]) for _ in range(8)]
    pairs = [[s["id"] for s in b["sessions"]] for b in batches]
    for x, y in pairs:
        await _move(team, x, "in_progress")
        await _move(team, y, "in_progress")
    answers = await asyncio.gather(
        *(
            team.req("PATCH", f"/v1/sessions/{sid}", json={"status": status})
            for pair in pairs
            for sid, status in zip(pair, ("completed", "failed"), strict=True)
        )
    )
    assert [a.status_code for a in answers] == [200] * 16
    completed = await _events(team, "batch.completed")
    assert sorted(n["batch_id"] for n in completed) == sorted(b["batch_id"] for b in batches)
    assert {
        (n["data"]["status_counts"]["completed"], n["data"]["status_counts"]["failed"])
        for n in completed
    } == {(1, 1)}
    assert len(await _events(team, "session.failed")) == 8
