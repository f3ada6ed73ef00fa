"""Maintenance windows on a fake clock, on both databases: the API's rules (span, roles,
tenancy, illegal moves) and the leader's transitions — once each, in order, with their events,
under overlapping claimers, a failover and a downtime spanning the whole window."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from maintflow_core.clock import FakeClock
from maintflow_core.db.store import Store
from maintflow_core.due.windows import WindowTransitions
from maintflow_core.models import Notification
from maintflow_core.settings import Settings
from tests.conftest import TeamCtx
from tests.integration.helpers import scheduler

Sessions = async_sessionmaker[AsyncSession]
START = datetime(2026, 6, 1, 13, 0, tzinfo=UTC)
END = datetime(2026, 6, 1, 14, 0, tzinfo=UTC)


async def new_window(t: TeamCtx, start: datetime = START, end: datetime = END) -> dict[str, Any]:
    r = await t.req(
        "POST",
        "/v1/maintenance-windows",
        json={
            "title": "Core switch upgrade",
            "start_at": start.isoformat(),
            "end_at": end.isoformat(),
            "targets": ["sw-1", "sw-2"],
        },
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


async def window(t: TeamCtx, wid: str) -> dict[str, Any]:
    return dict((await t.req("GET", f"/v1/maintenance-windows/{wid}")).json())


async def history(t: TeamCtx, wid: str) -> list[tuple[str | None, str | None, str, bool]]:
    """Oldest first: (old, new, message, automatic)."""
    r = await t.req("GET", f"/v1/maintenance-windows/{wid}/updates")
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    return [(u["old_status"], u["new_status"], u["message"], u["automatic"]) for u in items][::-1]


async def events(t: TeamCtx) -> list[str]:
    async with t.sessions() as db:
        rows = await db.scalars(
            sa.select(Notification.event)
            .where(Notification.team_id == t.team_id)
            .order_by(Notification.seq)
        )
        return list(rows)


STARTED = ("scheduled", "in_progress", "Maintenance started automatically", True)
COMPLETED = ("in_progress", "completed", "Maintenance completed automatically", True)


async def test_a_window_starts_and_completes_on_time_once_each(
    team: TeamCtx, settings: Settings, sessions: Sessions, clock: FakeClock
) -> None:
    w = await new_window(team)
    assert w["status"] == "scheduled" and w["next_transition_at"] == "2026-06-01T13:00:00Z"
    svc = scheduler(settings, sessions, clock)
    assert await svc.renew()
    await svc.tick()
    assert (await window(team, w["id"]))["status"] == "scheduled"
    clock.set(START + timedelta(seconds=0.3))
    assert await svc.renew()
    assert len((await svc.tick()).fired) == 1
    await svc.tick()
    assert (await window(team, w["id"]))["status"] == "in_progress"
    clock.set(END + timedelta(seconds=0.3))
    assert await svc.renew()
    await svc.tick()
    await svc.tick()
    got = await window(team, w["id"])
    assert got["status"] == "completed" and got["next_transition_at"] is None
    assert await history(team, w["id"]) == [STARTED, COMPLETED]
    assert await events(team) == ["window.started", "window.completed"]


async def test_overlapping_claimers_move_each_window_once(
    team: TeamCtx, settings: Settings, sessions: Sessions, clock: FakeClock, store: Store
) -> None:
    ids = [(await new_window(team))["id"] for _ in range(12)]
    now = START + timedelta(seconds=1)

    async def claim() -> list[uuid.UUID]:
        async with sessions() as db, db.begin():
            return (await WindowTransitions(store, settings).claim(db, now, limit=5)).fired

    results = await asyncio.gather(*(claim() for _ in range(8)), return_exceptions=True)
    # SQLite has one writer: a pass that lost the race fails whole; the next tick retries.
    fired = [e for r in results if isinstance(r, list) for e in r]
    for _ in range(4):
        fired += await claim()
    assert len(fired) == len(set(fired)) == 12
    for wid in ids:
        assert await history(team, wid) == [STARTED]
    assert await events(team) == ["window.started"] * 12


async def test_a_failover_between_start_and_end_moves_each_once(
    team: TeamCtx, settings: Settings, sessions: Sessions, clock: FakeClock
) -> None:
    w = await new_window(team)
    old = scheduler(settings, sessions, clock, "old")
    new = scheduler(settings, sessions, clock, "new")
    clock.set(START + timedelta(seconds=0.5))
    assert await old.renew()
    assert not await new.renew()
    await old.tick()
    clock.set(END + timedelta(seconds=0.5))  # old pauses past its lease; new takes over
    assert await new.renew()
    assert old.leadership is not None
    old.leadership = type(old.leadership)(
        old.leadership.holder, old.leadership.epoch, clock.now() + timedelta(seconds=5)
    )  # it still believes it leads
    assert (await old.tick()).fired == []
    await new.tick()
    await new.tick()
    assert await history(team, w["id"]) == [STARTED, COMPLETED]
    assert await events(team) == ["window.started", "window.completed"]


async def test_a_window_that_passed_during_downtime_ends_completed_with_both_entries(
    team: TeamCtx, settings: Settings, sessions: Sessions, clock: FakeClock
) -> None:
    w = await new_window(team)
    clock.set(END + timedelta(hours=5))
    svc = scheduler(settings, sessions, clock)
    assert await svc.renew()
    result = await svc.tick()
    assert len(result.fired) == 2 and result.missed == 2
    assert (await window(team, w["id"]))["status"] == "completed"
    assert await history(team, w["id"]) == [STARTED, COMPLETED]
    assert await events(team) == ["window.started", "window.completed"]


async def test_an_edit_moving_the_start_earlier_is_used_by_the_next_tick(
    team: TeamCtx, settings: Settings, sessions: Sessions, clock: FakeClock
) -> None:
    w = await new_window(team)
    svc = scheduler(settings, sessions, clock)
    assert await svc.renew()
    await svc.tick()
    earlier = clock.now() + timedelta(seconds=1)
    r = await team.req(
        "PATCH", f"/v1/maintenance-windows/{w['id']}", json={"start_at": earlier.isoformat()}
    )
    assert r.status_code == 200 and r.json()["next_transition_at"] == "2026-06-01T12:00:01Z"
    clock.advance(1.2)
    await svc.tick()
    assert (await window(team, w["id"]))["status"] == "in_progress"


async def test_a_window_cancelled_before_its_start_never_starts(
    team: TeamCtx, settings: Settings, sessions: Sessions, clock: FakeClock
) -> None:
    w = await new_window(team)
    r = await team.req("POST", f"/v1/maintenance-windows/{w['id']}/cancel")
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    clock.set(END + timedelta(minutes=1))
    svc = scheduler(settings, sessions, clock)
    assert await svc.renew()
    assert (await svc.tick()).fired == []
    assert (await window(team, w["id"]))["status"] == "cancelled"
    assert await history(team, w["id"]) == [
        ("scheduled", "cancelled", "Maintenance cancelled", False)
    ]
    assert (await team.req("POST", f"/v1/maintenance-windows/{w['id']}/cancel")).status_code == 409
    assert await events(team) == []


async def test_updates_and_illegal_status_changes(team: TeamCtx) -> None:
    w = await new_window(team)
    url = f"/v1/maintenance-windows/{w['id']}/updates"
    r = await team.req("POST", url, json={"message": "Vendor confirmed the slot"})
    assert r.status_code == 201 and r.json()["new_status"] is None
    assert r.json()["author_id"] == str(team.user_id)
    r = await team.req("POST", url, json={"message": "Done early", "status_change": "completed"})
    assert r.status_code == 201, r.text
    assert (r.json()["old_status"], r.json()["new_status"]) == ("scheduled", "completed")
    for status in ("scheduled", "in_progress", "cancelled", "completed"):
        r = await team.req("POST", url, json={"message": "again", "status_change": status})
        assert r.status_code == 409, (status, r.text)
    assert (await team.req("POST", f"/v1/maintenance-windows/{w['id']}/cancel")).status_code == 409
    r = await team.req(
        "PATCH", f"/v1/maintenance-windows/{w['id']}", json={"end_at": "2026-07-01T00:00:00Z"}
    )
    assert r.status_code == 409
    items = (await team.req("GET", url, params={"limit": 1})).json()
    assert items["items"][0]["message"] == "Done early" and items["next_cursor"] == "2"
    older = (await team.req("GET", url, params={"cursor": items["next_cursor"]})).json()
    assert [u["message"] for u in older["items"]] == ["Vendor confirmed the slot"]
    assert await events(team) == ["window.completed"]


async def test_the_span_rules_and_the_filters(team: TeamCtx, other_team: TeamCtx) -> None:
    r = await team.req(
        "POST",
        "/v1/maintenance-windows",
        json={"title": "x", "start_at": END.isoformat(), "end_at": START.isoformat()},
    )
    assert r.status_code == 422 and "end_at" in r.text
    r = await team.req(
        "POST",
        "/v1/maintenance-windows",
        json={"title": "x", "start_at": "2026-06-01T13:00:00", "end_at": END.isoformat()},
    )
    assert r.status_code == 422 and "start_at" in r.text
    w = await new_window(team)
    late = await new_window(team, END, END + timedelta(hours=1))
    r = await team.req(
        "PATCH", f"/v1/maintenance-windows/{w['id']}", json={"end_at": START.isoformat()}
    )
    assert r.status_code == 422 and "end_at" in r.text
    active = await team.req(
        "GET", "/v1/maintenance-windows", params={"active_at": "2026-06-01T13:30:00+00:00"}
    )
    assert [x["id"] for x in active.json()["items"]] == [w["id"]]
    listed = await team.req("GET", "/v1/maintenance-windows", params={"status": "scheduled"})
    assert [x["id"] for x in listed.json()["items"]] == [late["id"], w["id"]]
    bad = await team.req("GET", "/v1/maintenance-windows", params={"active_at": "yesterday"})
    assert bad.status_code == 422
    assert (await other_team.req("GET", f"/v1/maintenance-windows/{w['id']}")).status_code == 404
    viewer = await team.user("viewer")
    assert (await team.req("GET", "/v1/maintenance-windows", token=viewer)).status_code == 200
    r = await team.req("POST", f"/v1/maintenance-windows/{w['id']}/cancel", token=viewer)
    assert r.status_code == 403
    engineer = await team.user("engineer")
    r = await team.req("POST", f"/v1/maintenance-windows/{w['id']}/cancel", token=engineer)
    assert r.status_code == 200
