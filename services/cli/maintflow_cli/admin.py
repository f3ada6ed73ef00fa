"""Administrative actions of the CLI."""

from __future__ import annotations

from maintflow_core.clock import SystemClock
from maintflow_core.db.session import create_engine, create_sessionmaker
from maintflow_core.settings import Settings
from maintflow_core.usecases.teams import create_team as create_team_uc


async def create_team(settings: Settings, name: str, email: str | None) -> dict[str, str]:
    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine)() as db, db.begin():
            new = await create_team_uc(db, SystemClock(), name, email)
        return {"team_id": str(new.team.id), "user_id": str(new.admin.id), "token": new.token}
    finally:
        await engine.dispose()
