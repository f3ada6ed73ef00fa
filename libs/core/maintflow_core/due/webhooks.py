"""Webhook deliveries as a due-work source: a delivery is due when its retry's time has come, or
when its message or its worker is presumed lost (`usecases.webhook_delivery`). The leader hands
each due delivery to the workers again, through the outbox, in the claim transaction."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from maintflow_core.db.store import Store
from maintflow_core.due.base import ClaimResult
from maintflow_core.settings import Settings
from maintflow_core.usecases import webhook_delivery


class WebhookDeliveries:
    """The due-work source of webhook retries and re-drives (see `DueSource`)."""

    name = "webhooks"
    event = "webhook_deliveries_driven"
    fired_as = "deliveries"

    def __init__(self, store: Store, settings: Settings) -> None:
        self.policy = webhook_delivery.Policy.of(settings)

    async def claim(self, db: AsyncSession, now: datetime, limit: int) -> ClaimResult:
        driven = await webhook_delivery.drive_due(db, now, limit, self.policy)
        return ClaimResult(claimed=driven.locked, fired=driven.queued)

    async def backlog(self, db: AsyncSession, now: datetime) -> int:
        return await webhook_delivery.due_count(db, now)
