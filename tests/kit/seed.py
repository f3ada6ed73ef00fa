"""Resources made through the API, as a team's admin would: a flow, a target list, and one of
each kind of resource (for tests that need a real id of every kind)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from maintflow_core.db.store import PortableStore
from maintflow_core.models import Notification, SystemJob
from maintflow_core.settings import Settings
from maintflow_core.usecases.events import Event, raise_event
from maintflow_core.usecases.system_jobs import builtin_rows
from maintflow_core.usecases.webhooks import create_webhook

STEPS = [
    {"id": "s1", "type": "procedure_step", "title": "Drain the host"},
    {"id": "s2", "type": "procedure_step", "title": "Install the update"},
    {"id": "end", "type": "procedure_end", "title": "Done"},
]


class Clock(Protocol):
    def now(self) -> datetime: ...


class Team(Protocol):
    """What a seeder needs of a team (tests.conftest.TeamCtx is one)."""

    team_id: uuid.UUID
    sessions: async_sessionmaker[AsyncSession]
    clock: Clock

    async def req(
        self, method: str, url: str, token: str | None = None, **kw: Any
    ) -> httpx.Response: ...


def _created(url: str, r: httpx.Response) -> dict[str, Any]:
    assert r.status_code == 201, (url, r.status_code, r.text)
    return dict(r.json())


async def created(t: Team, url: str, body: Any) -> dict[str, Any]:
    """POST `url` with a JSON body as the team's admin, asserted 201 Created; returns the JSON
    answer."""
    return _created(url, await t.req("POST", url, json=body))


async def post_created(client: httpx.AsyncClient, url: str, body: Any) -> dict[str, Any]:
    """`created` on a client of a running API (authenticated by its default headers)."""
    return _created(url, await client.post(url, json=body))


async def new_flow(
    t: Team, flow_type: str = "maintenance", name: str = "Patch RDS"
) -> dict[str, Any]:
    return await created(t, "/v1/flows", {"name": name, "flow_type": flow_type, "steps": STEPS})


async def new_target_list(t: Team, n: int = 3, name: str = "RDS hosts") -> dict[str, Any]:
    targets = [{"label": f"rds-{i:03d}", "notes": f"host {i}"} for i in range(n)]
    return await created(t, "/v1/target-lists", {"name": name, "targets": targets})


@dataclass(frozen=True)
class OneOfEach:
    """Ids (as strings) of one resource of each kind, all of one team."""

    flow_id: str
    list_id: str
    batch_id: str
    session_ids: list[str]
    schedule_id: str
    user_id: str  # a viewer
    notification_id: str

    def by_parameter(self) -> dict[str, str]:
        """Path parameter name → id, as the API's routes name them."""
        return {
            "flow_id": self.flow_id,
            "list_id": self.list_id,
            "target_list_id": self.list_id,
            "batch_id": self.batch_id,
            "session_id": self.session_ids[0],
            "schedule_id": self.schedule_id,
            "user_id": self.user_id,
            "notification_id": self.notification_id,
        }


async def raised(
    t: Team,
    event: Event = Event.SYSTEM_JOB_FAILED,
    cause: uuid.UUID | None = None,
    *,
    data: dict[str, Any] | None = None,
    batch_id: uuid.UUID | None = None,
) -> Notification | None:
    """`event` raised for the team because of `cause` (a new one by default) in a transaction of
    its own, as the application raises it — but announced to nobody listening on PostgreSQL
    (through the portable store, which tells only listeners in its own process). The
    notification, or None if that cause had raised it already."""
    async with t.sessions() as db, db.begin():
        return await raise_event(
            db,
            PortableStore(Settings()),
            t.clock.now(),
            t.team_id,
            event,
            data or {},
            cause or uuid.uuid4(),
            title=f"{event.value} (test)",
            message="raised by a test",
            batch_id=batch_id,
        )


async def ready_notification(t: Team, batch_id: uuid.UUID, sessions: int = 0) -> uuid.UUID:
    """A "batch.ready" event of `batch_id` raised for the team as the workers raise it (any
    batch will do: tests that need a notification to read, mark or stream). Its id."""
    data = {"batch_id": str(batch_id), "sessions": sessions}
    note = await raised(t, Event.BATCH_READY, batch_id, data=data, batch_id=batch_id)
    assert note is not None, f"batch {batch_id} already had its batch.ready"
    return note.id


async def one_of_each(t: Team, targets: int = 3) -> OneOfEach:
    """A maintenance flow, a target list of `targets`, a batch launched from both (with its
    sessions), a schedule of the flow on the list, a viewer, and a "batch.ready" notification
    of the batch (raised directly: only the workers raise it for a fired batch)."""
    flow = await new_flow(t)
    tl = await new_target_list(t, targets)
    batch = await created(
        t, "/v1/sessions/batch", {"flow_id": flow["id"], "target_list_id": tl["id"]}
    )
    schedule = await created(
        t,
        "/v1/maintenance-schedules",
        {"flow_id": flow["id"], "cron_expression": "0 9 * * *", "target_list_id": tl["id"]},
    )
    viewer = await created(
        t, "/v1/users", {"email": f"{uuid.uuid4().hex[:6]}@example.com", "role": "viewer"}
    )
    note_id = await ready_notification(t, uuid.UUID(str(batch["batch_id"])), targets)
    return OneOfEach(
        flow_id=str(flow["id"]),
        list_id=str(tl["id"]),
        batch_id=str(batch["batch_id"]),
        session_ids=[str(s["id"]) for s in batch["sessions"]],
        schedule_id=str(schedule["id"]),
        user_id=str(viewer["id"]),
        notification_id=str(note_id),
    )


async def builtin_system_jobs(sessions: async_sessionmaker[AsyncSession], now: datetime) -> None:
    """The built-in system jobs as the migration seeds them, due at their next instant after
    `now` (in place of those the database had, if any: tests empty tables, or set the clock)."""
    async with sessions() as db, db.begin():
        await db.execute(sa.delete(SystemJob))
        await db.execute(sa.insert(SystemJob), builtin_rows(now))


async def local_webhook(t: Team, events: tuple[str, ...] = (Event.WINDOW_COMPLETED,)) -> str:
    """A webhook of the team on 127.0.0.1's discard port (registered as with private targets
    allowed), for tests that need a webhook's id. Nothing is ever sent to it: no worker runs
    where it is used. Its id."""
    async with t.sessions() as db, db.begin():
        hook = await create_webhook(
            db, t.clock, t.team_id, "http://127.0.0.1:9/hooks", events, None, allow_private=True
        )
    return str(hook.id)
