"""Idempotency-Key handling for routes that launch work: replay the first response for a
repeated key and request, refuse a repeated key with another request, and store the response in
the same transaction as the work it describes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from maintflow_api.deps import AppState
from maintflow_core.errors import Conflict
from maintflow_core.usecases import idempotency
from maintflow_core.usecases.principal import Principal


async def run_once(
    db: AsyncSession,
    state: AppState,
    principal: Principal,
    scope: str,
    key: str | None,
    status_code: int,
    work: Callable[[], Awaitable[BaseModel]],
    body: BaseModel | None = None,
) -> Response:
    ttl = state.settings.idempotency_ttl_s
    request = ""
    if key is not None:
        idempotency.check_key(key)
        request = idempotency.request_hash(body.model_dump(mode="json") if body else None)
        stored = await idempotency.recall(
            db, state.clock, principal.team_id, scope, key, ttl, request
        )
        if stored is not None:
            return JSONResponse(status_code=stored[0], content=stored[1])
    result = await work()
    if key is not None:
        try:
            await idempotency.remember(
                db,
                state.clock,
                principal.team_id,
                scope,
                key,
                request,
                status_code,
                result.model_dump(mode="json"),
            )
        except Conflict:
            # A concurrent request with the same key won; drop our work, answer with its result
            # (or refuse, if it was another request).
            await db.rollback()
            stored = await idempotency.recall(
                db, state.clock, principal.team_id, scope, key, ttl, request
            )
            assert stored is not None
            return JSONResponse(status_code=stored[0], content=stored[1])
    await db.commit()
    # Serialised by pydantic-core in one call (a 10,000-session launch answers 10,000 items).
    return Response(result.model_dump_json(), status_code, media_type="application/json")
