"""The invariants of scheduled firing, judged from the database once a run has settled: every
instant of every schedule has exactly one batch (none missing between its first and last fire,
none doubled, none off the grid), every batch exactly one session per target, its counters and
progress shards equal to its sessions, and exactly one "batch.ready" notification; no orphan
rows. `verify` returns the counts, timings and a few examples of each problem; no problem means
the run kept every guarantee. Used by the end-to-end and chaos tests."""

from __future__ import annotations

import itertools
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from tests.kit.db import Probe

READY_EVENT = "batch.ready"


@dataclass
class Counts:
    schedules: int = 0
    schedules_never_fired: int = 0
    instants_expected: int = 0
    instants_found: int = 0
    instants_missing: int = 0
    instants_doubled: int = 0  # (schedule, instant) pairs with more than one batch
    instants_off_grid: int = 0
    first_or_last_mismatch: int = 0  # first batch != first instant, or last != last_run_at
    other_triggers: int = 0
    batches: int = 0
    batches_not_ready: int = 0
    batches_bad_sessions: int = 0  # not exactly one session per target label
    batches_bad_counters: int = 0  # target_count / sessions_created not the list's size
    batches_bad_notifications: int = 0  # not exactly one batch.ready
    batches_bad_progress: int = 0  # progress shards != sessions
    sessions: int = 0
    sessions_expected: int = 0
    notifications: int = 0
    orphan_sessions: int = 0
    orphan_notifications: int = 0


@dataclass
class Timing:
    longest_batch_gap_s: float = 0.0  # between consecutive batch created_at, all schedules
    longest_batch_gap_at: str = ""
    max_fire_lag_s: float = 0.0  # created_at - scheduled_for
    p99_fire_lag_s: float = 0.0
    first_fire: datetime | None = None
    last_fire: datetime | None = None
    last_ready: datetime | None = None


@dataclass
class Verdict:
    counts: Counts
    timing: Timing
    problems: list[str] = field(default_factory=list)  # at most a few examples per kind


async def verify(
    probe: Probe,
    first_instants: dict[str, datetime],
    labels: list[str],
    every: timedelta = timedelta(seconds=1),
) -> Verdict:
    """Judge every schedule of the database (all paused by now), each firing every `every` from
    its first instant (`first_instants`: schedule id → its next_run_at when created), each batch
    with one session per label of `labels`."""
    counts, timing, problems = Counts(), Timing(), _Problems()
    batches = await probe.fetch(
        "SELECT id, schedule_id, trigger, scheduled_for, created_at, target_count, "
        "sessions_created, ready_at FROM batches",
        timeout=300,
    )
    schedules = await probe.fetch(
        "SELECT id, last_run_at, is_active FROM maintenance_schedules", timeout=60
    )
    sessions = {
        r["batch_id"]: r
        for r in await probe.fetch(
            "SELECT batch_id, count(*) AS n, "
            "array_agg(target_label ORDER BY target_label) AS labels "
            "FROM sessions GROUP BY batch_id",
            timeout=300,
        )
    }
    notes = {
        r["batch_id"]: r
        for r in await probe.fetch(
            "SELECT batch_id, count(*) AS n, count(*) FILTER (WHERE event = $1) AS ready "
            "FROM notifications GROUP BY batch_id",
            READY_EVENT,
            timeout=300,
        )
    }
    progress = {
        r["batch_id"]: int(r["n"])
        for r in await probe.fetch(
            "SELECT batch_id, sum(created) AS n FROM batch_progress GROUP BY batch_id",
            timeout=300,
        )
    }
    counts.schedules = len(schedules)
    counts.batches = len(batches)
    counts.sessions = sum(r["n"] for r in sessions.values())
    counts.notifications = sum(r["n"] for r in notes.values())
    counts.sessions_expected = len(batches) * len(labels)

    by_schedule: dict[uuid.UUID, list[Any]] = defaultdict(list)
    for b in batches:
        if b["trigger"] != "schedule":
            counts.other_triggers += 1
            problems.add("other trigger", f"batch {b['id']} trigger={b['trigger']}")
            continue
        by_schedule[b["schedule_id"]].append(b)
    for s in schedules:
        _check_instants(s, by_schedule.get(s["id"], []), first_instants, every, counts, problems)
    known = {b["id"] for b in batches}
    _check_fanout(batches, sessions, notes, sorted(labels), counts, problems)
    _check_progress(batches, sessions, progress, counts, problems)
    counts.orphan_sessions = sum(r["n"] for k, r in sessions.items() if k not in known)
    counts.orphan_notifications = sum(
        r["n"] for k, r in notes.items() if k is not None and k not in known
    )
    if counts.orphan_sessions or counts.orphan_notifications:
        problems.add(
            "orphans",
            f"{counts.orphan_sessions} sessions, "
            f"{counts.orphan_notifications} notifications without a batch",
        )
    _timing(batches, timing)
    return Verdict(counts, timing, problems.lines())


