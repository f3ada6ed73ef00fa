"""Fixtures of the fuzz tests: a team whose admin token the fuzzer uses, and one real resource of
each kind, so that generated path ids sometimes name something that exists."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest

from maintflow_core.models import Notification
from tests.conftest import TeamCtx, new_flow, new_target_list


@dataclass(frozen=True)
class Seeded:
    token: str
    ids: dict[str, list[str]]


async def _json(t: TeamCtx, method: str, url: str, body: object) -> dict[str, object]:
    r = await t.req(method, url, json=body)
    assert r.status_code in (200, 201, 202), (url, r.status_code, r.text)
    return dict(r.json())


@pytest.fixture
async def seeded(team: TeamCtx) -> Seeded:
    """Two maintenance flows (one with a schedule, one free to get one), a procedural flow, a
    target list, a batch with sessions, a viewer and a notification, all of `team`."""
    scheduled = await new_flow(team, name="Patch RDS")
    free = await new_flow(team, name="Rotate certificates")
    procedural = await new_flow(team, "procedural", "Onboarding")
    tl = await new_target_list(team, 3)
    batch = await _json(
        team,
        "POST",
        "/v1/sessions/batch",
        {"flow_id": scheduled["id"], "target_list_id": tl["id"]},
    )
    schedule = await _json(
        team,
        "POST",
        "/v1/maintenance-schedules",
        {"flow_id": scheduled["id"], "cron_expression": "0 9 * * *", "target_list_id": tl["id"]},
    )
    viewer = await _json(
        team, "POST", "/v1/users", {"email": f"{uuid.uuid4().hex[:6]}@x.io", "role": "viewer"}
    )
    note_id = uuid.uuid4()
    async with team.sessions() as db, db.begin():
        db.add(
            Notification(
                id=note_id,
                team_id=team.team_id,
                event="batch.ready",
                title="Maintenance run ready",
                message="3 sessions created",
                batch_id=uuid.UUID(str(batch["batch_id"])),
                created_at=team.clock.now(),
            )
        )
    sessions = batch["sessions"]
    assert isinstance(sessions, list)
    return Seeded(
        token=team.token,
        ids={
            "flow_id": [str(scheduled["id"]), str(free["id"]), str(procedural["id"])],
            "list_id": [str(tl["id"])],
            "target_list_id": [str(tl["id"])],
            "batch_id": [str(batch["batch_id"])],
            "from_batch_id": [str(batch["batch_id"])],
            "session_id": [str(s["id"]) for s in sessions],
            "schedule_id": [str(schedule["id"])],
            "user_id": [str(viewer["id"])],
            "notification_id": [str(note_id)],
        },
    )
