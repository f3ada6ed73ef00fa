"""The rows of the fire path, each built here and nowhere else: a fire (a batch and the outbox
row that hands it to the workers), the outbox row of any kind of work, a schedule moved on by a
claim, and a session. The stores write them (`maintflow_core.db.store`); the PostgreSQL store's
one-statement session insert is the only other place that spells a session's columns."""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

from maintflow_core.queues import FIRE_BATCH, OutboxKind


def outbox_row(
    kind: OutboxKind, args: dict[str, Any], now: datetime, *, batch_id: uuid.UUID | None = None
) -> dict[str, Any]:
    """Work of `kind` for the relay to publish: `args` are the actor's arguments (JSON);
    `batch_id`, the batch it is about, if any."""
    return {
        "kind": kind.name,
        "batch_id": batch_id,
        "payload": kind.payload(args),
        "created_at": now,
        "attempts": 0,
    }


def fire_message(batch_id: uuid.UUID, now: datetime) -> dict[str, Any]:
    """The outbox row that has a fired batch fanned out (again, when the reconciler re-drives)."""
    return outbox_row(FIRE_BATCH, {"batch_id": str(batch_id)}, now, batch_id=batch_id)


class Fire(NamedTuple):
    """A batch to create and the outbox row that hands it to the workers, written together."""

    batch: dict[str, Any]
    message: dict[str, Any]

    @property
    def id(self) -> uuid.UUID:
        batch_id: uuid.UUID = self.batch["id"]
        return batch_id


def fire(
    *,
    trigger: str,
    team_id: uuid.UUID,
    flow_id: uuid.UUID,
    schedule_id: uuid.UUID,
    target_list_id: uuid.UUID | None,
    instant: datetime,
    now: datetime,
    snapshot: tuple[list[dict[str, Any]], list[dict[str, Any]]] | None = None,
) -> Fire:
    """A fire of a schedule at `instant`: "schedule" (claimed by the leader; its targets and
    steps are read when its fan-out starts) or "run_now" (with the `snapshot` of targets and
    steps taken at the request). A batch without a snapshot has no `targets`/`steps` keys, so
    they are stored as SQL NULL: "not resolved yet"."""
    batch_id = uuid.uuid4()
    batch: dict[str, Any] = {
        "id": batch_id,
        "team_id": team_id,
        "flow_id": flow_id,
        "schedule_id": schedule_id,
        "trigger": trigger,
        "scheduled_for": instant,
        "target_list_id": target_list_id,
        "target_count": 0,
        "sessions_created": 0,
        "created_at": now,
    }
    if snapshot is not None:
        targets, steps = snapshot
        batch.update(targets=targets, steps=steps, target_count=len(targets))
    return Fire(batch, fire_message(batch_id, now))


class Advance(NamedTuple):
    """A claimed schedule moved on: its next instant (None: it has no more), and the newest
    instant it fired (None: it fired none, last_run_at stays)."""

    schedule_id: uuid.UUID
    next_run_at: datetime | None
    last_run_at: datetime | None


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

# A batch's fan-out counts its sessions in this many rows of batch_progress, one picked at random
# per session, so concurrent workers rarely wait on each other's row lock.
PROGRESS_SHARDS = 32


def progress_shard() -> int:
    return random.randrange(PROGRESS_SHARDS)


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
    """One pending session per target, each with the flow's steps as they are at `now`."""
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
