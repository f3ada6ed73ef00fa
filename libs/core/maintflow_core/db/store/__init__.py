"""The store (see `base`) and the one place that picks an implementation from the settings.
Entry points call `open_store` once and pass the store in."""

from __future__ import annotations

from sqlalchemy.engine import make_url

from maintflow_core.db.store.base import (
    DeliveryStatements,
    SessionStatements,
    SessionWriter,
    Store,
    WorkerStatements,
)
from maintflow_core.db.store.portable import PortableStore
from maintflow_core.db.store.postgres import PostgresStore
from maintflow_core.settings import Settings

__all__ = [
    "DeliveryStatements",
    "PortableStore",
    "PostgresStore",
    "SessionStatements",
    "SessionWriter",
    "Store",
    "WorkerStatements",
    "open_store",
]


def open_store(settings: Settings) -> Store:
    """PostgreSQL gets the PostgreSQL store; every other database the portable one."""
    if make_url(settings.database_url).get_backend_name() == "postgresql":
        return PostgresStore(settings)
    return PortableStore(settings)
