from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from maintflow_api.csv_body import CSV_ANSWER, CSV_BODY, CsvBodyRoute, sent_csv, wants_csv
from maintflow_api.deps import DB, Cursor, Engineer, Limit, State, Viewer
from maintflow_api.etag import READ, WRITTEN, IfMatch, IfNoneMatch, require_match, tagged
from maintflow_api.responses import AUTHED, errors
from maintflow_core import targets_csv
from maintflow_core.errors import InvalidField
from maintflow_core.schemas.common import Name, Page
from maintflow_core.schemas.targets import (
    TargetListCreate,
    TargetListEdit,
    TargetListOut,
    TargetListReplace,
)
from maintflow_core.usecases import target_lists
from maintflow_core.usecases.pagination import page_of

router = APIRouter(
    prefix="/v1/target-lists",
    tags=["target lists"],
    responses=AUTHED,
    route_class=CsvBodyRoute,
)
CSV_RULES = """A `text/csv` body is taken too: a `label,notes` header (or just `label`), then one
target per line; UTF-8 with or without a byte-order mark; fields quoted as in RFC 4180. Bad
CSV (encoding, header, a label twice, a field outside the rules) is a 422 naming the line."""
_out = TargetListOut.model_validate  # the resource as its routes answer it (and tag it)
CsvName = Annotated[
    Name | None,
    Query(description="With a `text/csv` body: the list's name (on PUT: absent keeps it)."),
]


def _name_from_query(request: Request, name: str | None) -> None:
    if name is not None and not sent_csv(request):
        raise InvalidField("name", "?name= names a list sent as text/csv; JSON bodies carry it")


@router.post(
    "",
    status_code=201,
    response_model=TargetListOut,
    responses=errors(400, 403, 409, 413),
    operation_id="target_lists_create",
    summary="Create a target list",
    description=f"{CSV_RULES}\n\nA CSV body takes the list's name from `?name=`.",
    openapi_extra=CSV_BODY,
)
async def create_target_list(
    request: Request,
    body: TargetListCreate,
    db: DB,
    state: State,
    principal: Engineer,
    name: CsvName = None,
) -> TargetListOut:
    _name_from_query(request, name)
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
    responses={**errors(404), **READ, **CSV_ANSWER},
    operation_id="target_lists_get",
    summary="Read a target list (JSON, or CSV with `Accept: text/csv`)",
)
async def get_target_list(
    request: Request,
    list_id: uuid.UUID,
    db: DB,
    principal: Viewer,
    if_none_match: IfNoneMatch = None,
) -> Response:
    target_list = TargetListOut.model_validate(
        await target_lists.get_target_list(db, principal.team_id, list_id)
    )
    if not wants_csv(request):
        return tagged(target_list, if_none_match)
    rows = [t.model_dump(exclude_none=True) for t in target_list.targets]
    csv = targets_csv.write_targets(rows)
    return tagged(target_list, if_none_match, content=csv, media_type=targets_csv.MEDIA_TYPE)


@router.put(
    "/{list_id}",
    response_model=TargetListOut,
    responses={**errors(400, 403, 404, 409, 412, 413), **WRITTEN},
    operation_id="target_lists_replace",
    summary="Replace a target list",
    description=f"{CSV_RULES}\n\nA CSV body replaces the targets and keeps the description "
    "(and the name, unless `?name=` gives one).",
    openapi_extra=CSV_BODY,
)
async def replace_target_list(
    request: Request,
    list_id: uuid.UUID,
    body: TargetListReplace,
    db: DB,
    state: State,
    principal: Engineer,
    if_match: IfMatch = None,
    name: CsvName = None,
) -> Response:
    _name_from_query(request, name)
    if body.name is None and not sent_csv(request):
        raise InvalidField("name", "required in a JSON body")
    await require_match(
        if_match, target_lists.get_target_list, db, principal.team_id, list_id, _out
    )
    target_list = await target_lists.replace_target_list(
        db, state.clock, principal.team_id, list_id, body, keep_description=sent_csv(request)
    )
    await db.commit()
    return tagged(TargetListOut.model_validate(target_list))


@router.patch(
    "/{list_id}",
    response_model=TargetListOut,
    responses={**errors(400, 403, 404, 409, 412, 413), **WRITTEN},
    operation_id="target_lists_update",
    summary="Add, remove and re-annotate some targets",
    description="Removes, then updates, then adds, all or nothing. A label to remove or update "
    "that is not in the list: 422 naming it; a label to add that is: 409 naming it. The list "
    "keeps 1 to 10,000 targets.",
)
async def edit_target_list(
    list_id: uuid.UUID,
    body: TargetListEdit,
    db: DB,
    state: State,
    principal: Engineer,
    if_match: IfMatch = None,
) -> Response:
    await require_match(
        if_match, target_lists.get_target_list, db, principal.team_id, list_id, _out
    )
    target_list = await target_lists.edit_target_list(
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
        if_match, target_lists.get_target_list, db, principal.team_id, list_id, _out
    )
    await target_lists.delete_target_list(db, principal.team_id, list_id)
    await db.commit()
    return Response(status_code=204)
