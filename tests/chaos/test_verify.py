"""The invariant verifier (tests/kit/invariants.py, the judge of the chaos and end-to-end runs)
has teeth: on a clean record it finds nothing, and each kind of damage a fault could do (a lost
instant, a lost session, a missing or second notification, a batch left unfinished, an instant
off the grid, a session not counted in the progress shards, a doubled instant) is reported. Rows
are written directly, in milliseconds."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.conftest import T0, TeamCtx
from tests.integration.helpers import new_schedule
from tests.kit.db import Probe, plain_pg_url
from tests.kit.invariants import Verdict, verify

LABELS = [f"host-{i}" for i in range(3)]
INSTANTS = 6


@pytest.fixture
async def probe(database_url: str) -> AsyncIterator[Probe]:
    p = Probe(plain_pg_url(database_url))
    yield p
    await p.close()


async def _record(
    team: TeamCtx, every: timedelta = timedelta(seconds=1)
) -> tuple[dict[str, datetime], list[uuid.UUID]]:
    """A paused schedule with INSTANTS instants `every` apart, each batch complete: one session
    per label, one batch.ready notification, progress counted. Returns (first instants, batch
    ids)."""
    schedule = await new_schedule(team, targets=None, cron_expression="*/5 * * * *")
    sid, flow_id = uuid.UUID(schedule["id"]), uuid.UUID(schedule["flow_id"])
    first = T0 + timedelta(seconds=1)
    ids = [uuid.uuid4() for _ in range(INSTANTS)]
    async with team.sessions() as db, db.begin():
        for k, bid in enumerate(ids):
            await _batch(db, team.team_id, flow_id, sid, bid, first + k * every)
            await db.execute(
                sa.text(
                    "INSERT INTO batch_progress (batch_id, shard, created, updated_at) "
                    "VALUES (:b, 0, :n, :t)"
                ),
                {"b": bid, "n": len(LABELS), "t": T0},
            )
        await db.execute(
            sa.text(
                "UPDATE maintenance_schedules SET is_active = false, last_run_at = :last "
                "WHERE id = :sid"
            ),
            {"last": first + (INSTANTS - 1) * every, "sid": sid},
        )
    return {str(sid): first}, ids


async def _batch(
    db: AsyncSession,
    team_id: uuid.UUID,
    flow_id: uuid.UUID,
    sid: uuid.UUID,
    bid: uuid.UUID,
    instant: datetime,
) -> None:
    common = {"team": team_id, "flow": flow_id, "b": bid, "t": instant}
    await db.execute(
        sa.text(
            "INSERT INTO batches (id, team_id, flow_id, schedule_id, trigger, scheduled_for, "
            "target_count, sessions_created, created_at, ready_at, steps) VALUES "
            "(:b, :team, :flow, :sid, 'schedule', :t, :n, :n, :t, :t, '[]')"
        ),
        {**common, "sid": sid, "n": len(LABELS)},
    )
    for label in LABELS:
        await db.execute(
            sa.text(
                "INSERT INTO sessions (id, team_id, batch_id, flow_id, target_label, status, "
                "steps, created_at, updated_at) VALUES "
                "(:id, :team, :b, :flow, :label, 'pending', '[]', :t, :t)"
            ),
            {**common, "id": uuid.uuid4(), "label": label},
        )
    await _notify(db, common, "batch.ready")


async def _notify(
    db: AsyncSession, common: dict[str, Any], event: str, cause: str | None = None
) -> None:
    """A notification row as raise_event writes it: once per cause key ("<event>:<batch>" unless
    `cause` names another), numbered after the team's last."""
    await db.execute(
        sa.text(
            "INSERT INTO notifications (id, team_id, event, title, message, batch_id, "
            "created_at, dedupe_key, seq) VALUES (:id, :team, :event, 'ready', 'ready', :b, :t, "
            ":key, (SELECT coalesce(max(seq), 0) + 1 FROM notifications WHERE team_id = :team))"
        ),
        {
            **common,
            "id": uuid.uuid4(),
            "event": event,
            "key": f"{event}:{cause or common['b']}",
        },
    )


