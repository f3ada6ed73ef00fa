"""Teams and users: bootstrap a team with its first admin, add and remove users."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from maintflow_core.clock import Clock
from maintflow_core.errors import Conflict, NotFound
from maintflow_core.models import Team, User
from maintflow_core.usecases.auth import issue_token
from maintflow_core.usecases.pagination import paginate


@dataclass(frozen=True)
class NewTeam:
    team: Team
    admin: User
    token: str


async def create_team(
    db: AsyncSession, clock: Clock, name: str, admin_email: str | None = None
) -> NewTeam:
    now = clock.now()
    team = Team(id=uuid.uuid4(), name=name, created_at=now)
    db.add(team)
    await db.flush()
    admin = User(
        id=uuid.uuid4(),
        team_id=team.id,
        email=admin_email or f"admin@{team.id.hex[:12]}.maintflow.local",
        role="admin",
        created_at=now,
    )
    db.add(admin)
    await db.flush()
    token = await issue_token(db, clock, admin)
    return NewTeam(team=team, admin=admin, token=token)


async def create_user(
    db: AsyncSession, clock: Clock, team_id: uuid.UUID, email: str, role: str
) -> tuple[User, str]:
    user = User(id=uuid.uuid4(), team_id=team_id, email=email, role=role, created_at=clock.now())
    db.add(user)
    try:
        await db.flush()
    except IntegrityError as exc:
        raise Conflict(f"a user with email {email!r} already exists in this team") from exc
    token = await issue_token(db, clock, user)
    return user, token


async def list_users(
    db: AsyncSession, team_id: uuid.UUID, limit: int, cursor: str | None
) -> list[User]:
    query = paginate(
        sa.select(User).where(User.team_id == team_id), User.created_at, User.id, limit, cursor
    )
    return list((await db.scalars(query)).all())


async def get_user(db: AsyncSession, team_id: uuid.UUID, user_id: uuid.UUID) -> User:
    user = await db.scalar(sa.select(User).where(User.id == user_id, User.team_id == team_id))
    if user is None:
        raise NotFound("user not found")
    return user


async def delete_user(db: AsyncSession, team_id: uuid.UUID, user_id: uuid.UUID) -> None:
    # Tokens go with the user (ON DELETE CASCADE), so they stop working with this commit.
    result = await db.execute(sa.delete(User).where(User.id == user_id, User.team_id == team_id))
    if result.rowcount == 0:  # type: ignore[attr-defined]
        raise NotFound("user not found")
