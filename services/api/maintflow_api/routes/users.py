from __future__ import annotations

import uuid

from fastapi import APIRouter, Response

from maintflow_api.deps import DB, Admin, Cursor, Limit, State, Viewer
from maintflow_api.responses import AUTHED, errors
from maintflow_core.schemas.common import Page
from maintflow_core.schemas.users import UserCreate, UserCreated, UserOut
from maintflow_core.usecases import teams
from maintflow_core.usecases.pagination import page_of

router = APIRouter(prefix="/v1/users", tags=["users"], responses=AUTHED)


@router.get("/me", response_model=UserOut, operation_id="users_me", summary="The caller")
async def me(db: DB, principal: Viewer) -> UserOut:
    user = await teams.get_user(db, principal.team_id, principal.user_id)
    return UserOut.model_validate(user)


@router.post(
    "",
    status_code=201,
    response_model=UserCreated,
    responses=errors(400, 403, 409, 413),
    operation_id="users_create",
    summary="Create a user and their token",
)
async def create_user(body: UserCreate, db: DB, state: State, principal: Admin) -> UserCreated:
    user, token = await teams.create_user(db, state.clock, principal.team_id, body.email, body.role)
    await db.commit()
    return UserCreated(
        id=user.id, email=user.email, role=body.role, team_id=user.team_id, token=token
    )


@router.get(
    "",
    response_model=Page[UserOut],
    responses=errors(403),
    operation_id="users_list",
    summary="List the team's users",
)
async def list_users(
    db: DB, principal: Admin, limit: Limit = 50, cursor: Cursor = None
) -> Page[UserOut]:
    rows = await teams.list_users(db, principal.team_id, limit, cursor)
    items, next_cursor = page_of(rows, limit, lambda u: (u.created_at, u.id))
    return Page[UserOut](items=[UserOut.model_validate(u) for u in items], next_cursor=next_cursor)


@router.delete(
    "/{user_id}",
    status_code=204,
    response_class=Response,
    responses=errors(403, 404),
    operation_id="users_delete",
    summary="Delete a user (their tokens stop working)",
)
async def delete_user(user_id: uuid.UUID, db: DB, principal: Admin) -> Response:
    await teams.delete_user(db, principal.team_id, user_id)
    await db.commit()
    return Response(status_code=204)
