"""Flows: create, read, edit, delete, count by type; always scoped to one team. A flow with a
maintenance schedule stays a maintenance flow (a foreign key says so; this names the schedule)."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from maintflow_core.clock import Clock
from maintflow_core.errors import BadRequest, Conflict
from maintflow_core.models import Flow, MaintenanceSchedule
from maintflow_core.models.flows import FLOW_TYPES
from maintflow_core.schemas.flows import FlowCreate, FlowUpdate
from maintflow_core.usecases.owned import delete_owned, get_owned
from maintflow_core.usecases.pagination import paginate


async def create_flow(db: AsyncSession, clock: Clock, team_id: uuid.UUID, data: FlowCreate) -> Flow:
    now = clock.now()
    flow = Flow(
        id=uuid.uuid4(),
        team_id=team_id,
        name=data.name,
        description=data.description,
        flow_type=data.flow_type,
        steps=[step.model_dump(exclude_none=True) for step in data.steps],
        intake_form=data.intake_form,
        created_at=now,
        updated_at=now,
    )
    db.add(flow)
    await db.flush()
    return flow


def require_maintenance(flow: Flow) -> None:
    if flow.flow_type != "maintenance":
        raise BadRequest(
            f"flow {flow.id} is a {flow.flow_type} flow; only maintenance flows run as batches"
        )


async def get_flow(
    db: AsyncSession, team_id: uuid.UUID, flow_id: uuid.UUID, *, for_update: bool = False
) -> Flow:
    return await get_owned(db, Flow, team_id, flow_id, "flow", for_update=for_update)


async def list_flows(
    db: AsyncSession,
    team_id: uuid.UUID,
    limit: int,
    cursor: str | None,
    flow_type: str | None = None,
    q: str | None = None,
) -> list[Flow]:
    query = sa.select(Flow).where(Flow.team_id == team_id)
    if flow_type:
        query = query.where(Flow.flow_type == flow_type)
    if q:
        pattern = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(
            sa.or_(
                Flow.name.ilike(pattern, escape="\\"),
                Flow.description.ilike(pattern, escape="\\"),
            )
        )
    return list((await db.scalars(paginate(query, Flow.created_at, Flow.id, limit, cursor))).all())


async def update_flow(
    db: AsyncSession, clock: Clock, team_id: uuid.UUID, flow_id: uuid.UUID, data: FlowUpdate
) -> Flow:
    flow = await get_flow(db, team_id, flow_id)
    changes = data.model_dump(exclude_unset=True)
    if "steps" in changes and data.steps is not None:
        changes["steps"] = [step.model_dump(exclude_none=True) for step in data.steps]
    try:
        # A savepoint around the change: when the schedule's key refuses the new type, the
        # session stays usable to read which schedule that is.
        async with db.begin_nested():
            for field, value in changes.items():
                if value is None and field in ("name", "flow_type", "steps"):
                    continue
                setattr(flow, field, value)
            flow.updated_at = clock.now()
            await db.flush()
    except IntegrityError as exc:
        schedule_id = await db.scalar(
            sa.select(MaintenanceSchedule.id).where(MaintenanceSchedule.flow_id == flow_id)
        )
        if schedule_id is None:
            raise
        raise Conflict(
            f"flow {flow_id} has maintenance schedule {schedule_id}: a scheduled flow stays a "
            "maintenance flow; delete the schedule before changing flow_type"
        ) from exc
    return flow


async def delete_flow(db: AsyncSession, team_id: uuid.UUID, flow_id: uuid.UUID) -> None:
    # Its schedule, batches and sessions go with it (ON DELETE CASCADE).
    await delete_owned(db, Flow, team_id, flow_id, "flow")


async def count_flows(db: AsyncSession, team_id: uuid.UUID) -> dict[str, int]:
    rows = await db.execute(
        sa.select(Flow.flow_type, sa.func.count())
        .where(Flow.team_id == team_id)
        .group_by(Flow.flow_type)
    )
    counts = dict.fromkeys(FLOW_TYPES, 0)
    for flow_type, n in rows:
        counts[flow_type] = n
    return {"total": sum(counts.values()), **counts}
