"""The database itself keeps the related-record rules that the API answers with 409s, on
PostgreSQL and on SQLite (the embedded mode): a scheduled flow stays a maintenance flow and a
target list in use is not deleted, whoever writes; deleting a whole team still cascades."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from maintflow_core.clock import FakeClock
from maintflow_core.db import migrate
from maintflow_core.db.session import create_engine, create_sessionmaker
from maintflow_core.models import Flow, MaintenanceSchedule, TargetList, Team
from maintflow_core.schemas.flows import FlowCreate
from maintflow_core.schemas.schedules import ScheduleCreate
from maintflow_core.schemas.targets import TargetListCreate
from maintflow_core.settings import Settings
from maintflow_core.usecases import schedules
from maintflow_core.usecases.flows import create_flow
from maintflow_core.usecases.schedules import create_schedule
from maintflow_core.usecases.target_lists import create_target_list
from maintflow_core.usecases.teams import create_team
from tests.conftest import STEPS, TeamCtx, new_flow, new_target_list

Sessions = async_sessionmaker[AsyncSession]


@pytest.fixture(params=["postgresql", "sqlite"])
async def backend(
    request: pytest.FixtureRequest, tmp_path: Path, settings: Settings, sessions: Sessions
) -> AsyncIterator[tuple[Sessions, Settings]]:
    if request.param == "postgresql":
        yield sessions, settings
        return
    url = f"sqlite+aiosqlite:///{tmp_path / 'embedded.db'}"
    await migrate.upgrade_async(url)
    embedded = Settings(database_url=url, redis_url=None)
    engine = create_engine(embedded)  # foreign keys on, as in `maintflow dev`
    try:
        yield create_sessionmaker(engine), embedded
    finally:
        await engine.dispose()


@dataclass
class Seeded:
    team_id: uuid.UUID
    flow_id: uuid.UUID
    list_id: uuid.UUID
    schedule_id: uuid.UUID


async def _seed(backend: tuple[Sessions, Settings], clock: FakeClock) -> Seeded:
    sessions, settings = backend
    async with sessions() as db, db.begin():
        team = (await create_team(db, clock, f"t-{uuid.uuid4().hex[:6]}")).team
        flow = await create_flow(
            db,
            clock,
            team.id,
            FlowCreate.model_validate({"name": "f", "flow_type": "maintenance", "steps": STEPS}),
        )
        target_list = await create_target_list(
            db,
            clock,
            team.id,
            TargetListCreate.model_validate({"name": "l", "targets": [{"label": "a"}]}),
        )
        schedule = await create_schedule(
            db,
            clock,
            settings,
            team.id,
            ScheduleCreate(
                flow_id=flow.id, cron_expression="0 9 * * *", target_list_id=target_list.id
            ),
        )
    return Seeded(team.id, flow.id, target_list.id, schedule.id)


def _procedural(flow_id: uuid.UUID) -> sa.Update:
    return sa.update(Flow).where(Flow.id == flow_id).values(flow_type="procedural")


async def _refused(sessions: Sessions, statement: sa.Executable, params: Any = None) -> None:
    with pytest.raises(IntegrityError):
        async with sessions() as db, db.begin():
            await db.execute(statement, params)


async def test_the_database_refuses_to_change_a_scheduled_flows_type(
    backend: tuple[Sessions, Settings], clock: FakeClock
) -> None:
    seeded = await _seed(backend, clock)
    await _refused(backend[0], _procedural(seeded.flow_id))


async def test_the_database_refuses_a_schedule_of_a_flow_that_is_not_maintenance(
    backend: tuple[Sessions, Settings], clock: FakeClock
) -> None:
    seeded = await _seed(backend, clock)
    sessions, _settings = backend
    async with sessions() as db, db.begin():
        await db.execute(sa.delete(MaintenanceSchedule))
        await db.execute(_procedural(seeded.flow_id))
    schedule = {
        "id": uuid.uuid4(),
        "team_id": seeded.team_id,
        "flow_id": seeded.flow_id,
        "cron_expression": "0 9 * * *",
        "timezone": "UTC",
        "misfire_policy": "skip",
        "is_active": True,
        "created_at": clock.now(),
        "updated_at": clock.now(),
    }
    await _refused(sessions, sa.insert(MaintenanceSchedule), schedule)


async def test_the_database_refuses_to_delete_a_list_a_schedule_uses(
    backend: tuple[Sessions, Settings], clock: FakeClock
) -> None:
    seeded = await _seed(backend, clock)
    await _refused(backend[0], sa.delete(TargetList).where(TargetList.id == seeded.list_id))


async def test_deleting_a_team_still_deletes_its_lists_and_the_schedules_using_them(
    backend: tuple[Sessions, Settings], clock: FakeClock
) -> None:
    seeded = await _seed(backend, clock)
    sessions, _settings = backend
    async with sessions() as db, db.begin():
        await db.execute(sa.delete(Team).where(Team.id == seeded.team_id))
    async with sessions() as db:
        for model in (Flow, TargetList, MaintenanceSchedule):
            assert await db.scalar(sa.select(sa.func.count()).select_from(model)) == 0


async def test_a_flow_retyped_while_its_schedule_is_created_is_a_400_not_a_500(
    team: TeamCtx, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race the key closes: the flow is read as a maintenance flow, then another request
    changes its type before the schedule's insert."""
    flow = await new_flow(team)
    tl = await new_target_list(team, 1)
    read_list = schedules.get_target_list

    async def list_then_retype(db: AsyncSession, *args: Any, **kw: Any) -> Any:
        async with team.sessions() as other, other.begin():
            await other.execute(_procedural(uuid.UUID(flow["id"])))
        return await read_list(db, *args, **kw)

    monkeypatch.setattr(schedules, "get_target_list", list_then_retype)
    body = {"flow_id": flow["id"], "cron_expression": "0 9 * * *", "target_list_id": tl["id"]}
    r = await team.req("POST", "/v1/maintenance-schedules", json=body)
    assert r.status_code == 400 and "procedural" in r.json()["detail"], r.text
    async with team.sessions() as db:
        assert await db.scalar(sa.select(sa.func.count()).select_from(MaintenanceSchedule)) == 0
