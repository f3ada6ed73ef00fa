"""The verdict and report of a chaos run: the invariants of tests/kit/invariants.py at one-second
instants (every instant once, every batch one session per target and one "batch.ready", no
orphans), plus what only a chaos run can fail — a process that died on its own, a fault that
could not be injected, the harness itself going wrong. `ChaosReport` prints the counts, the
faults and the gaps."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from tests.chaos.config import ChaosConfig
from tests.chaos.faults import Death, Fault
from tests.chaos.recovery import Recovery, worst_by_kind
from tests.kit.invariants import READY_EVENT, Verdict, verify

__all__ = ["ChaosReport", "Verdict", "verify"]


@dataclass
class ChaosReport:
    config: ChaosConfig
    verdict: Verdict
    faults: list[Fault]
    deaths: list[Death]
    leaderless: tuple[float, float]  # (at, length): no running process holds a live lease
    tickless: tuple[float, float]  # (at, length): no tick (a frozen leader holds a live lease)
    leader_changes: int
    peak_not_ready: int
    peak_pending_outbox: int
    queue_peak: dict[str, int]
    log_events: dict[str, int]
    setup_s: float
    faults_s: float
    settle_s: float
    total_s: float
    seed: int
    workdir: str
    code_version: str = ""
    warnings: list[str] = field(default_factory=list)
    harness_errors: list[str] = field(default_factory=list)  # the harness itself went wrong
    probe_errors: dict[str, int] = field(default_factory=dict)  # harness queries that failed
    recoveries: list[Recovery] = field(default_factory=list)  # per fault (see recovery.py)

    @property
    def failures(self) -> list[str]:
        out = list(self.verdict.problems)
        out += [
            f"{d.name} died on its own at {d.at_s:.1f} s (exit {d.returncode})" for d in self.deaths
        ]
        out += [f"fault failed: {f}" for f in self.faults if f.failed]
        return out + self.harness_errors

    def injected(self) -> Counter[str]:
        """Faults injected, by kind (those that could not be are not counted)."""
        return Counter(f.kind for f in self.faults if not f.failed)

    def __str__(self) -> str:
        c, t = self.verdict.counts, self.verdict.timing
        kinds = self.injected()
        fire_span = (
            (t.last_fire - t.first_fire).total_seconds() if t.first_fire and t.last_fire else 0
        )
        drained = (
            (t.last_ready - t.first_fire).total_seconds() if t.last_ready and t.first_fire else 0
        )
        lines = [
            "==== maintflow chaos report ====",
            f"run: {self.config.summary()}; seed {self.seed}; code {self.code_version}",
            f"wall time: setup {self.setup_s:.0f} s, faults {self.faults_s:.0f} s, "
            f"settle {self.settle_s:.0f} s (pause → every batch ready), total {self.total_s:.0f} s",
            f"schedules: {c.schedules} (never fired: {c.schedules_never_fired})",
            f"instants: expected {c.instants_expected}, found {c.instants_found}, "
            f"missing {c.instants_missing}, doubled {c.instants_doubled}, "
            f"off the grid {c.instants_off_grid}, first/last mismatches {c.first_or_last_mismatch}",
            f"batches: {c.batches} (not ready {c.batches_not_ready}, wrong sessions "
            f"{c.batches_bad_sessions}, wrong counters {c.batches_bad_counters}, "
            f"progress shards != sessions {c.batches_bad_progress}, "
            f"other triggers {c.other_triggers})",
            f"sessions: {c.sessions} (expected {c.sessions_expected}; orphans {c.orphan_sessions})",
            f"notifications: {c.notifications} (batches without exactly one {READY_EVENT}: "
            f"{c.batches_bad_notifications}; orphans {c.orphan_notifications})",
            "faults: " + (", ".join(f"{k} x{n}" for k, n in sorted(kinds.items())) or "none"),
            *(f"  {f}" for f in self.faults),
            f"processes that died on their own: {len(self.deaths)}"
            + "".join(f"\n  {d.at_s:.1f}s {d.name} exit {d.returncode}" for d in self.deaths),
            f"longest leader gap: {self.leaderless[1]:.1f} s without a running lease holder "
            f"(from {self.leaderless[0]:.1f} s), {self.tickless[1]:.1f} s without a tick "
            f"(from {self.tickless[0]:.1f} s), {t.longest_batch_gap_s:.1f} s between two batches "
            f"({t.longest_batch_gap_at}); {self.leader_changes} changes of leader",
            "recovery (fault -> the batches it hit complete), worst by kind: "
            + (
                ", ".join(
                    f"{kind} {r.delay_s:.1f} s" if r.delay_s is not None else f"{kind} never"
                    for kind, r in sorted(worst_by_kind(self.recoveries).items())
                )
                or "no fault"
            ),
            *(f"  {r}" for r in self.recoveries),
            f"fire lag (created_at - scheduled_for): max {t.max_fire_lag_s:.1f} s, "
            f"p99 {t.p99_fire_lag_s:.1f} s",
            f"throughput: {c.sessions} sessions in {drained:.0f} s from first fire to last ready "
            f"({c.sessions / drained if drained else 0:.0f}/s; fires spanned {fire_span:.0f} s); "
            f"peak backlog {self.peak_not_ready} batches not ready, {self.peak_pending_outbox} "
            f"outbox rows pending, queues {self.queue_peak}",
            "log events: " + ", ".join(f"{k}={v}" for k, v in sorted(self.log_events.items())),
            f"harness queries that failed (database restarting): {self.probe_errors or 0}",
            f"logs: {self.workdir}",
            *(f"WARNING: {w}" for w in self.warnings),
            "verdict: " + ("OK" if not self.failures else "FAILED"),
            *(f"  {p}" for p in self.failures),
        ]
        return "\n".join(lines)
