"""Reading and deleting one of a team's rows by id: the tenancy rule (a row of another team is
"not found", never "forbidden") written once for every aggregate."""

from __future__ import annotations

import uuid
from typing import Any, Protocol, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from maintflow_core.errors import NotFound


class TeamOwned(Protocol):
    id: InstrumentedAttribute[uuid.UUID]
    team_id: InstrumentedAttribute[uuid.UUID]


Row = TypeVar("Row")


async def get_owned(
    db: AsyncSession,
    model: type[Row],
    team_id: uuid.UUID,
    row_id: uuid.UUID,
    what: str,
    *,
    for_update: bool = False,
) -> Row:
    """The team's `model` row `row_id`, locked when `for_update`; NotFound("<what> not found")."""
    owned: Any = model
    query = sa.select(model).where(owned.id == row_id, owned.team_id == team_id)
    if for_update:
        query = query.with_for_update()
    row = await db.scalar(query)
    if row is None:
        raise NotFound(f"{what} not found")
    return row


async def delete_owned(
    db: AsyncSession, model: type[Any], team_id: uuid.UUID, row_id: uuid.UUID, what: str
) -> None:
    """Delete the team's `model` row `row_id`; NotFound("<what> not found") when there is none."""
    result = await db.execute(sa.delete(model).where(model.id == row_id, model.team_id == team_id))
    if result.rowcount == 0:  # type: ignore[attr-defined]
        raise NotFound(f"{what} not found")
