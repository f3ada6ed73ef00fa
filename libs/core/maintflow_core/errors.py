"""Domain errors. Core raises these; each transport translates them at its edge (HTTP status,
retry)."""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error the domain raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(DomainError):
    """The resource does not exist, or belongs to another team (answered the same way)."""


class Conflict(DomainError):
    """The change conflicts with existing state (a duplicate name, a second schedule for a flow)."""


class IllegalTransition(Conflict):
    """A status change that the state machine does not allow."""


class BadRequest(DomainError):
    """The request is well-formed but not acceptable (e.g. a flow of the wrong type)."""


class InvalidField(DomainError):
    """A field's value is invalid; `field` names it as a path (e.g. "cron_expression")."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class InvalidCron(InvalidField):
    """A cron expression that cannot be parsed, never fires, or fires more often than allowed."""

    def __init__(self, message: str, field: str = "cron_expression") -> None:
        super().__init__(field, message)


class InvalidTimezone(InvalidField):
    """A timezone that is not an IANA name known to zoneinfo."""

    def __init__(self, message: str, field: str = "timezone") -> None:
        super().__init__(field, message)


class PermissionDenied(DomainError):
    """The caller's role is too low for this action."""


class TransientError(DomainError):
    """A failure worth retrying (the database or broker was briefly unreachable)."""
