"""The live stream's guarantees below HTTP: the bound on open streams (503 with Retry-After), a
stream that falls behind is closed rather than waited for, and the order streams read in — per
team, a notification's `seq` is taken under a lock held until its transaction commits, so a
reader that has seen `seq = n` can never later find a row below n committed (the resume hazard
of ordering by a sequence drawn before commit)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from maintflow_api.app import create_app
from maintflow_api.deps import AppState
from maintflow_api.streams import QUEUE_SIZE, Message, Stream, StreamHub
from maintflow_core.clock import FakeClock
from maintflow_core.db.store import open_store
from maintflow_core.models import Notification
from maintflow_core.settings import Settings
from maintflow_core.usecases.events import Event, raise_event
from maintflow_core.usecases.notifications import notifications_after, stream_start
from tests.conftest import TeamCtx
from tests.kit.db import Probe, plain_pg_url
from tests.kit.poll import poll_until
from tests.kit.seed import raised


@pytest.fixture
async def small_app(settings: Settings, clock: FakeClock) -> AsyncIterator[FastAPI]:
    """A running app (lifespan entered) whose process allows two open streams."""
    # No safety-net poll within a test: what a stream gets, it gets from a wake-up or itself.
    update = {"sse_max_streams": 2, "sse_poll_s": 3600}
    app = create_app(settings.model_copy(update=update), clock)
    async with app.router.lifespan_context(app):
        yield app


def _hub(app: FastAPI) -> StreamHub:
    state: AppState = app.state.maintflow
    assert state.streams is not None
    return state.streams


async def test_beyond_the_bound_a_stream_is_refused_503_with_retry_after(
    small_app: FastAPI, team: TeamCtx
) -> None:
    hub = _hub(small_app)
    held = [hub.open_stream(team.team_id, 0), hub.open_stream(team.team_id, 0)]
    transport = httpx.ASGITransport(app=small_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        r = await client.get("/v1/notifications/stream", headers=team.headers)
        assert r.status_code == 503, r.text
        assert int(r.headers["Retry-After"]) > 0
        assert "too many" in r.json()["detail"]
        assert hub.open_streams == 2
        for stream in held:
            stream.close()
        assert hub.open_streams == 0
        assert (await client.get("/v1/notifications/stream")).status_code == 401


async def _unannounced(t: TeamCtx, n: int) -> list[str]:
    """`n` events of the team committed without a word to the app (see `raised`)."""
    notes = [await raised(t) for _ in range(n)]
    return [str(note.id) for note in notes if note is not None]


async def _take(stream: Stream, n: int) -> list[str]:
    messages = stream.messages()
    return [(await asyncio.wait_for(anext(messages), 10)).id for _ in range(n)]


async def test_a_stream_gets_what_went_before_it_joined_and_then_what_it_is_woken_for(
    small_app: FastAPI, team: TeamCtx
) -> None:
    hub = _hub(small_app)
    first_two = await _unannounced(team, 2)
    # The team's first stream: its new feed reads at once.
    first = hub.open_stream(team.team_id, 0)
    assert await _take(first, 2) == first_two
    # A second stream resuming from the start: the feed is past it, it reads those itself.
    second = hub.open_stream(team.team_id, 0)
    second_messages = second.messages()
    got = [(await asyncio.wait_for(anext(second_messages), 10)).id for _ in range(2)]
    assert got == first_two
    (third,) = await _unannounced(team, 1)
    hub.wake(team.team_id)  # what an announcement does
    assert (await asyncio.wait_for(anext(second_messages), 10)).id == third
    assert await _take(first, 1) == [third]
    first.close()
    second.close()


def _message(seq: int) -> Message:
    return Message(
        Notification(
            id=uuid.uuid4(),
            team_id=uuid.uuid4(),
            event="batch.ready",
            title="t",
            message="m",
            batch_id=None,
            data={},
            created_at=datetime(2026, 6, 1, tzinfo=UTC),
            read_at=None,
            seq=seq,
        )
    )


async def test_a_stream_that_falls_behind_is_closed_and_others_keep_theirs(
    small_app: FastAPI, team: TeamCtx
) -> None:
    hub = _hub(small_app)
    slow, keeping_up = hub.open_stream(team.team_id, 0), hub.open_stream(team.team_id, 0)
    for seq in range(1, QUEUE_SIZE + 2):
        message = _message(seq)
        slow.offer(message)
        keeping_up.offer(message)
        if seq % 100 == 0:  # the other client reads as it goes
            while not keeping_up.queue.empty():
                keeping_up.queue.get_nowait()
    assert slow.closed and not keeping_up.closed
    # Its reader ends (the client reconnects with Last-Event-ID) instead of blocking anything.
    assert [m async for m in slow.messages()] == []
    slow.close()
    keeping_up.close()
    assert hub.open_streams == 0


async def test_a_later_notification_of_the_team_cannot_commit_before_an_earlier_one(
    team: TeamCtx, sessions: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    """The first transaction raises an event and has not committed; the second one's event for
    the same team waits for it. A reader in between sees neither; after both commit it sees
    them in commit order, and a reader that resumed after the first misses nothing."""
    store = open_store(settings)
    probe = Probe(plain_pg_url(settings.database_url))

    async def raise_one(db: AsyncSession, cause: uuid.UUID) -> Notification | None:
        return await raise_event(
            db,
            store,
            team.clock.now(),
            team.team_id,
            Event.SYSTEM_JOB_FAILED,
            {},
            cause,
            title="t",
            message="m",
        )

    async def read_after(seq: int) -> list[int]:
        async with sessions() as db:
            return [n.seq for n in await notifications_after(db, team.team_id, seq, 100)]

    try:
        async with sessions() as first, sessions() as second:
            await first.begin()
            earlier = await raise_one(first, uuid.uuid4())
            await second.begin()
            later_task = asyncio.create_task(raise_one(second, uuid.uuid4()))
            await poll_until(
                lambda: probe.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock' AND query LIKE 'UPDATE teams%'"
                ),
                10,
                "the second event waiting for the first transaction",
            )
            assert await read_after(0) == []
            async with sessions() as db:
                assert await stream_start(db, team.team_id, None) == 0
            await first.commit()
            later = await later_task
            assert earlier is not None and later is not None
            assert await read_after(0) == [earlier.seq]  # seen: earlier; later not committed
            await second.commit()
            assert later.seq > earlier.seq
            assert await read_after(earlier.seq) == [later.seq]
            async with sessions() as db:
                assert await stream_start(db, team.team_id, str(earlier.id)) == earlier.seq
                # Not a notification of this team's (or not one at all): from now on.
                assert await stream_start(db, team.team_id, str(uuid.uuid4())) == later.seq
                assert await stream_start(db, team.team_id, "not-an-id") == later.seq
    finally:
        await probe.close()
