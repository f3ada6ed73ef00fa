"""Keyset pagination over (created_at, id), newest first. The cursor is opaque to clients."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar, TypeVarTuple

import sqlalchemy as sa
from sqlalchemy.orm import InstrumentedAttribute

from maintflow_core.errors import InvalidField

T = TypeVar("T")
Ts = TypeVarTuple("Ts")
MAX_LIMIT = 500


def encode_cursor(created_at: datetime, row_id: uuid.UUID) -> str:
    raw = json.dumps([created_at.isoformat(), str(row_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created, row_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        parsed = datetime.fromisoformat(created)
        if parsed.tzinfo is None:
            raise ValueError("naive")
        # In UTC here, so an instant the database cannot hold fails now rather than in the query.
        return parsed.astimezone(UTC), uuid.UUID(row_id)
    except (ValueError, TypeError, OverflowError, json.JSONDecodeError) as exc:
        raise InvalidField("cursor", "not a cursor returned by this API") from exc


def paginate(
    query: sa.Select[*Ts],
    created_col: InstrumentedAttribute[datetime],
    id_col: InstrumentedAttribute[uuid.UUID],
    limit: int,
    cursor: str | None,
) -> sa.Select[*Ts]:
    if cursor:
        created, row_id = decode_cursor(cursor)
        query = query.where(sa.tuple_(created_col, id_col) < sa.tuple_(created, row_id))
    return query.order_by(created_col.desc(), id_col.desc()).limit(limit + 1)


def keyset(
    query: sa.Select[*Ts],
    created_col: InstrumentedAttribute[datetime],
    id_col: InstrumentedAttribute[uuid.UUID],
    *,
    after: bool,
) -> sa.Select[*Ts]:
    """`paginate` with the cursor and the page size as bind parameters (see `keyset_params`), so
    that a list route can build its statement once per combination of filters and reuse it:
    SQLAlchemy then neither rebuilds nor recompiles it per request."""
    if after:
        query = query.where(
            sa.tuple_(created_col, id_col)
            < sa.tuple_(
                sa.bindparam("after_created", type_=created_col.type),
                sa.bindparam("after_id", type_=id_col.type),
            )
        )
    return query.order_by(created_col.desc(), id_col.desc()).limit(
        sa.bindparam("page_size", type_=sa.Integer)
    )


def keyset_params(limit: int, cursor: str | None) -> dict[str, Any]:
    """The bind parameters of a `keyset` statement: one row more than the page, to know whether
    there is a next page."""
    params: dict[str, Any] = {"page_size": limit + 1}
    if cursor:
        params["after_created"], params["after_id"] = decode_cursor(cursor)
    return params


def page_of(rows: Sequence[T], limit: int, key: Any) -> tuple[list[T], str | None]:
    """Split the `limit + 1` fetched rows into the page and the next cursor."""
    items = list(rows[:limit])
    if len(rows) <= limit or not items:
        return items, None
    created, row_id = key(items[-1])
    return items, encode_cursor(created, row_id)
