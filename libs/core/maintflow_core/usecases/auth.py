"""API tokens: random, shown once, stored as SHA-256 hashes; lookup joins the user so a deleted
user's tokens stop working at once."""

from __future__ import annotations

import hashlib
import secrets
import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from maintflow_core.clock import Clock
from maintflow_core.models import ApiToken, User
from maintflow_core.usecases.principal import Principal

TOKEN_PREFIX = "mf_"


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def issue_token(db: AsyncSession, clock: Clock, user: User) -> str:
    token = new_token()
    db.add(
        ApiToken(
            id=uuid.uuid4(),
            user_id=user.id,
            team_id=user.team_id,
            token_hash=hash_token(token),
            created_at=clock.now(),
        )
    )
    await db.flush()
    return token


async def authenticate(db: AsyncSession, token: str) -> Principal | None:
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    row = (
        await db.execute(
            sa.select(User.id, User.team_id, User.role)
            .join(ApiToken, ApiToken.user_id == User.id)
            .where(ApiToken.token_hash == hash_token(token))
        )
    ).one_or_none()
    if row is None:
        return None
    return Principal(user_id=row.id, team_id=row.team_id, role=row.role)
