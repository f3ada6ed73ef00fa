"""The scheduler lease as a test sees it: the `scheduler_leases` row and the process behind its
holder id (`host:pid:random`, see maintflow_scheduler.service.make_holder_id)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

# `live`: unexpired by the database's clock, the one every replica compares with.
LEASE_QUERY = (
    "SELECT holder, epoch, expires_at, last_tick_at, expires_at > now() AS live "
    "FROM scheduler_leases WHERE name = 'scheduler'"
)


def holder_pid(holder: str) -> int | None:
    """The pid in a holder id "host:pid:xxxx", or None if it has none."""
    parts = holder.split(":")
    return int(parts[-2]) if len(parts) >= 3 and parts[-2].isdigit() else None


@dataclass(frozen=True)
class Lease:
    holder: str
    epoch: int
    expires_at: datetime
    live: bool  # expires_at is in the future by the database's clock
    last_tick_at: datetime | None = None

    @property
    def pid(self) -> int | None:
        return holder_pid(self.holder)

    @classmethod
    def from_row(cls, row: Any) -> Lease:
        return cls(row["holder"], row["epoch"], row["expires_at"], row["live"], row["last_tick_at"])
