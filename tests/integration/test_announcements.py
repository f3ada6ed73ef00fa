"""Announcements of new notifications, on both stores (PostgreSQL LISTEN/NOTIFY; in-process on
SQLite): a committed event wakes the listeners with its team, a rolled-back one never does, and
each cause raises its event once; `ping` is never raised."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from maintflow_core.clock import FakeClock
from maintflow_core.db.store import Store
from maintflow_core.usecases.events import Event, raise_event
from maintflow_core.usecases.notifications import notifications_after
from maintflow_core.usecases.teams import create_team
from tests.kit.poll import poll_until


async def _team(sessions: async_sessionmaker[AsyncSession], clock: FakeClock) -> uuid.UUID:
    async with sessions() as db, db.begin():
        return (await create_team(db, clock, f"team {uuid.uuid4().hex[:6]}")).team.id


async def _raise(db: AsyncSession, store: Store, clock: FakeClock, team_id: uuid.UUID) -> bool:
    note = await raise_event(
        db,
        store,
        clock.now(),
        team_id,
        Event.SYSTEM_JOB_FAILED,
        {},
        uuid.uuid4(),
        title="Retention cleanup failed",
        message="m",
    )
    return note is not None


async def test_a_committed_event_wakes_the_listeners_and_a_rolled_back_one_does_not(
    store: Store, sessions: async_sessionmaker[AsyncSession], clock: FakeClock
) -> None:
    rolled_back, committed = await _team(sessions, clock), await _team(sessions, clock)
    woken: list[uuid.UUID | None] = []
    async with store.notification_wakeups(woken.append):
        await poll_until(lambda: woken == [None] or store.name == "portable", 10, "listening")
        async with sessions() as db:
            await db.begin()
            assert await _raise(db, store, clock, rolled_back)
            await db.rollback()
        async with sessions() as db, db.begin():
            assert await _raise(db, store, clock, committed)
        await poll_until(lambda: committed in woken, 10, "woken for the committed event")
    assert rolled_back not in woken
    async with sessions() as db:
        assert await notifications_after(db, rolled_back, 0, 10) == []
        (note,) = await notifications_after(db, committed, 0, 10)
    assert note.seq == 1  # each team counts its own


async def test_each_cause_raises_its_event_once_numbered_in_order(
    store: Store, sessions: async_sessionmaker[AsyncSession], clock: FakeClock
) -> None:
    team_id = await _team(sessions, clock)
    cause = uuid.uuid4()
    raised = []
    for event_cause in (cause, cause, uuid.uuid4()):
        async with sessions() as db, db.begin():
            note = await raise_event(
                db,
                store,
                clock.now(),
                team_id,
                Event.BATCH_COMPLETED,
                {},
                event_cause,
                title="t",
                message="m",
            )
            raised.append(note is not None)
    assert raised == [True, False, True]
    async with sessions() as db:
        notes = await notifications_after(db, team_id, 0, 10)
    assert notes[0].dedupe_key == f"batch.completed:{cause}"
    assert len(notes) == 2 and notes[0].seq < notes[1].seq
    with pytest.raises(ValueError, match="ping"):  # webhooks only: never raised
        async with sessions() as db:
            await raise_event(
                db, store, clock.now(), team_id, Event.PING, {}, cause, title="", message=""
            )
