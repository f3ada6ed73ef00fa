"""The error responses of each route, declared in the OpenAPI document so that it lists every
status a route really answers with. Routes pick theirs with `errors(...)`; FastAPI adds 422 on its
own wherever a route takes parameters or a body."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel
from starlette.responses import Response


class ErrorOut(BaseModel):
    """FastAPI's error shape."""

    detail: str


_DESCRIPTIONS: dict[int, str] = {
    400: "Well-formed but not acceptable (e.g. a flow that is not a maintenance flow), "
    "or a body that cannot be read (not UTF-8).",
    401: "No bearer token, or one that is not valid.",
    403: "The caller's role is too low.",
    404: "No such resource in the caller's team.",
    409: "Conflicts with existing state (a duplicate, an illegal status change, a record "
    "another one depends on: a list a schedule uses, a scheduled flow's type).",
    412: "`If-Match` names a version that is no longer current: read the resource again.",
    413: "The request body is larger than `MAINTFLOW_MAX_BODY_BYTES`.",
    429: "Too many requests with this token: wait `Retry-After` seconds.",
    503: "A dependency (database, broker) is unreachable.",
}

Responses = dict[int | str, dict[str, Any]]


def _integer(description: str) -> dict[str, Any]:
    return {"description": description, "schema": {"type": "integer"}}


# draft-ietf-httpapi-ratelimit-headers-06, and RFC 9110's Retry-After.
_RATE_LIMIT_HEADERS = {
    "Retry-After": _integer("Seconds until a request will be accepted again."),
    "RateLimit-Limit": _integer("Requests allowed in the window."),
    "RateLimit-Remaining": _integer("Requests left in the current window."),
    "RateLimit-Reset": _integer("Seconds until the window frees a request."),
    "RateLimit-Policy": {
        "description": "The limit as `<requests>;w=<window seconds>`.",
        "schema": {"type": "string"},
    },
}


def errors(*codes: int) -> Responses:
    """The `responses=` of a route or router for these statuses."""
    out: Responses = {}
    for code in codes:
        entry: dict[str, Any] = {"model": ErrorOut, "description": _DESCRIPTIONS[code]}
        if code == 429:
            entry["headers"] = _RATE_LIMIT_HEADERS
        if code == 401:
            entry["headers"] = {
                "WWW-Authenticate": {
                    "description": "`Bearer`",
                    "schema": {"type": "string"},
                }
            }
        out[code] = entry
    return out


# Every /v1 route: a token is required, and requests are rate-limited per token.
AUTHED = errors(401, 429)


def serialized(model: BaseModel, status_code: int = 200) -> Response:
    """A model already validated by construction, serialised once by pydantic-core. Returning
    a Response skips FastAPI's second validation against `response_model` (which still
    documents the shape); on list routes that second pass cost more than the query."""
    return Response(model.model_dump_json(), status_code, media_type="application/json")


def transition_table(transitions: Mapping[str, Iterable[str]], statuses: Iterable[str]) -> str:
    """A Markdown table of the status changes a state machine allows, for an operation's
    description, made from the machine itself (so that the two cannot disagree): a row per
    status in `statuses`, a status missing from `transitions` being final."""
    rows = ["| from | to |", "|---|---|"]
    for old in statuses:
        to = ", ".join(f"`{new}`" for new in sorted(transitions.get(old, ())))
        rows.append(f"| `{old}` | {to or 'none (final)'} |")
    return "\n".join(rows)
