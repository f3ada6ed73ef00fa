"""Shared schema pieces: strict request base, list pages, text rules."""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Generic, TypeVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    StringConstraints,
    ValidationError,
    field_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

T = TypeVar("T")


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


Text = Annotated[str, AfterValidator(_no_nul)]
Name = Annotated[
    str,
    StringConstraints(min_length=1, max_length=200),
    AfterValidator(_no_nul),
    AfterValidator(_not_blank),
]
Label = Annotated[
    str,
    StringConstraints(min_length=1, max_length=255),
    AfterValidator(_no_nul),
    AfterValidator(_not_blank),
]
Notes = Annotated[str, StringConstraints(max_length=500), AfterValidator(_no_nul)]
Description = Annotated[str, StringConstraints(max_length=10_000), AfterValidator(_no_nul)]


MAX_JSON_DEPTH = 32


def storable(value: Any) -> Any:
    """`value` if PostgreSQL can store it as text or jsonb and the API can send it back, else
    ValueError saying why: JSON can spell a NUL (`\\u0000`), half a surrogate pair (`\\ud800`)
    and, as Python reads it, NaN or Infinity, none of which can be stored; and free-form objects
    nested deeper than MAX_JSON_DEPTH could be stored but not serialised again."""
    _check(value, MAX_JSON_DEPTH)
    return value


def _check(value: Any, depth: int) -> None:
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("must not contain NUL characters")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("must not contain unpaired UTF-16 surrogates") from None
    elif isinstance(value, float) and not math.isfinite(value):
        raise ValueError("numbers must be finite")
    elif isinstance(value, dict | list | tuple):
        if depth == 0:
            raise ValueError(f"must not nest objects and arrays deeper than {MAX_JSON_DEPTH}")
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            _check(key, depth - 1)
            _check(item, depth - 1)


# Far enough from datetime.min/max that converting to any UTC offset (at most ±26 h) works.
_EARLIEST = date.min + timedelta(days=2)
_LATEST = date.max - timedelta(days=2)


def _within_calendar(value: datetime) -> datetime:
    if not _EARLIEST <= value.date() <= _LATEST:
        raise ValueError(f"must lie between {_EARLIEST} and {_LATEST}")
    return value


_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def _date_time_text(value: Any) -> Any:
    """Only date-time text (RFC 3339, or ISO 8601 without an offset where a field allows a
    wall time): pydantic would also read numbers, and strings of digits, as Unix times."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _DATE_TIME.match(value):
        raise ValueError("must be an RFC 3339 date-time, e.g. 2026-06-01T09:00:00+02:00")
    return value


Instant = Annotated[datetime, BeforeValidator(_date_time_text), AfterValidator(_within_calendar)]


def _utc_if_aware(value: datetime) -> datetime:
    return value.astimezone(UTC) if value.tzinfo is not None else value


# Stored instants: answered in UTC by every route, the one that took them included.
UtcInstant = Annotated[Instant, AfterValidator(_utc_if_aware)]
AwareInstant = Annotated[
    AwareDatetime, BeforeValidator(_date_time_text), AfterValidator(_within_calendar)
]


def one_of(model: BaseModel, names: tuple[str, ...], message: str, *, required: bool) -> None:
    """Exactly one (`required`) or at most one of the fields `names` given, else a validation
    error on each field concerned, so that the 422 names them: all of them when none was given,
    the given ones when several were."""
    given = [name for name in names if getattr(model, name) is not None]
    if len(given) == 1 or (not given and not required):
        return
    raise ValidationError.from_exception_data(
        type(model).__name__,
        [
            InitErrorDetails(
                type=PydanticCustomError("one_of", message),
                loc=(name,),
                input=getattr(model, name),
            )
            for name in given or names
        ],
    )


class Request(BaseModel):
    # Enum fields hold their plain string values: core code and the database see strings.
    model_config = ConfigDict(extra="forbid", use_enum_values=True)

    # Every field of every request: refused with a 422 naming it rather than a 500 from the
    # database. Nested request models check their own fields.
    _storable = field_validator("*")(storable)


class Response(BaseModel):
    model_config = ConfigDict(from_attributes=True, use_enum_values=True)


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None
