"""Domain errors → HTTP, in FastAPI's `{"detail": ...}` shape."""

from __future__ import annotations

import math
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from maintflow_core.errors import (
    BadRequest,
    Conflict,
    DomainError,
    InvalidField,
    NotFound,
    PermissionDenied,
    TransientError,
)

_STATUS: list[tuple[type[DomainError], int]] = [
    (NotFound, 404),
    (Conflict, 409),
    (BadRequest, 400),
    (PermissionDenied, 403),
    (TransientError, 503),
]


_METHODS = ("DELETE", "GET", "PATCH", "POST", "PUT")


def allowed_methods(app: FastAPI, request: Request) -> list[str]:
    """Every method some route serves at this path. FastAPI makes one route per method, and
    Starlette's 405 names only the methods of the first route that matched the path."""
    return [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL
            for route in app.router.routes
        )
    ]


def printable(value: Any, depth: int = 40) -> Any:
    """`value` made fit for a JSON response: a 422 echoes the input, which may hold half a
    surrogate pair (not UTF-8), NaN (not JSON), or nesting too deep to encode (cut short)."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict | list | tuple) and depth == 0:
        return "..."
    if isinstance(value, dict):
        return {printable(k, depth - 1): printable(v, depth - 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [printable(v, depth - 1) for v in value]
    return value


def _invalid_json(exc: StarletteHTTPException) -> bool:
    """FastAPI answers 400 when reading the JSON body fails other than by a syntax error: bytes
    that are not UTF-8, or nesting too deep for the parser. Both are invalid JSON to a client."""
    return exc.status_code == 400 and isinstance(exc.__cause__, ValueError | RecursionError)


# Raised while opening a connection, before SQLAlchemy wraps anything: the server is down,
# refusing, starting up or shutting down, or out of connection slots.
CONNECT_ERRORS: tuple[type[Exception], ...] = (
    ConnectionError,
    TimeoutError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.TooManyConnectionsError,
)


def _unavailable() -> JSONResponse:
    return JSONResponse(
        status_code=503,
        content={"detail": "database unavailable, retry"},
        headers={"Retry-After": "1"},
    )


async def database_error(_request: Request, exc: Exception) -> Response:
    """A lost or refused database connection is the client's "try again", not a bug: the pool
    has dropped the broken connection(s) and the next request opens a new one."""
    if isinstance(exc, CONNECT_ERRORS):
        return _unavailable()
    assert isinstance(exc, sa_exc.DBAPIError)
    if exc.connection_invalidated or isinstance(
        exc, sa_exc.OperationalError | sa_exc.InterfaceError
    ):
        return _unavailable()
    raise exc  # any other database error is a bug: the 500 handler logs it


def install_database_handlers(app: FastAPI) -> None:
    kinds: list[type[Exception]] = [sa_exc.DBAPIError, *CONNECT_ERRORS]
    for kind in kinds:
        app.add_exception_handler(kind, database_error)


def install(app: FastAPI) -> None:
    install_database_handlers(app)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 405:
            allow = ", ".join(allowed_methods(app, request))
            exc = StarletteHTTPException(405, exc.detail, headers={"Allow": allow})
        if _invalid_json(exc):
            error = {"loc": ["body"], "msg": "JSON decode error", "type": "json_invalid"}
            return JSONResponse(status_code=422, content={"detail": [error]})
        return await http_exception_handler(request, exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        detail = jsonable_encoder(printable(exc.errors()))
        return JSONResponse(status_code=422, content={"detail": detail})

    @app.exception_handler(Exception)
    async def server_error(_request: Request, _exc: Exception) -> JSONResponse:
        # Starlette still re-raises the exception after this, so the server logs the traceback;
        # the client gets FastAPI's shape and nothing of the internals.
        return JSONResponse(status_code=500, content={"detail": "Internal Server Error"})

    @app.exception_handler(DomainError)
    async def domain_error(_request: Request, exc: DomainError) -> JSONResponse:
        if isinstance(exc, InvalidField):
            location = ["header", exc.field] if exc.field == "Idempotency-Key" else ["body"]
            if exc.field == "cursor":
                location = ["query", "cursor"]
            elif location == ["body"]:
                location += exc.field.split(".")
            return JSONResponse(
                status_code=422,
                content={"detail": [{"loc": location, "msg": exc.message, "type": "value_error"}]},
            )
        for kind, status in _STATUS:
            if isinstance(exc, kind):
                return JSONResponse(status_code=status, content={"detail": exc.message})
        return JSONResponse(status_code=400, content={"detail": exc.message})
