"""Target lists in and out as CSV. A POST or PUT with a `text/csv` body is turned into the JSON
body the route declares before FastAPI reads it ({"targets": [...]}, with `name` and
`description` from the query), so validation, the OpenAPI schema and the route stay those of
JSON; a bad document is a 422 naming its line. `Accept: text/csv` asks for CSV back."""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

from maintflow_core import targets_csv

_SENT_CSV = "maintflow.csv_body"
_FROM_QUERY = ("name", "description")
EXAMPLE = 'label,notes\r\nweb-01,rack 4\r\nweb-02,"rack 4, top"\r\n'
# The `openapi_extra` of a route that takes CSV too, and the `responses=` of one answering it.
CSV_BODY: dict[str, Any] = {
    "requestBody": {
        "content": {
            # A document, not a JSON string: generators read binary strings as file uploads.
            targets_csv.MEDIA_TYPE: {
                "schema": {"type": "string", "format": "binary"},
                "example": EXAMPLE,
            }
        }
    }
}
CSV_ANSWER: dict[int | str, dict[str, Any]] = {
    200: {"content": {targets_csv.MEDIA_TYPE: {"schema": {"type": "string"}, "example": EXAMPLE}}}
}


def _media_type(value: str | None) -> str:
    return (value or "").split(";", 1)[0].strip().lower()


def sent_csv(request: Request) -> bool:
    return bool(request.scope.get(_SENT_CSV))


def wants_csv(request: Request) -> bool:
    """`Accept` names text/csv before (or without) application/json."""
    accepted = [_media_type(part) for part in request.headers.get("accept", "").split(",")]
    if targets_csv.MEDIA_TYPE not in accepted:
        return False
    json_at = accepted.index("application/json") if "application/json" in accepted else None
    return json_at is None or accepted.index(targets_csv.MEDIA_TYPE) < json_at


async def _as_json(request: Request) -> Request:
    body: dict[str, Any] = {"targets": targets_csv.read_targets(await request.body())}
    body.update({k: request.query_params[k] for k in _FROM_QUERY if k in request.query_params})
    headers = [(k, v) for k, v in request.scope["headers"] if k != b"content-type"]
    scope = {
        **request.scope,
        "headers": [*headers, (b"content-type", b"application/json")],
        _SENT_CSV: True,
    }
    converted = Request(scope, request.receive)
    converted._body = json.dumps(body).encode()  # what Request.body() returns from now on
    return converted


class CsvBodyRoute(APIRoute):
    """The route class of a router whose POST and PUT also take text/csv."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            content_type = _media_type(request.headers.get("content-type"))
            if request.method in ("POST", "PUT") and content_type == targets_csv.MEDIA_TYPE:
                request = await _as_json(request)
            return await handler(request)

        return route