def _check_instants(
    schedule: Any,
    batches: list[Any],
    first_instants: dict[str, datetime],
    every: timedelta,
    counts: Counts,
    problems: _Problems,
) -> None:
    sid = schedule["id"]
    if schedule["is_active"]:
        problems.add("still active", f"schedule {sid} was not paused")
    if not batches:
        counts.schedules_never_fired += 1
        problems.add("never fired", f"schedule {sid}")
        return
    per_instant = Counter(b["scheduled_for"] for b in batches)
    first = first_instants.get(str(sid), min(per_instant))
    last = schedule["last_run_at"] or max(per_instant)
    expected = {first + k * every for k in range(int((last - first) / every) + 1)}
    found = set(per_instant)
    counts.instants_expected += len(expected)
    counts.instants_found += len(found & expected)
    missing = sorted(expected - found)
    counts.instants_missing += len(missing)
    if missing:
        problems.add("missing", f"schedule {sid}: {len(missing)} instants, first {missing[:3]}")
    off_grid = sorted(found - expected)
    counts.instants_off_grid += len(off_grid)
    if off_grid:
        problems.add("off grid", f"schedule {sid}: {off_grid[:3]}")
    doubled = {k: n for k, n in per_instant.items() if n > 1}
    counts.instants_doubled += len(doubled)
    if doubled:
        problems.add("doubled", f"schedule {sid}: {list(doubled.items())[:3]}")
    if min(per_instant) != first or max(per_instant) != last:
        counts.first_or_last_mismatch += 1
        problems.add(
            "first/last",
            f"schedule {sid}: batches {min(per_instant)}..{max(per_instant)}, "
            f"expected {first}..{last} (last_run_at)",
        )


def _check_fanout(
    batches: list[Any],
    sessions: dict[Any, Any],
    notes: dict[Any, Any],
    labels: list[str],
    counts: Counts,
    problems: _Problems,
) -> None:
    n = len(labels)
    for b in batches:
        bid = b["id"]
        got = sessions.get(bid)
        got_labels = list(got["labels"]) if got else []
        if got_labels != labels:
            counts.batches_bad_sessions += 1
            problems.add("sessions", f"batch {bid} ({b['scheduled_for']}): {got_labels}")
        if b["ready_at"] is None:
            counts.batches_not_ready += 1
            problems.add("not ready", f"batch {bid} ({b['scheduled_for']})")
        if b["target_count"] != n or b["sessions_created"] != n:
            counts.batches_bad_counters += 1
            problems.add(
                "counters",
                f"batch {bid}: target_count={b['target_count']} "
                f"sessions_created={b['sessions_created']}",
            )
        note = notes.get(bid)
        if note is None or note["ready"] != 1:
            counts.batches_bad_notifications += 1
            problems.add(
                "notifications",
                f"batch {bid}: {note['n'] if note else 0} notifications, "
                f"{note['ready'] if note else 0} {READY_EVENT}",
            )


def _check_progress(
    batches: list[Any],
    sessions: dict[Any, Any],
    progress: dict[Any, int],
    counts: Counts,
    problems: _Problems,
) -> None:
    """Every session was counted exactly once in its batch's progress shards."""
    for b in batches:
        have = sessions[b["id"]]["n"] if b["id"] in sessions else 0
        counted = progress.get(b["id"], 0)
        if counted != have:
            counts.batches_bad_progress += 1
            problems.add("progress", f"batch {b['id']}: {have} sessions, {counted} counted")


def _timing(batches: list[Any], timing: Timing) -> None:
    if not batches:
        return
    created = sorted({b["created_at"] for b in batches})
    for a, b in itertools.pairwise(created):
        gap = (b - a).total_seconds()
        if gap > timing.longest_batch_gap_s:
            timing.longest_batch_gap_s = gap
            timing.longest_batch_gap_at = f"{a:%H:%M:%S}..{b:%H:%M:%S}"
    lags = sorted((b["created_at"] - b["scheduled_for"]).total_seconds() for b in batches)
    timing.max_fire_lag_s = lags[-1]
    timing.p99_fire_lag_s = lags[int(0.99 * (len(lags) - 1))]
    timing.first_fire = created[0]
    timing.last_fire = created[-1]
    ready = [b["ready_at"] for b in batches if b["ready_at"] is not None]
    timing.last_ready = max(ready) if ready else None


class _Problems:
    """Examples of each kind of violation, a few per kind, so a report stays readable."""

    def __init__(self, per_kind: int = 5) -> None:
        self.per_kind = per_kind
        self.seen: Counter[str] = Counter()
        self.examples: list[str] = []

    def add(self, kind: str, text: str) -> None:
        self.seen[kind] += 1
        if self.seen[kind] <= self.per_kind:
            self.examples.append(f"{kind}: {text}")

    def lines(self) -> list[str]:
        more = [f"{k}: {n - self.per_kind} more" for k, n in self.seen.items() if n > self.per_kind]
        return self.examples + more
