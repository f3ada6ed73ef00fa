"""How long each fault delayed the work it hit, read from the database after the run.

For a fault injected at instant T, the batches it can have hit are those due from BEFORE ahead of
T (fetched or in flight at the fault) to AFTER past it (due while a leader was being replaced, a
worker's messages were stranded, a server was restarting). Its delay is the latest completion
(`ready_at`) among them, counted from T or from the batch's instant if that is later: "how long
after the fault, or after it was due, the last affected batch was complete". Without a fault a
batch is complete about a second after its instant. Faults closer together than AFTER share
batches, so a delay may belong to a neighbour; the report lists every fault with its own."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from tests.chaos.faults import Fault
from tests.kit.db import Probe

BEFORE = timedelta(seconds=2)
AFTER = timedelta(seconds=20)

_DELAY_SQL = """
    SELECT count(*) AS batches,
           max(extract(epoch FROM ready_at - greatest(scheduled_for, $1::timestamptz)))
               AS delay_s
      FROM batches
     WHERE trigger = 'schedule' AND scheduled_for BETWEEN $2::timestamptz AND $3::timestamptz
"""


@dataclass(frozen=True)
class Recovery:
    fault: Fault
    batches: int  # due in the fault's window
    delay_s: float | None  # None: none of them is complete (the verdict fails the run then)

    def __str__(self) -> str:
        delay = f"{self.delay_s:.1f} s" if self.delay_s is not None else "never"
        return f"{self.fault.at_s:6.1f}s {self.fault.kind} {self.fault.target}: {delay}"


async def measure(probe: Probe, faults: list[Fault], started: datetime) -> list[Recovery]:
    """The delay of every fault that was injected; `started` is the wall-clock instant of the
    fault phase's t0 (Fault.at_s counts from it)."""
    found = []
    for fault in faults:
        if fault.failed or fault.kind == "thaw_leader":
            continue
        at = started + timedelta(seconds=fault.at_s)
        (row,) = await probe.fetch(_DELAY_SQL, at, at - BEFORE, at + AFTER)
        delay = float(row["delay_s"]) if row["delay_s"] is not None else None
        found.append(Recovery(fault, int(row["batches"]), delay))
    return found


def worst_by_kind(recoveries: list[Recovery]) -> dict[str, Recovery]:
    """For each kind of fault, the fault after which the work took longest to complete."""
    worst: dict[str, Recovery] = {}
    for r in recoveries:
        current = worst.get(r.fault.kind)
        if current is None or _delay(r) > _delay(current):
            worst[r.fault.kind] = r
    return worst


def _delay(r: Recovery) -> float:
    return float("inf") if r.delay_s is None else r.delay_s
