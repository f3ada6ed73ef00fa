"""Domain errors → HTTP, in FastAPI's `{"detail": ...}` shape."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

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


def install(app: FastAPI) -> None:
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