async def _damage(sessions: async_sessionmaker[AsyncSession], sql: str, **params: Any) -> None:
    async with sessions() as db, db.begin():
        await db.execute(sa.text(sql), params)


def _kinds(verdict: Verdict) -> set[str]:
    return {p.split(":", 1)[0] for p in verdict.problems}


async def test_a_clean_record_passes(team: TeamCtx, probe: Probe) -> None:
    first, _ids = await _record(team)
    verdict = await verify(probe, first, LABELS)
    assert verdict.problems == []
    c = verdict.counts
    assert (c.instants_expected, c.instants_found, c.batches) == (INSTANTS, INSTANTS, INSTANTS)
    assert (c.sessions, c.notifications) == (INSTANTS * len(LABELS), INSTANTS)


async def test_each_kind_of_damage_is_reported(
    team: TeamCtx, probe: Probe, sessions: async_sessionmaker[AsyncSession]
) -> None:
    first, ids = await _record(team)
    await _damage(sessions, "DELETE FROM batches WHERE id = :b", b=ids[2])  # a lost instant
    await _damage(
        sessions, "DELETE FROM sessions WHERE batch_id = :b AND target_label = 'host-0'", b=ids[3]
    )
    await _damage(sessions, "DELETE FROM notifications WHERE batch_id = :b", b=ids[4])
    await _damage(sessions, "UPDATE batches SET ready_at = NULL WHERE id = :b", b=ids[1])
    await _damage(
        sessions,
        "UPDATE batches SET scheduled_for = scheduled_for + interval '500 milliseconds' "
        "WHERE id = :b",
        b=ids[5],
    )

    verdict = await verify(probe, first, LABELS)

    c = verdict.counts
    assert _kinds(verdict) >= {"missing", "sessions", "notifications", "not ready", "off grid"}
    assert c.instants_missing == 2  # the deleted one and the one moved off the grid
    assert c.instants_off_grid == 1
    assert c.batches_bad_sessions == 1
    assert c.batches_bad_notifications == 1
    assert c.batches_not_ready == 1


async def test_a_second_notification_is_reported(
    team: TeamCtx, probe: Probe, sessions: async_sessionmaker[AsyncSession]
) -> None:
    first, ids = await _record(team)
    async with sessions() as db, db.begin():
        # The database refuses a second batch.ready of one cause; a bug could still raise one
        # under another cause key, and the verifier must see it.
        common = {"team": team.team_id, "b": ids[0], "t": T0}
        await _notify(db, common, "batch.ready", cause=f"{ids[0]}:again")

    verdict = await verify(probe, first, LABELS)

    assert verdict.counts.batches_bad_notifications == 1
    assert "notifications" in _kinds(verdict)


async def test_a_session_the_progress_shards_did_not_count_is_reported(
    team: TeamCtx, probe: Probe, sessions: async_sessionmaker[AsyncSession]
) -> None:
    first, ids = await _record(team)
    uncounted = "UPDATE batch_progress SET created = created - 1 WHERE batch_id = :b"
    await _damage(sessions, uncounted, b=ids[0])

    verdict = await verify(probe, first, LABELS)

    assert verdict.counts.batches_bad_progress == 1
    assert _kinds(verdict) == {"progress"}


async def test_instants_are_judged_on_the_schedules_own_grid(team: TeamCtx, probe: Probe) -> None:
    first, _ids = await _record(team, every=timedelta(seconds=2))

    assert (await verify(probe, first, LABELS, every=timedelta(seconds=2))).problems == []
    on_a_finer_grid = await verify(probe, first, LABELS, every=timedelta(seconds=1))
    assert on_a_finer_grid.counts.instants_missing == INSTANTS - 1
