"""Idempotency-Key support for POSTs that launch work: the same key with the same request within
the TTL returns the first response and creates nothing new; with another request it is refused.
The stored response is written in the same transaction as the work, so a key is never remembered
for work that was rolled back."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from maintflow_core.clock import Clock
from maintflow_core.errors import Conflict, InvalidField
from maintflow_core.models import IdempotencyKey


def check_key(key: str) -> None:
    if not 1 <= len(key) <= 255 or any(ord(c) < 32 for c in key):
        raise InvalidField("Idempotency-Key", "must be 1 to 255 printable characters")


def request_hash(request: Any) -> str:
    """SHA-256 of a request's canonical JSON (keys sorted, no spaces): one request written two
    ways hashes the same."""
    text = json.dumps(request, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


async def recall(
    db: AsyncSession,
    clock: Clock,
    team_id: uuid.UUID,
    scope: str,
    key: str,
    ttl_s: int,
    request: str,
) -> tuple[int, dict[str, Any]] | None:
    """The stored (status, response) of `key`, None if it is new or expired; InvalidField if it
    was used for a request other than `request` (a request_hash)."""
    row = await db.scalar(
        sa.select(IdempotencyKey).where(
            IdempotencyKey.team_id == team_id,
            IdempotencyKey.scope == scope,
            IdempotencyKey.key == key,
        )
    )
    if row is None:
        return None
    if row.created_at < clock.now() - timedelta(seconds=ttl_s):
        await db.delete(row)
        await db.flush()
        return None
    if row.request_hash is not None and row.request_hash != request:
        raise InvalidField(
            "Idempotency-Key",
            "this key was used for another request (a different body); use a new key for a "
            "new request",
        )
    return row.status_code, row.response


async def remember(
    db: AsyncSession,
    clock: Clock,
    team_id: uuid.UUID,
    scope: str,
    key: str,
    request: str,
    status_code: int,
    response: dict[str, Any],
) -> None:
    db.add(
        IdempotencyKey(
            id=uuid.uuid4(),
            team_id=team_id,
            scope=scope,
            key=key,
            request_hash=request,
            status_code=status_code,
            response=response,
            created_at=clock.now(),
        )
    )
    try:
        await db.flush()
    except IntegrityError as exc:
        # A concurrent request with the same key committed first; the caller rolls back its
        # work (this flush failed, so the transaction must go) and answers with the stored one.
        raise Conflict("idempotency key in use by a concurrent request") from exc
