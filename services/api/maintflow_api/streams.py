"""The live notification streams of one API process (`GET /v1/notifications/stream`).

Every stream reads its team's notifications from the table, in `seq` order (per team, commit
order: see usecases/events), after the last one it sent. Announcements (the store's
`notification_wakeups`: PostgreSQL LISTEN on one connection of this process; in-process on
SQLite) only say *when* to read, so a lost one delays a stream by at most `sse_poll_s`, never
loses a notification.

A team with open streams has one `_Feed`: each wake-up makes it read the team's new rows once
and hand each row to every stream of the team — one query per team, not per client. Each
stream has a bounded queue; a stream that falls behind (a slow or dead client) is closed, never
waited for, and its client resumes with `Last-Event-ID`. A stream that joins a feed after rows
it should send have gone by (a resume) first reads those itself, then takes the feed's rows,
skipping any it already sent; a new stream reads nothing of its own."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sse_starlette import ServerSentEvent

from maintflow_core import metrics
from maintflow_core.db.store import Store
from maintflow_core.models import Notification
from maintflow_core.schemas.notifications import NotificationOut
from maintflow_core.usecases import notifications

log = logging.getLogger(__name__)

# Rows read per query (a resume reads page after page).
PAGE = 500
# Messages one stream may have waiting for its client before it is closed as too slow.
QUEUE_SIZE = 1000


class StreamsFull(Exception):
    """The process already has `sse_max_streams` open."""


class Message:
    """One notification as every stream of its team sends it: framed once (`event:`, `id:`,
    `data:` the notification as JSON), not once per client."""

    __slots__ = ("frame", "id", "seq")

    def __init__(self, note: Notification) -> None:
        self.seq = note.seq
        self.id = str(note.id)
        self.frame = ServerSentEvent(
            data=NotificationOut.model_validate(note).model_dump_json(),
            event=note.event,
            id=self.id,
        ).encode()


# What a stream's queue holds: a message, or None: closed (too slow, or the process stops).
_Item = Message | None


class Stream:
    """One client's stream: what it has sent (`sent`: a seq) and its queue of the feed's
    rows."""

    def __init__(self, hub: StreamHub, team_id: uuid.UUID, after: int) -> None:
        self.hub = hub
        self.team_id = team_id
        self.sent = after
        self.queue: asyncio.Queue[_Item] = asyncio.Queue(QUEUE_SIZE)
        self.closed = False
        # Whether rows after `after` may already have gone past in its feed (set on joining).
        self.behind = False

    def offer(self, message: Message) -> None:
        if self.closed or message.seq <= self.sent:
            return
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            log.info("notification stream of team %s fell behind; closing it", self.team_id)
            self.end()

    def end(self) -> None:
        """Close it: its client reconnects and resumes from what it received."""
        if not self.closed:
            self.closed = True
            with contextlib.suppress(asyncio.QueueFull):
                self.queue.put_nowait(None)
            # A full queue ends at its next get anyway: `messages` checks `closed`.

    async def messages(self) -> AsyncIterator[Message]:
        """Everything after `after`, then every new one, in order, each once."""
        while self.behind and not self.closed:  # what its feed handed out before it joined
            async with self.hub.open_db() as db:
                rows = await notifications.notifications_after(db, self.team_id, self.sent, PAGE)
            for note in rows:
                message = Message(note)
                self.sent = message.seq
                yield message
            if len(rows) < PAGE:
                break
        while not self.closed:
            item = await self.queue.get()
            if item is None or self.closed:
                return
            if item.seq > self.sent:
                self.sent = item.seq
                yield item

    def close(self) -> None:
        self.hub._leave(self)


class _Feed:
    """A team's new notifications, read once per wake-up for all its streams."""

    def __init__(self, hub: StreamHub, team_id: uuid.UUID, mark: int) -> None:
        self.hub = hub
        self.team_id = team_id
        self.mark = mark  # the last seq handed to the streams
        self.streams: set[Stream] = set()
        self._again = False
        self._reading: asyncio.Task[None] | None = None

    def wake(self) -> None:
        self._again = True
        if self._reading is None or self._reading.done():
            self._reading = asyncio.create_task(self._read(), name=f"feed-{self.team_id}")

    async def _read(self) -> None:
        while self._again and self.streams:
            self._again = False
            try:
                async with self.hub.open_db() as db:
                    rows = await notifications.notifications_after(
                        db, self.team_id, self.mark, PAGE
                    )
            except Exception:
                # The database is unreachable: the next wake-up or poll tries again.
                log.warning("reading team %s's notifications failed", self.team_id, exc_info=True)
                return
            for note in rows:
                message = Message(note)
                self.mark = message.seq
                for stream in list(self.streams):
                    stream.offer(message)
            if len(rows) == PAGE:
                self._again = True


class StreamHub:
    """The process's streams: at most `max_streams` open, one feed per team with streams."""

    def __init__(
        self,
        open_db: async_sessionmaker[AsyncSession],
        store: Store,
        max_streams: int,
        poll_s: float,
    ) -> None:
        self.open_db = open_db
        self.store = store
        self.max_streams = max_streams
        self.poll_s = poll_s
        self._feeds: dict[uuid.UUID, _Feed] = {}
        self._open = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stack = AsyncExitStack()

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self._stack.enter_async_context(self.store.notification_wakeups(self.wake))
        poller = asyncio.create_task(self._poll(), name="notification-stream-poll")
        self._stack.push_async_callback(_cancelled, poller)

    async def stop(self) -> None:
        for feed in list(self._feeds.values()):
            for stream in list(feed.streams):
                stream.end()
        await self._stack.aclose()

    def wake(self, team_id: uuid.UUID | None) -> None:
        """Announced: `team_id` has new notifications (None: maybe every team). Any thread."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._woken, team_id)

    def _woken(self, team_id: uuid.UUID | None) -> None:
        if team_id is None:
            feeds = list(self._feeds.values())
        else:
            feeds = [self._feeds[team_id]] if team_id in self._feeds else []
        for feed in feeds:
            feed.wake()

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.poll_s)
            self._woken(None)

    def open_stream(self, team_id: uuid.UUID, after: int) -> Stream:
        """A new stream of the team's notifications after `after`; `close()` it when done.
        StreamsFull when the process has `max_streams` open."""
        if self._open >= self.max_streams:
            raise StreamsFull
        stream = Stream(self, team_id, after)
        if team_id not in self._feeds:
            # A new feed reads at once: what was announced before it existed was heard by none.
            self._feeds[team_id] = _Feed(self, team_id, after)
            self._feeds[team_id].wake()
        feed = self._feeds[team_id]
        # Every row after the feed's mark reaches this stream through the feed; rows between
        # `after` and the mark went by before it joined and are read by the stream itself.
        stream.behind = after < feed.mark
        feed.streams.add(stream)
        self._opened(stream)
        return stream

    def _leave(self, stream: Stream) -> None:
        feed = self._feeds.get(stream.team_id)
        if feed is None or stream not in feed.streams:
            return  # closed already
        stream.end()
        feed.streams.discard(stream)
        if not feed.streams:
            del self._feeds[stream.team_id]
        self._closed(stream)

    # The one place a stream opens and closes (a gauge of open streams belongs here).
    def _opened(self, stream: Stream) -> None:
        self._open += 1
        metrics.SSE_STREAMS.inc()

    def _closed(self, stream: Stream) -> None:
        self._open -= 1
        metrics.SSE_STREAMS.dec()

    @property
    def open_streams(self) -> int:
        return self._open


async def _cancelled(task: asyncio.Task[Any]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
