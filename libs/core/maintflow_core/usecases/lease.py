"""Leader election on a database row: a lease with an epoch that grows on every change of holder.
It only saves work; correctness comes from the claim transaction's unique index. The claim
transaction re-checks the lease (`fence`), so a leader that was paused past its lease stops."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from maintflow_core.models import SchedulerLease

LEASE_NAME = "scheduler"
L = SchedulerLease


@dataclass(frozen=True)
class Leadership:
    holder: str
    epoch: int
    expires_at: datetime


async def acquire_or_renew(
    db: AsyncSession, holder: str, now: datetime, lease: timedelta
) -> Leadership | None:
    """Take the lease if it is free or expired, or extend it if we hold it. Returns None when
    someone else holds a live lease. Runs in the caller's transaction."""
    expires = now + lease
    row = (
        await db.execute(
            sa.update(L)
            .where(L.name == LEASE_NAME, sa.or_(L.holder == holder, L.expires_at < now))
            .values(
                epoch=sa.case(
                    (sa.and_(L.holder == holder, L.expires_at >= now), L.epoch), else_=L.epoch + 1
                ),
                acquired_at=sa.case(
                    (sa.and_(L.holder == holder, L.expires_at >= now), L.acquired_at), else_=now
                ),
                holder=holder,
                expires_at=expires,
            )
            .returning(L.epoch, L.expires_at)
        )
    ).one_or_none()
    if row is not None:
        return Leadership(holder, row.epoch, row.expires_at)
    exists = await db.scalar(sa.select(sa.func.count()).where(L.name == LEASE_NAME))
    if exists:
        return None
    try:
        async with db.begin_nested():
            db.add(L(name=LEASE_NAME, holder=holder, epoch=1, acquired_at=now, expires_at=expires))
            await db.flush()
    except IntegrityError:
        return None  # another replica created it first
    return Leadership(holder, 1, expires)


async def fence(db: AsyncSession, leadership: Leadership, now: datetime) -> bool:
    """True if `leadership` is still the live lease; locks the lease row until commit, so a
    takeover waits for this claim transaction to finish."""
    row = (
        await db.execute(
            sa.update(L)
            .where(
                L.name == LEASE_NAME,
                L.holder == leadership.holder,
                L.epoch == leadership.epoch,
                L.expires_at >= now,
            )
            .values(last_tick_at=now)
            .returning(L.epoch)
        )
    ).one_or_none()
    return row is not None


async def release(db: AsyncSession, leadership: Leadership, now: datetime) -> None:
    """Give the lease up at once (graceful stop), so a standby takes over without waiting."""
    await db.execute(
        sa.update(L)
        .where(L.name == LEASE_NAME, L.holder == leadership.holder, L.epoch == leadership.epoch)
        .values(expires_at=now - timedelta(seconds=1))
    )


async def current(db: AsyncSession) -> SchedulerLease | None:
    return await db.scalar(sa.select(L).where(L.name == LEASE_NAME))
