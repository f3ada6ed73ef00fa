"""Writing many session rows in one round trip: COPY on PostgreSQL, executemany on SQLite."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from maintflow_core.models import Session

SESSION_COLUMNS = (
    "id",
    "team_id",
    "batch_id",
    "flow_id",
    "target_label",
    "target_notes",
    "status",
    "steps",
    "intake",
    "created_at",
    "updated_at",
)


def session_rows(
    *,
    team_id: uuid.UUID,
    batch_id: uuid.UUID,
    flow_id: uuid.UUID,
    targets: Sequence[dict[str, Any]],
    steps: list[dict[str, Any]],
    intake: dict[str, Any] | None,
    now: datetime,
) -> list[dict[str, Any]]:
    return [
        {
            "id": uuid.uuid4(),
            "team_id": team_id,
            "batch_id": batch_id,
            "flow_id": flow_id,
            "target_label": target["label"],
            "target_notes": target.get("notes"),
            "status": "pending",
            "steps": steps,
            "intake": intake,
            "created_at": now,
            "updated_at": now,
        }
        for target in targets
    ]


async def insert_sessions(db: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Insert new sessions inside the caller's transaction (which must already have begun)."""
    if not rows:
        return
    connection = await db.connection()
    if connection.dialect.name != "postgresql":
        await db.execute(sa.insert(Session), rows)
        return
    raw = await connection.get_raw_connection()
    driver: Any = raw.driver_connection
    # The steps snapshot is the same for every row: encode it once.
    encoded: dict[int, str | None] = {}

    def as_json(value: Any) -> str | None:
        if value is None:
            return None
        key = id(value)
        if key not in encoded:
            encoded[key] = json.dumps(value)
        return encoded[key]

    records = [
        tuple(
            as_json(row[col]) if col in ("steps", "intake") else row[col] for col in SESSION_COLUMNS
        )
        for row in rows
    ]
    await driver.copy_records_to_table("sessions", records=records, columns=SESSION_COLUMNS)
