"""The sizes, durations and fault intervals of a chaos run, overridable one by one with
`MAINTFLOW_CHAOS_<FIELD>` environment variables (e.g. MAINTFLOW_CHAOS_SECONDS=600)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, get_type_hints

from maintflow_core.settings import Settings

ENV_PREFIX = "MAINTFLOW_CHAOS_"
# ChaosConfig field -> the maintflow setting it sets in every process.
SETTINGS = {
    "lease_s": "scheduler_lease_s",
    "renew_s": "scheduler_renew_interval_s",
    "reconcile_after_s": "reconcile_after_s",
    "reconcile_interval_s": "reconcile_interval_s",
    "heartbeat_timeout_ms": "broker_heartbeat_timeout_ms",
    "maintenance_chance": "broker_maintenance_chance",
    "db_pool_size": "db_pool_size",
    "db_max_overflow": "db_max_overflow",
}


def shipped(setting: str) -> Any:
    """The default a user runs (not the test process's environment)."""
    return Settings.model_fields[setting].default


@dataclass(frozen=True)
class ChaosConfig:
    # Sizes. Defaults are the full sizes; the CI test passes smaller ones.
    seconds: float = 600.0  # length of the fault phase
    schedules: int = 200  # each fires every second ("* * * * * *")
    targets: int = 5  # per schedule (one shared target list)
    schedulers: int = 3
    workers: int = 2  # worker processes, each its own `maintflow worker --processes 1`
    worker_threads: int = 8

    # Faults. An interval of 0 disables that fault; the one-shot faults happen at a fraction of
    # the fault phase.
    leader_kill_every_s: float = 10.0  # SIGKILL the lease holder (±20 % jitter)
    worker_kill_every_s: float = 7.0  # SIGKILL one worker process group, in turn
    restart_delay_s: float = 1.0  # a killed process is started again after this long
    freeze_leader: bool = True  # SIGSTOP the leader past its lease, then SIGCONT
    freeze_at: float = 0.45
    restart_redis: bool = True  # `shutdown nosave` + start: every queued message is lost
    redis_restart_at: float = 0.25
    restart_postgres: bool = True
    postgres_restart_at: float = 0.7
    seed: int = 0  # jitter of the intervals (0: a random seed, printed in the report)

    # Phases.
    warmup_s: float = 5.0  # every schedule firing before the first fault
    settle_timeout_s: float = 600.0  # after pausing, every batch must be ready within this

    # maintflow settings of the processes (MAINTFLOW_*): the shipped defaults, because recovery
    # is promised at the defaults users run. A faster profile for long runs by hand sets them
    # with MAINTFLOW_CHAOS_<FIELD> (e.g. LEASE_S=3 RENEW_S=1 RECONCILE_AFTER_S=8).
    lease_s: float = shipped("scheduler_lease_s")
    renew_s: float = shipped("scheduler_renew_interval_s")
    reconcile_after_s: float = shipped("reconcile_after_s")
    reconcile_interval_s: float = shipped("reconcile_interval_s")
    heartbeat_timeout_ms: int = shipped("broker_heartbeat_timeout_ms")
    maintenance_chance: int = shipped("broker_maintenance_chance")
    # Per process, as shipped: 1 API (20) + 3 schedulers (6 each) + 2 workers (2 x 8 threads)
    # = 70 connections, inside the shared server's max_connections (docs/operations.md).
    db_pool_size: int = shipped("db_pool_size")
    db_max_overflow: int = shipped("db_max_overflow")

    # How the run's servers (those of its URLs) are restarted, as shell words. Empty: a
    # command derived from the running server (see servers.py).
    redis_start: str = ""
    postgres_restart: str = ""

    @property
    def freeze_s(self) -> float:
        """How long the leader stays frozen: well past its lease, so a standby takes over and
        the frozen one wakes up as a stale leader."""
        return 2 * self.lease_s + self.renew_s

    def fault_kinds(self) -> set[str]:
        """The kinds of fault this configuration injects (as FaultInjector records them)."""
        enabled = {
            "kill_leader": self.leader_kill_every_s > 0,
            "kill_worker": self.worker_kill_every_s > 0,
            "freeze_leader": self.freeze_leader,
            "restart_redis": self.restart_redis,
            "restart_postgres": self.restart_postgres,
        }
        return {kind for kind, on in enabled.items() if on}

    def settings(self) -> dict[str, Any]:
        """The maintflow settings this run gives every process."""
        return {theirs: getattr(self, mine) for mine, theirs in SETTINGS.items()}

    def profile(self) -> str:
        """ "shipped defaults" when every recovery setting is the one users run."""
        tuned = [k for k, setting in SETTINGS.items() if getattr(self, k) != shipped(setting)]
        return "shipped defaults" if not tuned else "tuned: " + ", ".join(tuned)

    def with_env(self, environ: Mapping[str, str] | None = None) -> ChaosConfig:
        """A copy with every field that has a MAINTFLOW_CHAOS_<FIELD> variable replaced."""
        environ = os.environ if environ is None else environ
        hints = get_type_hints(ChaosConfig)
        changes: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            raw = environ.get(ENV_PREFIX + f.name.upper())
            if raw is not None:
                changes[f.name] = _parse(hints[f.name], raw, f.name)
        return dataclasses.replace(self, **changes)

    def summary(self) -> str:
        return (
            f"{self.schedules} schedules x {self.targets} targets every 1 s "
            f"({self.schedules * self.targets} sessions/s offered), {self.schedulers} schedulers, "
            f"{self.workers} worker processes x {self.worker_threads} threads, 1 API; "
            f"faults for {self.seconds:g} s: leader SIGKILL {_every(self.leader_kill_every_s)}, "
            f"worker SIGKILL {_every(self.worker_kill_every_s)}, "
            f"leader SIGSTOP {'on' if self.freeze_leader else 'off'} "
            f"({self.freeze_s:g} s), Redis restart {'on' if self.restart_redis else 'off'}, "
            f"PostgreSQL restart {'on' if self.restart_postgres else 'off'}; "
            f"lease {self.lease_s:g} s, renew {self.renew_s:g} s, "
            f"reconcile after {self.reconcile_after_s:g} s, heartbeat timeout "
            f"{self.heartbeat_timeout_ms / 1000:g} s ({self.profile()})"
        )


def _every(seconds: float) -> str:
    return f"every ~{seconds:g} s" if seconds > 0 else "off"


def _parse(kind: Any, raw: str, name: str) -> Any:
    if kind is bool:
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"{ENV_PREFIX}{name.upper()}={raw!r}: expected 1/0, true/false")
    return kind(raw)
