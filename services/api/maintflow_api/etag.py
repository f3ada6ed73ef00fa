"""Entity tags of single resources, for clients that edit carefully: a strong ETag from the
canonical JSON of the response, so no column or migration is needed and any change a client
could see changes the tag. GET honours If-None-Match (304); PATCH/PUT/DELETE honour If-Match
(412 when stale; without it the write proceeds as ever).

A resource's routes apply it so (see routes/flows.py):

    GET:               return tagged(FlowOut..., if_none_match)    responses={..., **READ}
    PATCH/PUT/DELETE:  await require_match(if_match, flows.get_flow, db, team_id, flow_id,
                                           FlowOut.model_validate)
                       before the write, then return tagged(FlowOut...)    responses: 412, WRITTEN
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Protocol, TypeVar

from fastapi import Header, HTTPException
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

Row = TypeVar("Row")
Row_co = TypeVar("Row_co", covariant=True)
IfMatch = Annotated[
    str | None,
    Header(
        alias="If-Match",
        max_length=1000,
        description="Write only if the resource still has one of these ETags (or any, `*`); "
        "else 412. Without it the write proceeds.",
    ),
]
IfNoneMatch = Annotated[
    str | None,
    Header(
        alias="If-None-Match",
        max_length=1000,
        description="Answer 304 without a body when the resource still has one of these ETags.",
    ),
]
_ETAG_HEADER = {
    "ETag": {
        "description": "The version of the resource, for `If-Match` and `If-None-Match`.",
        "schema": {"type": "string"},
    }
}
# The `responses=` additions of a single resource's GET and of its PATCH/PUT.
READ: dict[int | str, dict[str, Any]] = {
    200: {"headers": _ETAG_HEADER},
    304: {"description": "Not modified: `If-None-Match` names the current version."},
}
WRITTEN: dict[int | str, dict[str, Any]] = {200: {"headers": _ETAG_HEADER}}


def etag_of(payload: bytes) -> str:
    return '"' + hashlib.sha256(payload).hexdigest()[:32] + '"'


def _matches(header: str, tag: str, *, weak: bool) -> bool:
    """RFC 9110: `*` or a list of entity tags. If-Match compares strongly (a weak tag never
    matches), If-None-Match weakly (the W/ prefix is ignored)."""
    for candidate in (part.strip() for part in header.split(",")):
        if candidate == "*":
            return True
        if weak:
            candidate = candidate.removeprefix("W/")
        if candidate == tag:
            return True
    return False


def tagged(
    body: BaseModel,
    if_none_match: str | None = None,
    *,
    content: bytes | None = None,
    media_type: str = "application/json",
) -> Response:
    """`body` as JSON with its ETag; 304 when `if_none_match` names that tag. `content`: another
    representation of the same version (CSV), sent with the same tag, which names the version
    whatever form it is read in, so that If-Match works after a read of either."""
    payload = body.model_dump_json().encode()
    tag = etag_of(payload)
    headers = {"ETag": tag}
    if content is not None:
        headers["Vary"] = "Accept"
    if if_none_match is not None and _matches(if_none_match, tag, weak=True):
        return Response(status_code=304, headers=headers)
    return Response(payload if content is None else content, media_type=media_type, headers=headers)


class LockedRead(Protocol[Row_co]):
    """A use-case's read of a team's row: `get_flow(db, team_id, flow_id, for_update=True)`."""

    def __call__(
        self, db: AsyncSession, team_id: uuid.UUID, row_id: uuid.UUID, /, *, for_update: bool
    ) -> Awaitable[Row_co]: ...


async def require_match(
    if_match: str | None,
    read: LockedRead[Row],
    db: AsyncSession,
    team_id: uuid.UUID,
    row_id: uuid.UUID,
    out: Callable[[Row], BaseModel],
) -> None:
    """412 unless `if_match` names the current version of the team's row `row_id`, as `out`
    renders it. The row is read FOR UPDATE in the request's transaction: the check and the
    write that follows are then one, and of two writers sending the same tag the second waits
    for the first's commit and compares against what it wrote. Nothing is read without
    If-Match."""
    if if_match is None:
        return
    row = await read(db, team_id, row_id, for_update=True)
    payload = out(row).model_dump_json().encode()
    if not _matches(if_match, etag_of(payload), weak=False):
        raise HTTPException(
            412, "the resource has changed since that ETag: read it again (If-Match is stale)"
        )
