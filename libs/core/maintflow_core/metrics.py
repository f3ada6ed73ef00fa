"""Every Prometheus metric of maintflow, defined once, here (docs/operations.md says what each
means and what to do when it moves).

Rules: every name starts with `maintflow_` and carries its unit (`_seconds`, `_total`, `_rows`,
`_messages`); every label has a bounded set of values, pre-initialised where they are known so
a series exists (at 0) before its first event and `rate()`/`increase()` see the first one.
Dramatiq's own metrics (`dramatiq_*`, per actor and queue) come from its Prometheus middleware in
the worker processes; they are not redefined here.

Recording goes through the small functions below, so `MAINTFLOW_METRICS_ENABLED=false` turns
every hot-path observation into one attribute test (see `configure`).

In a worker process, `maintflow worker` sets `PROMETHEUS_MULTIPROC_DIR` before anything imports
prometheus_client, so these metrics are written to that directory and the worker's ops port
serves the sum over its processes. Gauges say how to combine processes (`multiprocess_mode`);
elsewhere that argument is ignored.

Not here yet: maintenance-window transitions and system-job runs (their due-work sources do not
exist yet; they get a counter each when they land)."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import Counter, Gauge, Histogram

# ---- scheduler ---------------------------------------------------------------------------------

SCHEDULER_IS_LEADER = Gauge(
    "maintflow_scheduler_is_leader",
    "1 while this scheduler replica holds the lease, else 0 (one series per replica).",
    multiprocess_mode="liveall",
)
SCHEDULER_LEASE_EPOCH = Gauge(
    "maintflow_scheduler_lease_epoch",
    "Epoch of the lease this replica last held (it increases by one at every change of leader).",
    multiprocess_mode="liveall",
)
SCHEDULER_TICK_DURATION = Histogram(
    "maintflow_scheduler_tick_duration_seconds",
    "Wall time of one leader tick (every due-work source's claim passes and the relay after).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
SCHEDULER_CLAIMED = Counter(
    "maintflow_scheduler_claimed_total",
    "Due rows locked by the leader's claim passes, by due-work source.",
    ["source"],
)
FIRE_OUTCOMES = ("fired", "duplicate", "missed")
SCHEDULER_FIRES = Counter(
    "maintflow_scheduler_fires_total",
    "Instants handled by the leader, by due-work source and outcome: fired (a batch created), "
    "duplicate (another claimer had created it), missed (a row whose missed instants went "
    "through its misfire policy).",
    ["source", "outcome"],
)
SCHEDULER_FIRE_LAG = Histogram(
    "maintflow_scheduler_fire_lag_seconds",
    "How late each instant was claimed: from its scheduled instant to the claim that wrote its "
    "batch row.",
    ["source"],
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 3600),
)
OUTBOX_PENDING = Gauge(
    "maintflow_outbox_pending_rows",
    "Outbox rows not yet published to the broker (exported by the leader only).",
    multiprocess_mode="max",
)
OUTBOX_OLDEST_AGE = Gauge(
    "maintflow_outbox_oldest_pending_age_seconds",
    "Age of the oldest outbox row not yet published, 0 when none (leader only).",
    multiprocess_mode="max",
)
OUTBOX_RELAYED = Counter(
    "maintflow_outbox_relayed_messages_total", "Outbox rows published to the broker."
)
RECONCILER_REDRIVES = Counter(
    "maintflow_reconciler_redriven_batches_total",
    "Batches the reconciler drove again because their fan-out stalled.",
)

# ---- queues (read from Redis by the scheduler leader, exported once) ----------------------------

QUEUE_DEPTH = Gauge(
    "maintflow_queue_messages",
    "Messages waiting in a Dramatiq queue (leader only).",
    ["queue"],
    multiprocess_mode="max",
)
QUEUE_DELAYED = Gauge(
    "maintflow_queue_delayed_messages",
    "Messages waiting in a queue's delay (retry) queue (leader only).",
    ["queue"],
    multiprocess_mode="max",
)
QUEUE_DEAD = Gauge(
    "maintflow_queue_dead_letter_messages",
    "Messages in a queue's dead-letter set: retries exhausted (leader only).",
    ["queue"],
    multiprocess_mode="max",
)

# ---- workers -----------------------------------------------------------------------------------

SESSIONS_CREATED = Counter(
    "maintflow_sessions_created_total", "Sessions created by the fan-out (one per target)."
)
FANOUT_DURATION = Histogram(
    "maintflow_fanout_duration_seconds",
    "Per batch: from the batch row's creation to its last session (ready).",
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900),
)
NOTIFICATIONS = Counter(
    "maintflow_notifications_total",
    "Notifications raised by this process (inbox rows written in the raising transaction).",
    ["event"],
)
SYSTEM_JOB_STATUSES = ("success", "failed")
SYSTEM_JOB_RUNS = Counter(
    "maintflow_system_job_runs_total",
    "System-job runs finished, by status (a run whose worker died counts as failed when the "
    "leader marks it lost).",
    ["job", "status"],
)
WEBHOOK_OUTCOMES = ("delivered", "failed", "gave_up")
WEBHOOK_DELIVERIES = Counter(
    "maintflow_webhook_deliveries_total",
    "Webhook delivery attempts by outcome: delivered (2xx), failed (will be retried), gave_up "
    "(retries exhausted).",
    ["outcome"],
)

# ---- API ---------------------------------------------------------------------------------------

HTTP_STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")
API_REQUESTS = Counter(
    "maintflow_api_http_requests_total",
    "HTTP requests answered, by route template (`/v1/flows/{flow_id}`; `(unmatched)` for a "
    "path no route matched), method and status class.",
    ["route", "method", "status"],
)
API_LATENCY = Histogram(
    "maintflow_api_http_request_duration_seconds",
    "Time to answer an HTTP request, by route template.",
    ["route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
SSE_STREAMS = Gauge(
    "maintflow_api_sse_streams_open",
    "Server-sent-event streams open on this API process.",
    multiprocess_mode="livesum",
)

# ---- every process ----------------------------------------------------------------------------

READY = Gauge(
    "maintflow_readiness_ok",
    "Result of this process's last /readyz answer, per dependency (database, broker): 1 "
    "reachable, 0 not. Fresh as long as something probes /readyz (Kubernetes, the image's "
    "HEALTHCHECK).",
    ["check"],
    multiprocess_mode="mostrecent",
)

# ---- what each role exports ---------------------------------------------------------------------

# Every process defines every metric above (this module is imported everywhere), but exports only
# its role's families (by name prefix; prometheus-client names a counter's family without
# `_total`): a worker must not export a scheduler's `is_leader` at 0, nor the API a queue depth.
# `maintflow dev` runs every role. The Python runtime's own (`process_`, `python_`) go along.
COMMON_PREFIXES = ("maintflow_readiness_", "process_", "python_")
ROLE_PREFIXES = {
    "api": ("maintflow_api_", "maintflow_notifications"),
    "scheduler": (
        "maintflow_scheduler_",
        "maintflow_outbox_",
        "maintflow_reconciler_",
        "maintflow_queue_",
        "maintflow_notifications",
        "maintflow_system_job_",
    ),
    "worker": (
        "maintflow_sessions_",
        "maintflow_fanout_",
        "maintflow_notifications",
        "maintflow_webhook_",
        "maintflow_system_job_",
        "dramatiq_",
    ),
}
ROLES = tuple(ROLE_PREFIXES)


def exported_prefixes(roles: Iterable[str]) -> tuple[str, ...]:
    return COMMON_PREFIXES + tuple(p for role in roles for p in ROLE_PREFIXES[role])


# ---- recording ---------------------------------------------------------------------------------

_enabled = True


def configure(enabled: bool) -> None:
    """Record observations or not (`MAINTFLOW_METRICS_ENABLED`); set once by each entry point."""
    global _enabled
    _enabled = enabled


def enabled() -> bool:
    return _enabled


def preinit_scheduler(sources: Iterable[str]) -> None:
    for source in sources:
        SCHEDULER_CLAIMED.labels(source)
        SCHEDULER_FIRE_LAG.labels(source)
        for outcome in FIRE_OUTCOMES:
            SCHEDULER_FIRES.labels(source, outcome)
    SCHEDULER_IS_LEADER.set(0)


def preinit_workers(notification_events: Iterable[str]) -> None:
    for event in notification_events:
        NOTIFICATIONS.labels(event)
    for outcome in WEBHOOK_OUTCOMES:
        WEBHOOK_DELIVERIES.labels(outcome)


def claim_observed(
    source: str, claimed: int, fired: int, duplicates: int, missed: int, lags: Iterable[float]
) -> None:
    if not _enabled:
        return
    SCHEDULER_CLAIMED.labels(source).inc(claimed)
    fires = SCHEDULER_FIRES
    for outcome, n in (("fired", fired), ("duplicate", duplicates), ("missed", missed)):
        if n:
            fires.labels(source, outcome).inc(n)
    histogram = SCHEDULER_FIRE_LAG.labels(source)
    for lag in lags:
        histogram.observe(lag)


def tick_observed(seconds: float) -> None:
    if _enabled:
        SCHEDULER_TICK_DURATION.observe(seconds)


def relayed(n: int) -> None:
    if _enabled and n:
        OUTBOX_RELAYED.inc(n)


def redriven(n: int) -> None:
    if _enabled and n:
        RECONCILER_REDRIVES.inc(n)


def leadership(is_leader: bool, epoch: int | None) -> None:
    SCHEDULER_IS_LEADER.set(1 if is_leader else 0)
    if epoch is not None:
        SCHEDULER_LEASE_EPOCH.set(epoch)


def queues_observed(stats: Iterable[tuple[str, int, int, int]] | None) -> None:
    """(queue, depth, delayed, dead) per queue; None: this replica does not lead, so it exports
    no queue series (the leader does)."""
    for gauge in (QUEUE_DEPTH, QUEUE_DELAYED, QUEUE_DEAD):
        if stats is None:
            gauge.clear()
    for queue, depth, delayed, dead in stats or ():
        QUEUE_DEPTH.labels(queue).set(depth)
        QUEUE_DELAYED.labels(queue).set(delayed)
        QUEUE_DEAD.labels(queue).set(dead)


def outbox_observed(pending: int | None, oldest_age_s: float) -> None:
    """None: not the leader; its gauges read 0 so that a sum over replicas is the leader's."""
    OUTBOX_PENDING.set(pending or 0)
    OUTBOX_OLDEST_AGE.set(oldest_age_s if pending else 0)


