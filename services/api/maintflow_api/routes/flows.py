from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response

from maintflow_api.deps import DB, Cursor, Engineer, Limit, State, Viewer
from maintflow_api.etag import READ, WRITTEN, IfMatch, IfNoneMatch, require_match, tagged
from maintflow_api.responses import AUTHED, errors
from maintflow_core.schemas.common import Page, Text
from maintflow_core.schemas.flows import FlowCounts, FlowCreate, FlowOut, FlowType, FlowUpdate
from maintflow_core.usecases import flows
from maintflow_core.usecases.pagination import page_of

router = APIRouter(prefix="/v1/flows", tags=["flows"], responses=AUTHED)


@router.post(
    "",
    status_code=201,
    response_model=FlowOut,
    responses=errors(400, 403, 413),
    operation_id="flows_create",
    summary="Create a flow",
)
async def create_flow(body: FlowCreate, db: DB, state: State, principal: Engineer) -> FlowOut:
    flow = await flows.create_flow(db, state.clock, principal.team_id, body)
    await db.commit()
    return FlowOut.model_validate(flow)


@router.get("", response_model=Page[FlowOut], operation_id="flows_list", summary="List flows")
async def list_flows(
    db: DB,
    principal: Viewer,
    limit: Limit = 50,
    cursor: Cursor = None,
    flow_type: FlowType | None = None,
    q: Annotated[Text | None, Query(max_length=200)] = None,
) -> Page[FlowOut]:
    rows = await flows.list_flows(db, principal.team_id, limit, cursor, flow_type, q)
    items, next_cursor = page_of(rows, limit, lambda f: (f.created_at, f.id))
    return Page[FlowOut](items=[FlowOut.model_validate(f) for f in items], next_cursor=next_cursor)


@router.get(
    "/counts", response_model=FlowCounts, operation_id="flows_counts", summary="Count flows by type"
)
async def count_flows(db: DB, principal: Viewer) -> FlowCounts:
    return FlowCounts(**await flows.count_flows(db, principal.team_id))


@router.get(
    "/{flow_id}",
    response_model=FlowOut,
    responses={**errors(404), **READ},
    operation_id="flows_get",
    summary="Read a flow",
)
async def get_flow(
    flow_id: uuid.UUID, db: DB, principal: Viewer, if_none_match: IfNoneMatch = None
) -> Response:
    return tagged(
        FlowOut.model_validate(await flows.get_flow(db, principal.team_id, flow_id)), if_none_match
    )


@router.patch(
    "/{flow_id}",
    response_model=FlowOut,
    responses={**errors(400, 403, 404, 409, 412, 413), **WRITTEN},
    operation_id="flows_update",
    summary="Change a flow",
)
async def update_flow(
    flow_id: uuid.UUID,
    body: FlowUpdate,
    db: DB,
    state: State,
    principal: Engineer,
    if_match: IfMatch = None,
) -> Response:
    await require_match(
        if_match, flows.get_flow, db, principal.team_id, flow_id, FlowOut.model_validate
    )
    flow = await flows.update_flow(db, state.clock, principal.team_id, flow_id, body)
    await db.commit()
    return tagged(FlowOut.model_validate(flow))


@router.delete(
    "/{flow_id}",
    status_code=204,
    response_class=Response,
    responses=errors(403, 404, 412),
    operation_id="flows_delete",
    summary="Delete a flow",
)
async def delete_flow(
    flow_id: uuid.UUID, db: DB, principal: Engineer, if_match: IfMatch = None
) -> Response:
    await require_match(
        if_match, flows.get_flow, db, principal.team_id, flow_id, FlowOut.model_validate
    )
    await flows.delete_flow(db, principal.team_id, flow_id)
    await db.commit()
    return Response(status_code=204)
