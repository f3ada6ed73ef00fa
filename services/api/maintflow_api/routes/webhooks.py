"""Webhooks, for a team's admins: register, list, read, delete, deliveries, test."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response

from maintflow_api.deps import DB, Admin, Cursor, Limit, State
from maintflow_api.etag import READ, IfMatch, IfNoneMatch, require_match, tagged
from maintflow_api.responses import AUTHED, errors
from maintflow_core.models import Webhook, WebhookAttempt, WebhookDelivery
from maintflow_core.schemas.common import Page
from maintflow_core.schemas.webhooks import (
    AttemptOut,
    DeliveryOut,
    PingSent,
    WebhookCreate,
    WebhookCreated,
    WebhookOut,
)
from maintflow_core.usecases import webhooks
from maintflow_core.usecases.pagination import page_of
from maintflow_core.usecases.webhook_delivery import message_id

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"], responses={**AUTHED, **errors(403)})

CREATE_RULES = """Admins only. `url`: http or https, no credentials in it. Its host must resolve
only to globally routable addresses: a loopback, private, link-local, multicast, reserved or
cloud-metadata address (also inside an IPv6 address, or in a numeric spelling such as
`0x7f000001`) is 422 naming `url`, unless the operator set `MAINTFLOW_WEBHOOK_ALLOW_PRIVATE`.
The workers check again the address each attempt actually connects to.

Deliveries follow the Standard Webhooks specification: a POST of
`{"type": <event>, "timestamp": …, "data": {…}}` with the headers `webhook-id` (the same on every
retry of one event), `webhook-timestamp` (Unix seconds) and `webhook-signature`
(`v1,<base64 HMAC-SHA256 of "<webhook-id>.<webhook-timestamp>.<body>">`, keyed with the base64
part of `secret`). Any 2xx answer is success; otherwise the delivery is retried with
exponential backoff, up to `MAINTFLOW_WEBHOOK_MAX_ATTEMPTS` attempts; a 410 Gone disables the
webhook. Every attempt is recorded (see the deliveries).
`secret` is in this answer only: keep it."""


def _out(webhook: Webhook) -> WebhookOut:
    return WebhookOut(
        id=webhook.id,
        team_id=webhook.team_id,
        url=webhook.url,
        events=webhook.events,
        description=webhook.description,
        created_at=webhook.created_at,
        enabled=webhook.disabled_at is None,
        disabled_at=webhook.disabled_at,
        disabled_reason=webhook.disabled_reason,
    )


def _delivery_out(delivery: WebhookDelivery, attempts: list[WebhookAttempt]) -> DeliveryOut:
    last = attempts[-1] if attempts else None
    return DeliveryOut(
        id=delivery.id,
        webhook_id=delivery.webhook_id,
        message_id=message_id(delivery.id),
        event=delivery.event,
        status=delivery.status,
        attempts=delivery.attempts,
        status_code=delivery.last_status_code,
        error=delivery.last_error,
        duration_ms=last.duration_ms if last else None,
        next_retry_at=delivery.next_attempt_at if delivery.status == "pending" else None,
        created_at=delivery.created_at,
        finished_at=delivery.finished_at,
        attempt_log=[AttemptOut.model_validate(a) for a in attempts],
    )


@router.post(
    "",
    status_code=201,
    response_model=WebhookCreated,
    responses=errors(400, 413),
    operation_id="webhooks_create",
    summary="Register a webhook (its signing secret is shown once)",
    description=CREATE_RULES,
)
async def create_webhook(
    body: WebhookCreate, db: DB, state: State, principal: Admin
) -> WebhookCreated:
    webhook = await webhooks.create_webhook(
        db,
        state.clock,
        principal.team_id,
        body.url,
        body.events,
        body.description,
        allow_private=state.settings.webhook_allow_private,
    )
    await db.commit()
    return WebhookCreated(**_out(webhook).model_dump(), secret=webhook.secret)


@router.get(
    "",
    response_model=Page[WebhookOut],
    operation_id="webhooks_list",
    summary="List the team's webhooks",
)
async def list_webhooks(
    db: DB, principal: Admin, limit: Limit = 50, cursor: Cursor = None
) -> Page[WebhookOut]:
    rows = await webhooks.list_webhooks(db, principal.team_id, limit, cursor)
    items, next_cursor = page_of(rows, limit, lambda w: (w.created_at, w.id))
    return Page[WebhookOut](items=[_out(w) for w in items], next_cursor=next_cursor)


@router.get(
    "/{webhook_id}",
    response_model=WebhookOut,
    responses={**errors(404), **READ},
    operation_id="webhooks_get",
    summary="Read a webhook",
)
async def get_webhook(
    webhook_id: uuid.UUID, db: DB, principal: Admin, if_none_match: IfNoneMatch = None
) -> Response:
    return tagged(
        _out(await webhooks.get_webhook(db, principal.team_id, webhook_id)), if_none_match
    )


@router.delete(
    "/{webhook_id}",
    status_code=204,
    response_class=Response,
    responses=errors(404, 412),
    operation_id="webhooks_delete",
    summary="Delete a webhook and its deliveries",
)
async def delete_webhook(
    webhook_id: uuid.UUID, db: DB, principal: Admin, if_match: IfMatch = None
) -> Response:
    await require_match(if_match, webhooks.get_webhook, db, principal.team_id, webhook_id, _out)
    await webhooks.delete_webhook(db, principal.team_id, webhook_id)
    await db.commit()
    return Response(status_code=204)


@router.get(
    "/{webhook_id}/deliveries",
    response_model=Page[DeliveryOut],
    responses=errors(404),
    operation_id="webhooks_deliveries",
    summary="A webhook's deliveries, newest first, with every attempt",
)
async def list_deliveries(
    webhook_id: uuid.UUID, db: DB, principal: Admin, limit: Limit = 50, cursor: Cursor = None
) -> Page[DeliveryOut]:
    rows = await webhooks.list_deliveries(db, principal.team_id, webhook_id, limit, cursor)
    items, next_cursor = page_of(rows, limit, lambda r: (r[0].created_at, r[0].id))
    return Page[DeliveryOut](
        items=[_delivery_out(d, attempts) for d, attempts in items], next_cursor=next_cursor
    )


@router.post(
    "/{webhook_id}/test",
    status_code=202,
    response_model=PingSent,
    responses=errors(404),
    operation_id="webhooks_test",
    summary="Send the webhook a `ping` event",
    description="Delivered by the workers like any event, whatever the webhook's `events` "
    "say; to a disabled webhook it is recorded as failed. Follow it in the deliveries.",
)
async def test_webhook(webhook_id: uuid.UUID, db: DB, state: State, principal: Admin) -> PingSent:
    delivery_id = await webhooks.send_ping(db, state.clock, principal.team_id, webhook_id)
    await db.commit()
    return PingSent(delivery_id=delivery_id, message_id=message_id(delivery_id))
