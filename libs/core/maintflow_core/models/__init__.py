"""SQLAlchemy models, one module per aggregate. Importing this package registers every table."""

from maintflow_core.models.batches import Batch, BatchProgress, Notification, Outbox
from maintflow_core.models.flows import Flow
from maintflow_core.models.idempotency import IdempotencyKey
from maintflow_core.models.schedules import MaintenanceSchedule, SchedulerLease
from maintflow_core.models.sessions import Session
from maintflow_core.models.system_jobs import SystemJob, SystemJobRun
from maintflow_core.models.targets import TargetList
from maintflow_core.models.teams import ApiToken, Team, User
from maintflow_core.models.webhooks import Webhook, WebhookAttempt, WebhookDelivery
from maintflow_core.models.windows import MaintenanceWindow, WindowUpdate

__all__ = [
    "ApiToken",
    "Batch",
    "BatchProgress",
    "Flow",
    "IdempotencyKey",
    "MaintenanceSchedule",
    "MaintenanceWindow",
    "Notification",
    "Outbox",
    "SchedulerLease",
    "Session",
    "SystemJob",
    "SystemJobRun",
    "TargetList",
    "Team",
    "User",
    "Webhook",
    "WebhookAttempt",
    "WebhookDelivery",
    "WindowUpdate",
]
