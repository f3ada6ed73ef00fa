"""Saved target lists, name unique per team. A list that a schedule uses cannot be deleted (a
foreign key says so; this names the schedules)."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from maintflow_core.clock import Clock
from maintflow_core.errors import Conflict, InvalidField, NotFound
from maintflow_core.models import Flow, MaintenanceSchedule, TargetList
from maintflow_core.schemas.targets import (
    MAX_TARGETS,
    TargetListCreate,
    TargetListEdit,
    TargetListReplace,
)
from maintflow_core.usecases.owned import get_owned
from maintflow_core.usecases.pagination import paginate


async def _flush_unique(db: AsyncSession, name: str) -> None:
    try:
        await db.flush()
    except IntegrityError as exc:
        raise Conflict(f"a target list named {name!r} already exists") from exc


async def create_target_list(
    db: AsyncSession, clock: Clock, team_id: uuid.UUID, data: TargetListCreate
) -> TargetList:
    now = clock.now()
    target_list = TargetList(
        id=uuid.uuid4(),
        team_id=team_id,
        name=data.name,
        description=data.description,
        targets=[t.model_dump(exclude_none=True) for t in data.targets],
        target_count=len(data.targets),
        created_at=now,
        updated_at=now,
    )
    db.add(target_list)
    await _flush_unique(db, data.name)
    return target_list


async def get_target_list(
    db: AsyncSession, team_id: uuid.UUID, list_id: uuid.UUID, *, for_update: bool = False
) -> TargetList:
    return await get_owned(db, TargetList, team_id, list_id, "target list", for_update=for_update)


async def list_target_lists(
    db: AsyncSession, team_id: uuid.UUID, limit: int, cursor: str | None
) -> list[TargetList]:
    query = paginate(
        sa.select(TargetList).where(TargetList.team_id == team_id),
        TargetList.created_at,
        TargetList.id,
        limit,
        cursor,
    )
    return list((await db.scalars(query)).all())


async def replace_target_list(
    db: AsyncSession,
    clock: Clock,
    team_id: uuid.UUID,
    list_id: uuid.UUID,
    data: TargetListReplace,
    *,
    keep_description: bool = False,
) -> TargetList:
    """The list's targets, name (unless `data` has none) and description (unless
    `keep_description`: a CSV body carries only targets) replaced."""
    target_list = await get_target_list(db, team_id, list_id)
    if data.name is not None:
        target_list.name = data.name
    if not keep_description or "description" in data.model_fields_set:
        target_list.description = data.description
    _set_targets(target_list, [t.model_dump(exclude_none=True) for t in data.targets], clock)
    await _flush_unique(db, target_list.name)
    return target_list


def _set_targets(target_list: TargetList, targets: list[dict[str, Any]], clock: Clock) -> None:
    target_list.targets = targets
    target_list.target_count = len(targets)
    target_list.updated_at = clock.now()


async def edit_target_list(
    db: AsyncSession,
    clock: Clock,
    team_id: uuid.UUID,
    list_id: uuid.UUID,
    data: TargetListEdit,
) -> TargetList:
    """Remove, then update, then add targets, the list locked for the change: labels to remove
    or update must be in the list (else InvalidField naming one), labels to add must not be
    (else Conflict naming one), and the result keeps 1..MAX_TARGETS targets."""
    target_list = await get_target_list(db, team_id, list_id, for_update=True)
    by_label = {t["label"]: dict(t) for t in target_list.targets}
    for field, labels in (
        ("remove", data.remove or []),
        ("update", [t.label for t in data.update or []]),
    ):
        missing = [label for label in labels if label not in by_label]
        if missing:
            raise InvalidField(field, f"no target labelled {missing[0]!r} in this list")
    for label in data.remove or []:
        del by_label[label]
    for change in data.update or []:
        by_label[change.label] = change.model_dump(exclude_none=True)
    for target in data.add or []:
        if target.label in by_label:
            raise Conflict(f"target {target.label!r} is already in this list")
        by_label[target.label] = target.model_dump(exclude_none=True)
    if not 1 <= len(by_label) <= MAX_TARGETS:
        raise InvalidField(
            "remove" if not by_label else "add",
            f"a target list holds 1 to {MAX_TARGETS} targets; this change leaves {len(by_label)}",
        )
    _set_targets(target_list, list(by_label.values()), clock)
    await db.flush()
    return target_list


async def delete_target_list(db: AsyncSession, team_id: uuid.UUID, list_id: uuid.UUID) -> None:
    try:
        # A savepoint: when the schedules' key refuses the delete, the session stays usable to
        # read which schedules those are.
        async with db.begin_nested():
            result = await db.execute(
                sa.delete(TargetList).where(TargetList.id == list_id, TargetList.team_id == team_id)
            )
    except IntegrityError as exc:
        users = await schedules_using(db, list_id)
        if not users:
            raise
        raise Conflict(
            f"target list {list_id} is used by {users}; detach it first "
            "(PATCH the schedule's target_list_id to null)"
        ) from exc
    if result.rowcount == 0:  # type: ignore[attr-defined]
        raise NotFound("target list not found")


_NAMED = 10


async def schedules_using(db: AsyncSession, list_id: uuid.UUID) -> str:
    """The schedules whose target list is `list_id`, named for a person to find them: the
    schedule id and its flow's name; the first 10, and how many more."""
    rows = (
        await db.execute(
            sa.select(MaintenanceSchedule.id, Flow.name)
            .join(Flow, Flow.id == MaintenanceSchedule.flow_id)
            .where(MaintenanceSchedule.target_list_id == list_id)
            .order_by(MaintenanceSchedule.created_at, MaintenanceSchedule.id)
            .limit(_NAMED + 1)
        )
    ).all()
    if not rows:
        return ""
    named = [f"maintenance schedule {sid} (flow {name!r})" for sid, name in rows[:_NAMED]]
    text = ", ".join(named)
    if len(rows) > _NAMED:
        total = await db.scalar(
            sa.select(sa.func.count()).where(MaintenanceSchedule.target_list_id == list_id)
        )
        text += f" and {(total or 0) - _NAMED} more"
    return text
