"""The workers' broker: maintflow's broker (maintflow_broker) with the actors declared on it."""

from __future__ import annotations

import dramatiq

from maintflow_broker.brokers import new_broker
from maintflow_core.settings import Settings
from maintflow_workers.actors import declare


def build_broker(settings: Settings, *, stub: bool | None = None) -> dramatiq.Broker:
    """A broker with maintflow's actors declared, made Dramatiq's global broker (the one actors
    send through). In-memory when `stub` (default: when no Redis URL is set)."""
    broker = new_broker(settings, stub=stub)
    declare(broker, settings)
    return broker