def sessions_created(n: int = 1) -> None:
    if _enabled:
        SESSIONS_CREATED.inc(n)


def batch_ready(fanout_seconds: float) -> None:
    if _enabled:
        FANOUT_DURATION.observe(max(fanout_seconds, 0.0))


def notification_written(event: str) -> None:
    if _enabled:
        NOTIFICATIONS.labels(event).inc()


def readiness_observed(checks: dict[str, str]) -> None:
    for check, result in checks.items():
        READY.labels(check).set(1 if result.startswith("ok") else 0)


def http_request(route: str, method: str, status: int, seconds: float) -> None:
    if _enabled:
        API_REQUESTS.labels(route, method, f"{status // 100}xx").inc()
        API_LATENCY.labels(route).observe(seconds)


def system_job_run(job: str, status: str) -> None:
    """A system-job run finished (usecases.system_jobs.finish); status in SYSTEM_JOB_STATUSES."""
    if _enabled:
        SYSTEM_JOB_RUNS.labels(job, status).inc()


def preinit_system_jobs(jobs: Iterable[str]) -> None:
    for job in jobs:
        for status in SYSTEM_JOB_STATUSES:
            SYSTEM_JOB_RUNS.labels(job, status)


def webhook_delivery(outcome: str) -> None:
    """An attempt recorded (usecases.webhook_delivery.record); outcome in WEBHOOK_OUTCOMES."""
    if _enabled:
        WEBHOOK_DELIVERIES.labels(outcome).inc()
