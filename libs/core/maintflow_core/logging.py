"""Logging setup: one line per event, with its ids in `extra`, as JSON lines in distributed mode.

Ids that belong to what a process is working on — the HTTP request id and the team of an API
request, the Dramatiq message id and the batch of an actor run — are bound once with
`bind_log_fields` and added to every line logged meanwhile (an event's own `extra` wins)."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from maintflow_core.settings import Settings

# Record attributes that are not an event's fields (uvicorn adds a colored copy of its message).
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "color_message",
}


# The fields bound for the work at hand. A dict, so that a later step of the same piece of work
# (the API's authentication, which learns the team) can add to what the middleware bound.
_fields: ContextVar[dict[str, Any] | None] = ContextVar("maintflow_log_fields", default=None)


@contextmanager
def bind_log_fields(**fields: Any) -> Iterator[dict[str, Any]]:
    """Add `fields` to every line logged in this context until the block ends. Yields the bound
    dict: what is added to it later shows too."""
    token = _fields.set({**(_fields.get() or {}), **fields})
    try:
        yield _fields.get() or {}
    finally:
        _fields.reset(token)


def add_log_field(name: str, value: Any) -> None:
    """Add one field to the current binding (no-op outside one)."""
    bound = _fields.get()
    if bound is not None:
        bound[name] = value


class BoundFields(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in (_fields.get() or {}).items():
            if key not in record.__dict__:
                setattr(record, key, value)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "event": record.getMessage(),
        }
        data.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD})
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extra = {k: v for k, v in record.__dict__.items() if k not in _STANDARD}
        base = super().format(record)
        return base + ("" if not extra else " " + " ".join(f"{k}={v}" for k, v in extra.items()))


def configure_logging(settings: Settings, default_format: str = "json") -> None:
    """Log to stderr in `MAINTFLOW_LOG_FORMAT`, else `default_format` (json for the distributed
    processes, text for `maintflow dev`)."""
    handler = logging.StreamHandler(sys.stderr)
    if (settings.log_format or default_format) == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    handler.addFilter(BoundFields())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    # APScheduler narrates every job run at INFO; our own events say what matters.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
