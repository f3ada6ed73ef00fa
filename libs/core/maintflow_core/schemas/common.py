"""Shared schema pieces: strict request base, list pages, text rules."""

from __future__ import annotations

from typing import Annotated, Generic, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints

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


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Response(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None
