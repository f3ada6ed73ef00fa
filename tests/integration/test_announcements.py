"""Announcements of new notifications, on both stores (PostgreSQL LISTEN/NOTIFY; in-process on
SQLite): a committed event wakes the listeners with its team, a rolled-back one never does, and
each cause raises its event once; `ping` is never raised. Many events raised in one call are
numbered per team in the order given, once per cause, and offered to each webhook once."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from maintflow_core.clock import FakeClock
from maintflow_core.db.store import Store
from maintflow_core.models import WebhookDelivery
from maintflow_core.usecases.events import Event, EventToRaise, raise_event, raise_events
from maintflow_core.usecases.notifications import notifications_after
from maintflow_core.usecases.teams import create_team
from maintflow_core.usecases.webhooks import create_webhook
from tests.kit.poll import poll_until

URL = "http://127.0.0.1:9/hook"  # never called: these tests only read what is offered


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


async def test_events_raised_together_are_numbered_per_team_in_order_once_per_cause(
    store: Store, sessions: async_sessionmaker[AsyncSession], clock: FakeClock
) -> None:
    a, b = await _team(sessions, clock), await _team(sessions, clock)
    async with sessions() as db, db.begin():
        hooks = {
            name: (await create_webhook(db, clock, team, URL, events, None, allow_private=True)).id
            for name, team, events in (
                ("a_started", a, [Event.WINDOW_STARTED]),
                ("a_both", a, [Event.WINDOW_STARTED, Event.WINDOW_COMPLETED]),
                ("b_completed", b, [Event.WINDOW_COMPLETED]),
            )
        }
    w1, w2, w3 = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    batch = [  # the two teams interleaved, as a claim pass's windows come
        EventToRaise(b, Event.WINDOW_STARTED, {}, w3, "w3 started", "m"),
        EventToRaise(a, Event.WINDOW_STARTED, {}, w1, "w1 started", "m"),
        EventToRaise(a, Event.WINDOW_STARTED, {}, w2, "w2 started", "m"),
        EventToRaise(b, Event.WINDOW_COMPLETED, {}, w3, "w3 completed", "m"),
        EventToRaise(a, Event.WINDOW_COMPLETED, {}, w1, "w1 completed", "m"),
        EventToRaise(a, Event.WINDOW_STARTED, {}, w1, "given twice: raised once", "m"),
    ]
    async with sessions() as db, db.begin():
        written = await raise_events(db, store, clock.now(), batch)
    assert [note.title for note in written] == [raised.title for raised in batch[:5]]
    async with sessions() as db:
        of_a = await notifications_after(db, a, 0, 10)
        of_b = await notifications_after(db, b, 0, 10)
    assert [(n.seq, n.title) for n in of_a] == [
        (1, "w1 started"),
        (2, "w2 started"),
        (3, "w1 completed"),
    ]
    assert [(n.seq, n.title) for n in of_b] == [(1, "w3 started"), (2, "w3 completed")]

    async with sessions() as db, db.begin():  # the same causes again: nothing more
        assert await raise_events(db, store, clock.now(), batch) == []
    async with sessions() as db:
        assert len(await notifications_after(db, a, 0, 10)) == 3
        assert len(await notifications_after(db, b, 0, 10)) == 2
        offered = (
            await db.execute(sa.select(WebhookDelivery.webhook_id, WebhookDelivery.event_id))
        ).all()
    by_title = {n.id: n.title for n in [*of_a, *of_b]}
    assert sorted((hook, by_title[note]) for hook, note in offered) == sorted(
        [
            (hooks["a_started"], "w1 started"),
            (hooks["a_started"], "w2 started"),
            (hooks["a_both"], "w1 started"),
            (hooks["a_both"], "w2 started"),
            (hooks["a_both"], "w1 completed"),
            (hooks["b_completed"], "w3 completed"),
        ]
    )
