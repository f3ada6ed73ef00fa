"""Request dependencies: the app state, a database session per request, and the caller."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

import dramatiq
from fastapi import Depends, Header, HTTPException, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from maintflow_api.ratelimit import RequestLimits
from maintflow_api.streams import StreamHub
from maintflow_core.clock import Clock
from maintflow_core.db.store import Store
from maintflow_core.logging import add_log_field
from maintflow_core.settings import Settings
from maintflow_core.usecases.auth import authenticate
from maintflow_core.usecases.pagination import MAX_LIMIT
from maintflow_core.usecases.principal import Principal


@dataclass
class AppState:
    settings: Settings
    clock: Clock
    store: Store
    engine: AsyncEngine
    open_db: async_sessionmaker[AsyncSession]
    # The broker whose queues /v1/ops/queues reports: Redis's when one is configured, the
    # embedded mode's in-memory one; None: no queues to read.
    broker: dramatiq.Broker | None = None
    # For GET requests, which only read; None: use `open_db` (see Store.read_sessionmaker).
    open_read_db: async_sessionmaker[AsyncSession] | None = None
    limits: RequestLimits | None = None
    # Whose metrics /metrics exports (maintflow_core.metrics.ROLE_PREFIXES): the API's, or every
    # role's in the embedded mode.
    metric_roles: tuple[str, ...] = ("api",)
    # The live notification streams of this process (started with the app).
    streams: StreamHub | None = None


def _state_of(request: Request) -> AppState:
    state: AppState = request.app.state.maintflow
    return state


async def app_state(request: Request) -> AppState:
    # async: FastAPI would run a plain `def` dependency in its thread pool, per request.
    return _state_of(request)


async def db_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The route commits once; anything not committed is rolled back when the session closes.
    GET routes read in autocommit on PostgreSQL: each of their (few) statements is its own
    snapshot, which saves the BEGIN and ROLLBACK round trips of every read request."""
    state = _state_of(request)
    factory = state.open_db
    if request.method == "GET" and state.open_read_db is not None:
        factory = state.open_read_db
    async with factory() as db:
        yield db


State = Annotated[AppState, Depends(app_state)]
DB = Annotated[AsyncSession, Depends(db_session)]
_bearer = HTTPBearer(auto_error=False, description="An API token: `Authorization: Bearer mf_…`")


async def current_principal(
    db: DB, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
    principal = await authenticate(db, credentials.credentials)
    if principal is None:
        raise HTTPException(401, "invalid token", headers={"WWW-Authenticate": "Bearer"})
    add_log_field("team_id", str(principal.team_id))
    return principal


def _role(role: str) -> object:
    async def check(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        principal.require(role)
        return principal

    return Depends(check)


Viewer = Annotated[Principal, Depends(current_principal)]
Engineer = Annotated[Principal, _role("engineer")]
Admin = Annotated[Principal, _role("admin")]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page.")]
Cursor = Annotated[
    str | None, Query(max_length=500, description="`next_cursor` of the previous page.")
]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=r"^[^\x00-\x1f]+$",
        description="Same key and body within 24 h: the first response again; same key with "
        "another body: 422. 1 to 255 characters, no control characters.",
    ),
]
