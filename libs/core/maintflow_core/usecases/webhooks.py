"""A team's webhooks: register one (its URL checked against the SSRF rules, its signing secret
made and shown once), list, read, delete, list its deliveries, and send it a `ping`."""

from __future__ import annotations

import base64
import secrets
import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from maintflow_core import ssrf
from maintflow_core.clock import Clock
from maintflow_core.errors import InvalidField
from maintflow_core.models import Webhook, WebhookAttempt, WebhookDelivery
from maintflow_core.usecases.events import Event
from maintflow_core.usecases.owned import delete_owned, get_owned
from maintflow_core.usecases.pagination import paginate
from maintflow_core.usecases.webhook_delivery import event_body, new_delivery, queue_deliveries

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32


def new_secret() -> str:
    """A Standard Webhooks signing secret: `whsec_` and the base64 of random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


async def check_url(url: str, *, allow_private: bool, resolver: ssrf.Resolver) -> None:
    """InvalidField naming `url` unless it is an http(s) URL a webhook may reach (any host when
    private targets are allowed)."""
    try:
        if allow_private:
            ssrf.parse_url(url)
        else:
            await ssrf.check_url(url, resolver)
    except ssrf.Refused as exc:
        raise InvalidField("url", str(exc)) from None


async def create_webhook(
    db: AsyncSession,
    clock: Clock,
    team_id: uuid.UUID,
    url: str,
    events: Sequence[str],
    description: str | None,
    *,
    allow_private: bool,
    resolver: ssrf.Resolver = ssrf.system_resolver,
) -> Webhook:
    await check_url(url, allow_private=allow_private, resolver=resolver)
    webhook = Webhook(
        id=uuid.uuid4(),
        team_id=team_id,
        url=url,
        events=list(events),
        description=description,
        secret=new_secret(),
        created_at=clock.now(),
    )
    db.add(webhook)
    await db.flush()
    return webhook


async def list_webhooks(
    db: AsyncSession, team_id: uuid.UUID, limit: int, cursor: str | None
) -> list[Webhook]:
    query = sa.select(Webhook).where(Webhook.team_id == team_id)
    query = paginate(query, Webhook.created_at, Webhook.id, limit, cursor)
    return list((await db.scalars(query)).all())


async def get_webhook(
    db: AsyncSession, team_id: uuid.UUID, webhook_id: uuid.UUID, *, for_update: bool = False
) -> Webhook:
    return await get_owned(db, Webhook, team_id, webhook_id, "webhook", for_update=for_update)


async def delete_webhook(db: AsyncSession, team_id: uuid.UUID, webhook_id: uuid.UUID) -> None:
    """Its deliveries go with it; a delivery whose message is still queued finds nothing."""
    await delete_owned(db, Webhook, team_id, webhook_id, "webhook")


async def list_deliveries(
    db: AsyncSession, team_id: uuid.UUID, webhook_id: uuid.UUID, limit: int, cursor: str | None
) -> list[tuple[WebhookDelivery, list[WebhookAttempt]]]:
    """The webhook's deliveries, newest first, each with its attempts (oldest first)."""
    await get_webhook(db, team_id, webhook_id)
    query = sa.select(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook_id)
    query = paginate(query, WebhookDelivery.created_at, WebhookDelivery.id, limit, cursor)
    deliveries = list((await db.scalars(query)).all())
    attempts: dict[uuid.UUID, list[WebhookAttempt]] = {d.id: [] for d in deliveries}
    if deliveries:
        for attempt in await db.scalars(
            sa.select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id.in_(list(attempts)))
            .order_by(WebhookAttempt.delivery_id, WebhookAttempt.number)
        ):
            attempts[attempt.delivery_id].append(attempt)
    return [(d, attempts[d.id]) for d in deliveries]


async def send_ping(
    db: AsyncSession, clock: Clock, team_id: uuid.UUID, webhook_id: uuid.UUID
) -> uuid.UUID:
    """A `ping` delivery to the webhook, sent by the workers like any other delivery (to a
    disabled webhook: recorded as failed). Returns the delivery's id."""
    webhook = await get_webhook(db, team_id, webhook_id)
    now = clock.now()
    data = {"webhook_id": str(webhook.id)}
    body = event_body(Event.PING, data, now)
    delivery = new_delivery(webhook.id, Event.PING, None, body, now)
    await queue_deliveries(db, [delivery], now)
    return uuid.UUID(str(delivery["id"]))
