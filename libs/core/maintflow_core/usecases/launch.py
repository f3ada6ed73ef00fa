"""Launching batches: by hand (every session inserted at once, in one round trip through the
store) and a schedule's run-now (a fire like a scheduled one, with the targets and steps of the
moment of the request, fanned out by the workers)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy.ext.asyncio import AsyncSession

from maintflow_core.clock import Clock
from maintflow_core.db.store import Store
from maintflow_core.errors import InvalidField
from maintflow_core.models import Batch
from maintflow_core.records import fire, session_rows
from maintflow_core.schemas.batches import BatchLaunch
from maintflow_core.schemas.targets import Target
from maintflow_core.usecases.batches import get_batch
from maintflow_core.usecases.flows import get_flow, require_maintenance
from maintflow_core.usecases.schedules import get_schedule
from maintflow_core.usecases.sessions import targets_of_batch
from maintflow_core.usecases.target_lists import get_target_list


@dataclass(frozen=True)
class Launched:
    batch_id: uuid.UUID
    sessions: list[dict[str, Any]]


_TARGETS = TypeAdapter(list[Target])


async def _resolve_targets(
    db: AsyncSession, team_id: uuid.UUID, data: BatchLaunch, now: datetime
) -> list[dict[str, Any]]:
    if data.targets is not None:
        dumped: list[dict[str, Any]] = _TARGETS.dump_python(data.targets)  # one call, ≤ 10,000
        return dumped
    if data.target_list_id is not None:
        target_list = await get_target_list(db, team_id, data.target_list_id)
        target_list.last_used_at = now
        return list(target_list.targets)
    assert data.from_batch_id is not None
    source = await get_batch(db, team_id, data.from_batch_id)
    targets = await targets_of_batch(db, source.id)
    if not targets:
        raise InvalidField("from_batch_id", "that batch has no sessions to copy targets from")
    return targets


async def launch_batch(
    db: AsyncSession, clock: Clock, store: Store, team_id: uuid.UUID, data: BatchLaunch
) -> Launched:
    now = clock.now()
    flow = await get_flow(db, team_id, data.flow_id)
    require_maintenance(flow)
    targets = await _resolve_targets(db, team_id, data, now)
    batch = Batch(
        id=uuid.uuid4(),
        team_id=team_id,
        flow_id=flow.id,
        trigger="manual",
        target_list_id=data.target_list_id,
        steps=None,
        intake=data.intake,
        target_count=len(targets),
        sessions_created=len(targets),
        created_at=now,
        ready_at=now,
    )
    db.add(batch)
    await db.flush()
    rows = session_rows(
        team_id=team_id,
        batch_id=batch.id,
        flow_id=flow.id,
        targets=targets,
        steps=flow.steps,
        intake=data.intake,
        now=now,
    )
    await store.insert_sessions(db, rows)
    return Launched(
        batch_id=batch.id,
        sessions=[
            {
                "id": r["id"],
                "batch_id": batch.id,
                "target_label": r["target_label"],
                "flow_id": flow.id,
                "status": "pending",
            }
            for r in rows
        ],
    )


async def run_now(
    db: AsyncSession, clock: Clock, store: Store, team_id: uuid.UUID, schedule_id: uuid.UUID
) -> uuid.UUID:
    """A batch for right now, fanned out by the same workers as a scheduled fire. Its targets
    and steps are those of the moment of the request (the list may be edited or deleted before
    the fan-out starts), as for a batch launched by hand."""
    schedule = await get_schedule(db, team_id, schedule_id)
    now = clock.now()
    flow = await get_flow(db, team_id, schedule.flow_id)
    targets: list[dict[str, Any]] = []
    if schedule.target_list_id is not None:
        target_list = await get_target_list(db, team_id, schedule.target_list_id)
        target_list.last_used_at = now
        targets = list(target_list.targets)
    new = fire(
        trigger="run_now",
        team_id=team_id,
        flow_id=schedule.flow_id,
        schedule_id=schedule.id,
        target_list_id=schedule.target_list_id,
        instant=now,
        now=now,
        snapshot=(targets, flow.steps),
    )
    await store.write_fires(db, [new])
    return new.id
