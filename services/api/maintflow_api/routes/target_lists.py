from __future__ import annotations

import uuid
from collections.abc import Awaitable

from fastapi import APIRouter, Response

from maintflow_api.deps import DB, Cursor, Engineer, Limit, State, Viewer
from maintflow_api.etag import READ, WRITTEN, IfMatch, IfNoneMatch, require_match, tagged
from maintflow_api.responses import AUTHED, errors
from maintflow_core.models import TargetList
from maintflow_core.schemas.common import Page
from maintflow_core.schemas.targets import TargetListCreate, TargetListOut
from maintflow_core.usecases import target_lists
from maintflow_core.usecases.pagination import page_of
from maintflow_core.usecases.principal import Principal

router = APIRouter(prefix="/v1/target-lists", tags=["target lists"], responses=AUTHED)


@router.post(
    "",
    status_code=201,
    response_model=TargetListOut,
    responses=errors(400, 403, 409, 413),
    operation_id="target_lists_create",
    summary="Create a target list",
)
async def create_target_list(
    body: TargetListCreate, db: DB, state: State, principal: Engineer
) -> TargetListOut:
    target_list = await target_lists.create_target_list(db, state.clock, principal.team_id, body)
    await db.commit()
    return TargetListOut.model_validate(target_list)


@router.get(
    "",
    response_model=Page[TargetListOut],
    operation_id="target_lists_list",
    summary="List target lists",
)
async def list_target_lists(
    db: DB, principal: Viewer, limit: Limit = 50, cursor: Cursor = None
) -> Page[TargetListOut]:
    rows = await target_lists.list_target_lists(db, principal.team_id, limit, cursor)
    items, next_cursor = page_of(rows, limit, lambda t: (t.created_at, t.id))
    return Page[TargetListOut](
        items=[TargetListOut.model_validate(t) for t in items], next_cursor=next_cursor
    )


@router.get(
    "/{list_id}",
    response_model=TargetListOut,
    responses={**errors(404), **READ},
    operation_id="target_lists_get",
    summary="Read a target list",
)
async def get_target_list(
    list_id: uuid.UUID, db: DB, principal: Viewer, if_none_match: IfNoneMatch = None
) -> Response:
    target_list = await target_lists.get_target_list(db, principal.team_id, list_id)
    return tagged(TargetListOut.model_validate(target_list), if_none_match)


def _locked(db: DB, principal: Principal, list_id: uuid.UUID) -> Awaitable[TargetList]:
    return target_lists.get_target_list(db, principal.team_id, list_id, for_update=True)


@router.put(
    "/{list_id}",
    response_model=TargetListOut,
    responses={**errors(400, 403, 404, 409, 412, 413), **WRITTEN},
    operation_id="target_lists_replace",
    summary="Replace a target list",
)
async def replace_target_list(
    list_id: uuid.UUID,
    body: TargetListCreate,
    db: DB,
    state: State,
    principal: Engineer,
    if_match: IfMatch = None,
) -> Response:
    await require_match(
        if_match, lambda: _locked(db, principal, list_id), TargetListOut.model_validate
    )
    target_list = await target_lists.replace_target_list(
        db, state.clock, principal.team_id, list_id, body
    )
    await db.commit()
    return tagged(TargetListOut.model_validate(target_list))


@router.delete(
    "/{list_id}",
    status_code=204,
    response_class=Response,
    responses=errors(403, 404, 409, 412),
    operation_id="target_lists_delete",
    summary="Delete a target list",
)
async def delete_target_list(
    list_id: uuid.UUID, db: DB, principal: Engineer, if_match: IfMatch = None
) -> Response:
    await require_match(
        if_match, lambda: _locked(db, principal, list_id), TargetListOut.model_validate
    )
    await target_lists.delete_target_list(db, principal.team_id, list_id)
    await db.commit()
    return Response(status_code=204)
