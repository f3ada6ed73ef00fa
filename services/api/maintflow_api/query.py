"""Unknown query parameters are a 422 naming each one, so that a misspelt filter never answers
with unfiltered data. One dependency for the whole app: it compares the request's query with the
parameters its route declares (its own and its dependencies')."""

from __future__ import annotations

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute


def declared_query(route: APIRoute) -> set[str]:
    # A walk over a handful of dependants, only for requests that have a query: not worth a
    # cache (and routes are not hashable).
    names: set[str] = set()
    pending: list[Dependant] = [route.dependant]
    while pending:
        dependant = pending.pop()
        names.update(field.alias for field in dependant.query_params)
        pending.extend(dependant.dependencies)
    return names


async def known_query_only(request: Request) -> None:
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or not request.query_params:
        return
    declared = declared_query(route)
    unknown = [name for name in request.query_params if name not in declared]
    if not unknown:
        return
    takes = ", ".join(sorted(declared)) or "none"
    raise RequestValidationError(
        [
            {
                "type": "extra_forbidden",
                "loc": ("query", name),
                "msg": f"unknown query parameter; this route takes: {takes}",
                "input": request.query_params[name],
            }
            for name in unknown
        ]
    )
