"""The broker's vocabulary, shared by the relay that publishes and the workers that consume
without either importing the other: the queue names, and the kinds of outbox row — each names
the actor that does the work, its queue, and which payload keys are the actor's arguments."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

FANOUT_QUEUE = "fanout"
SESSIONS_QUEUE = "sessions"
# Webhook deliveries wait on other systems: a queue of their own, so they never delay a fan-out.
WEBHOOKS_QUEUE = "webhooks"
# System jobs too: a nightly run must not wait behind a fan-out storm's session messages, and a
# long run is visible on its own in GET /v1/ops/queues.
SYSTEM_QUEUE = "system"
QUEUES = (FANOUT_QUEUE, SESSIONS_QUEUE, WEBHOOKS_QUEUE, SYSTEM_QUEUE)


@dataclass(frozen=True)
class OutboxKind:
    """Work handed to the broker through the outbox. `name` is both the outbox row's `kind` and
    the actor that does it."""

    name: str
    queue: str
    args: tuple[str, ...]

    def payload(self, args: dict[str, Any]) -> dict[str, Any]:
        """`args` as the outbox row's payload, once checked to be this kind's arguments (in
        their order)."""
        if tuple(args) != self.args:
            raise ValueError(f"{self.name} takes {self.args}, got {tuple(args)}")
        return args

    def message_args(self, payload: Mapping[str, Any]) -> tuple[Any, ...]:
        return tuple(payload[name] for name in self.args)


# A fired batch: resolve its snapshot and enqueue one session per target (outbox rows already
# stored say "fire_schedule": the name stays).
FIRE_BATCH = OutboxKind("fire_schedule", FANOUT_QUEUE, ("batch_id",))

# The next attempt of each of a few webhook deliveries (their rows say which attempt, and
# whether any is due): one message for several, so a burst of events costs the broker and the
# workers a message per few deliveries rather than one each.
DELIVER_WEBHOOKS = OutboxKind("deliver_webhooks", WEBHOOKS_QUEUE, ("delivery_ids",))
# One delivery per message, as versions before DELIVER_WEBHOOKS wrote them: still relayed and
# taken so that none stored or in flight across an upgrade is dropped; nothing writes it now.
DELIVER_WEBHOOK = OutboxKind("deliver_webhook", WEBHOOKS_QUEUE, ("delivery_id",))
# A system job's run: execute it once (a run already taken up is left to its deadline).
RUN_SYSTEM_JOB = OutboxKind("run_system_job", SYSTEM_QUEUE, ("run_id",))

KINDS: dict[str, OutboxKind] = {
    kind.name: kind for kind in (FIRE_BATCH, DELIVER_WEBHOOKS, DELIVER_WEBHOOK, RUN_SYSTEM_JOB)
}
