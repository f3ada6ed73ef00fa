"""All configuration, read from `MAINTFLOW_*` environment variables into one `Settings` object.

Nothing reads settings at import time: entry points build `Settings()` and pass it down; tests build
`Settings(...)` directly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import limits
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

EMBEDDED_DIR = Path(".maintflow")
EMBEDDED_DATABASE_URL = f"sqlite+aiosqlite:///{EMBEDDED_DIR / 'maintflow.db'}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MAINTFLOW_", extra="ignore")

    database_url: str = Field(
        EMBEDDED_DATABASE_URL,
        description="SQLAlchemy URL of the database: postgresql+asyncpg://… in distributed mode, "
        "sqlite+aiosqlite:///… for the embedded mode (the default, a file under ./.maintflow/).",
    )
    redis_url: str | None = Field(
        None,
        description="Redis URL of the Dramatiq broker (redis://host:6379/0). Unset: an in-memory "
        "broker, only valid in the embedded mode.",
    )
    broker_namespace: str = Field(
        "dramatiq", description="Key prefix of the Dramatiq queues in Redis."
    )
    db_pool_size: int = Field(
        19,
        description="Connections an API process keeps open once it has needed them "
        "(PostgreSQL; opened on demand; the live streams' LISTEN connection comes on top, 20 "
        "in all). Workers size their pools by their thread count, the scheduler uses at most 6.",
    )
    db_max_overflow: int = Field(
        0,
        description="Extra connections beyond the pool under burst load, closed again as soon "
        "as they are returned. Requests beyond pool + overflow wait for a connection.",
    )
    log_level: str = Field("INFO", description="Python log level.")
    log_format: Literal["text", "json"] | None = Field(
        None,
        description="`json`: one JSON object per line; `text`: readable lines. Unset: `json` "
        "for `maintflow api`, `scheduler`, `worker`, `migrate` and `admin`, `text` for "
        "`maintflow dev`.",
    )
    metrics_enabled: bool = Field(
        True,
        description="Record Prometheus metrics (`/metrics` of every process). `false` skips every "
        "observation (the benchmark's baseline); `/metrics` then serves only what is not "
        "observed per event.",
    )
    ops_host: str = Field(
        "0.0.0.0",
        description="Address the scheduler's and the workers' ops ports listen on.",
    )
    scheduler_ops_port: int = Field(
        8001,
        description="Port of `maintflow scheduler`'s /metrics, /healthz and /readyz (one per "
        "replica).",
    )
    worker_ops_port: int = Field(
        8002,
        description="Port of `maintflow worker`'s /metrics (the sum over its processes), "
        "/healthz and /readyz.",
    )
    worker_metrics_dir: str | None = Field(
        None,
        description="Directory where a worker's processes write their metrics "
        "(prometheus-client's multiprocess mode), emptied when `maintflow worker` starts. "
        "Unset: a new temporary directory per start.",
    )

    min_schedule_interval_s: float = Field(
        60,
        description="Smallest allowed gap between two fires of one schedule. A 6th (seconds) cron "
        "field is accepted only when its fires are at least this far apart.",
    )
    misfire_grace_s: float = Field(
        60,
        description="A due instant older than this when the scheduler reaches it counts as missed "
        "and follows the schedule's misfire_policy; younger ones simply fire late.",
    )
    scheduler_tick_interval_s: float = Field(
        0.5, description="How often the leader looks for due schedules."
    )
    scheduler_claim_batch: int = Field(
        500, description="Due schedules claimed per transaction in one tick."
    )
    scheduler_lease_s: float = Field(
        8, description="Leader lease length; a dead leader is replaced after at most this long."
    )
    scheduler_renew_interval_s: float = Field(
        2, description="How often the leader renews (and standbys try to take) the lease."
    )
    relay_interval_s: float = Field(
        0.5, description="How often the leader publishes pending outbox rows to the broker."
    )
    reconcile_interval_s: float = Field(
        15, description="How often the leader looks for batches whose fan-out stalled."
    )
    reconcile_after_s: float = Field(
        60,
        description="A fired batch that has made no fan-out progress for this long, and none "
        "of whose messages can still be queued, is driven again (only its missing targets are "
        "re-enqueued).",
    )
    max_catchup_fires: int = Field(
        100, description="run_all misfire policy: at most this many of the newest missed instants."
    )

    worker_threads: int = Field(8, description="Dramatiq worker threads per process.")
    worker_processes: int = Field(1, description="Dramatiq worker processes (`maintflow worker`).")
    actor_time_limit_s: float = Field(300, description="Time limit of one actor run.")
    actor_max_retries: int = Field(
        10, description="Retries of a failing message before it is dead-lettered."
    )
    actor_min_backoff_ms: int = Field(500, description="First retry delay; doubles each retry.")
    actor_max_backoff_ms: int = Field(300_000, description="Largest retry delay.")
    broker_heartbeat_timeout_ms: int = Field(
        10_000,
        description="Redis broker: a worker process silent this long is presumed dead and the "
        "messages it had fetched are requeued (idle and busy workers alike call Redis several "
        "times a second; a process paused longer than this has its messages run again "
        "elsewhere, which the idempotent actors absorb).",
    )
    broker_sweep_interval_s: float = Field(
        1,
        description="How often the scheduler leader runs Dramatiq's dead-worker sweep on every "
        "queue: a killed worker's messages are requeued at most this long after its heartbeat "
        "timeout.",
    )
    broker_maintenance_chance: int = Field(
        10_000,
        description="Redis broker: out of 1,000,000 broker calls, how many also run the "
        "dead-worker sweep (Dramatiq's default is 1,000). A fallback for when no scheduler "
        "runs; the leader's sweep is what bounds recovery.",
    )

    retention_days: int = Field(
        90,
        ge=1,
        description="retention_cleanup deletes finished batches (with their sessions), read "
        "notifications, webhook deliveries and relayed outbox rows older than this many days.",
    )
    retention_chunk_rows: int = Field(
        1000,
        ge=1,
        description="retention_cleanup deletes in chunks of about this many rows, each chunk "
        "its own short transaction (a batch's sessions always go in one chunk with it).",
    )
    system_job_time_limit_s: float = Field(
        3600,
        gt=0,
        description="Time limit of one system job run: a run still `running` this long after "
        "a worker took it up (or after it was started, if none did) lost its worker and is "
        "marked failed.",
    )

    api_keep_alive_s: int = Field(
        75,
        description="How long the API keeps an idle HTTP connection open. Above a load "
        "balancer's idle timeout (often 60 s), so the balancer, not the API, closes first.",
    )
    rate_limit: str = Field(
        "100/2 seconds",
        description="Requests per API token, shared by every API process (in Redis; in memory "
        "in `maintflow dev`): at most this many in any moving window of this length, in the "
        "`limits` library's notation (`100/2 seconds`: 50 a second on average, bursts of 100). "
        "Over it: 429 with Retry-After. Empty: no limit.",
    )
    launch_rate_limit: str = Field(
        "10/2 seconds",
        description="Batch launches and run-nows per API token, counted apart (and also "
        "against `rate_limit`), in the same notation. Empty: no limit of their own.",
    )
    sse_max_streams: int = Field(
        1000,
        description="Live notification streams (`GET /v1/notifications/stream`) one API process "
        "keeps open at once; a connection beyond it is answered 503 with Retry-After.",
    )
    sse_poll_s: float = Field(
        5,
        description="How often an API process reads its open streams' teams' notifications "
        "even when nothing announced any (a safety net: announcements wake streams at once).",
    )
    idempotency_ttl_s: int = Field(86_400, description="How long an Idempotency-Key is remembered.")
    max_targets: int = Field(10_000, description="Most targets in one list or batch.")
    max_body_bytes: int = Field(8 * 1024 * 1024, description="Largest accepted request body.")

    @field_validator("rate_limit", "launch_rate_limit")
    @classmethod
    def _limit_notation(cls, value: str) -> str:
        # Read at start-up (limits.parse raises ValueError), so that a typo stops the process
        # naming the variable.
        if value and limits.parse(value).amount < 1:
            raise ValueError("must allow at least one request")
        return value

    webhook_allow_private: bool = Field(
        False,
        description="Let webhooks reach loopback, private, link-local, metadata and other "
        "non-global addresses (a receiver on the same machine or network). Off: such URLs are "
        "refused at registration (422) and at delivery.",
    )
    webhook_timeout_s: float = Field(
        10,
        gt=0,
        description="Longest one webhook delivery attempt may take, connection included; "
        "a slower receiver's attempt fails with a timeout.",
    )
    webhook_max_attempts: int = Field(
        12,
        ge=1,
        description="Attempts of one webhook delivery before it is marked failed (at the "
        "shipped backoff, its retries span 1.7 to 3.4 hours).",
    )
    webhook_backoff_base_s: float = Field(
        10,
        description="Delay before a webhook delivery's second attempt; it doubles for each "
        "further attempt, up to `MAINTFLOW_WEBHOOK_BACKOFF_MAX_S`, with random jitter "
        "(between half and all of it).",
    )
    webhook_backoff_max_s: float = Field(3600, description="Longest delay between two attempts.")
    webhook_max_pending: int = Field(
        1000,
        ge=1,
        description="Deliveries of one webhook that may wait for a retry at once. A delivery "
        "that fails while that many wait is failed at once, without retries (every event still "
        "gets its first attempt), so a receiver that is down for a day costs bounded work.",
    )
    webhook_concurrency: int = Field(
        64,
        ge=1,
        description="Webhook requests in flight at once per worker process. They run beside "
        "the worker threads, so slow receivers never hold a thread another queue needs.",
    )

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")
