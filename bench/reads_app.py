"""Row 6's baseline app (one uvicorn process, like `maintflow api`): the same two pages the API
serves — 50 batches with status rollups, 50 sessions of a batch — written two other ways:

- `/raw/...`: a bare endpoint, raw asyncpg, one query, dicts to JSON (the floor);
- `/orm/...`: a plain ORM query whose serializer follows lazy-loaded relations (the naive
  version: for batches, one `batch.sessions` load per batch to count statuses).

No auth (the team is a query parameter): the API's auth lookup is part of what is measured.

    uvicorn bench.reads_app:create --factory   (MAINTFLOW_DATABASE_URL names the database)
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import asyncpg
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.responses import Response
from sqlalchemy.orm import DeclarativeBase, Mapped, relationship
from sqlalchemy.orm import Session as OrmSession

from maintflow_core.db.session import create_engine, create_sessionmaker
from maintflow_core.models import Batch, Flow, Session
from maintflow_core.models.sessions import STATUSES
from maintflow_core.schemas.batches import BatchOut, SessionOut
from maintflow_core.settings import Settings
from maintflow_core.usecases.pagination import encode_cursor

PAGE = 50
SESSION_SQL = """
SELECT id, team_id, batch_id, flow_id, target_label, target_notes, status, steps,
       current_step_id, notes, intake, created_at, updated_at, started_at, finished_at
FROM sessions WHERE team_id = $1 AND batch_id = $2
ORDER BY created_at DESC, id DESC LIMIT $3
"""
BATCH_SQL = """
SELECT b.id, b.flow_id, b.schedule_id, b.trigger, b.scheduled_for, b.created_at,
       b.target_count, b.sessions_created, b.ready_at, c.*
FROM (SELECT * FROM batches WHERE team_id = $1
      ORDER BY created_at DESC, id DESC LIMIT $2) b
LEFT JOIN LATERAL (
  SELECT count(*) FILTER (WHERE status = 'pending') AS pending,
         count(*) FILTER (WHERE status = 'in_progress') AS in_progress,
         count(*) FILTER (WHERE status = 'completed') AS completed,
         count(*) FILTER (WHERE status = 'failed') AS failed,
         count(*) FILTER (WHERE status = 'cancelled') AS cancelled
  FROM sessions s WHERE s.batch_id = b.id) c ON true
ORDER BY b.created_at DESC, b.id DESC
"""


class NaiveBase(DeclarativeBase):
    pass


class NaiveFlow(NaiveBase):
    __table__ = Flow.__table__


class NaiveBatch(NaiveBase):
    __table__ = Batch.__table__
    flow: Mapped[NaiveFlow] = relationship(lazy="select")
    sessions: Mapped[list[NaiveSession]] = relationship(back_populates="batch", lazy="select")


class NaiveSession(NaiveBase):
    __table__ = Session.__table__
    batch: Mapped[NaiveBatch] = relationship(back_populates="sessions", lazy="select")
    flow: Mapped[NaiveFlow] = relationship(lazy="select")


def _plain(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _json(content: Any) -> Response:
    return Response(json.dumps(content, default=_plain), media_type="application/json")


def _page(rows: list[Any], key: Any) -> tuple[list[Any], str | None]:
    items = rows[:PAGE]
    if len(rows) <= PAGE or not items:
        return items, None
    return items, encode_cursor(*key(items[-1]))


def create() -> FastAPI:
    settings = Settings()
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        async def init(conn: asyncpg.Connection) -> None:
            await conn.set_type_codec(
                "jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
            )

        dsn = sa.make_url(settings.database_url).set(drivername="postgresql")
        # The same ceiling as the API's SQLAlchemy pool (pool_size + max_overflow).
        state["pool"] = await asyncpg.create_pool(
            dsn.render_as_string(hide_password=False),
            min_size=1,
            max_size=settings.db_pool_size + settings.db_max_overflow,
            init=init,
        )
        engine = create_engine(settings)
        state["sessions"] = create_sessionmaker(engine)
        try:
            yield
        finally:
            await state["pool"].close()
            await engine.dispose()

    app = FastAPI(lifespan=lifespan)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/raw/sessions")
    async def raw_sessions(team_id: uuid.UUID, batch_id: uuid.UUID) -> Response:
        async with state["pool"].acquire() as conn:
            rows = await conn.fetch(SESSION_SQL, team_id, batch_id, PAGE + 1)
        items, cursor = _page(rows, lambda r: (r["created_at"], r["id"]))
        return _json({"items": [dict(r) for r in items], "next_cursor": cursor})

    @app.get("/raw/batches")
    async def raw_batches(team_id: uuid.UUID) -> Response:
        async with state["pool"].acquire() as conn:
            rows = await conn.fetch(BATCH_SQL, team_id, PAGE + 1)
        items, cursor = _page(rows, lambda r: (r["created_at"], r["id"]))
        out = [raw_batch_item(r) for r in items]
        return _json({"items": out, "next_cursor": cursor})

    @app.get("/orm/sessions")
    async def orm_sessions(team_id: uuid.UUID, batch_id: uuid.UUID) -> Response:
        async with state["sessions"]() as db:
            return _json(await db.run_sync(orm_sessions_page, team_id, batch_id))

    @app.get("/orm/batches")
    async def orm_batches(team_id: uuid.UUID) -> Response:
        async with state["sessions"]() as db:
            return _json(await db.run_sync(orm_batches_page, team_id))

    return app


def raw_batch_item(r: asyncpg.Record) -> dict[str, Any]:
    counts = {s: r[s] for s in STATUSES}
    return {
        "batch_id": r["id"],
        "flow_id": r["flow_id"],
        "schedule_id": r["schedule_id"],
        "trigger": r["trigger"],
        "scheduled_for": r["scheduled_for"],
        "created_at": r["created_at"],
        "target_count": r["target_count"],
        "sessions_created": r["sessions_created"],
        "ready_at": r["ready_at"],
        "status_counts": counts,
        "progress": f"{counts['completed']}/{r['target_count']}",
    }


def orm_sessions_page(db: OrmSession, team_id: uuid.UUID, batch_id: uuid.UUID) -> dict[str, Any]:
    rows = list(
        db.scalars(
            sa.select(NaiveSession)
            .where(NaiveSession.team_id == team_id, NaiveSession.batch_id == batch_id)
            .order_by(NaiveSession.created_at.desc(), NaiveSession.id.desc())
            .limit(PAGE + 1)
        )
    )
    items, cursor = _page(rows, lambda s: (s.created_at, s.id))
    out = []
    for s in items:
        item = SessionOut.model_validate(s).model_dump(mode="json")
        # What a serializer with nested relations shows (lazy loads, identity-mapped).
        item["flow_name"] = s.flow.name
        item["batch_trigger"] = s.batch.trigger
        out.append(item)
    return {"items": out, "next_cursor": cursor}


def orm_batches_page(db: OrmSession, team_id: uuid.UUID) -> dict[str, Any]:
    rows = list(
        db.scalars(
            sa.select(NaiveBatch)
            .where(NaiveBatch.team_id == team_id)
            .order_by(NaiveBatch.created_at.desc(), NaiveBatch.id.desc())
            .limit(PAGE + 1)
        )
    )
    items, cursor = _page(rows, lambda b: (b.created_at, b.id))
    out = []
    for b in items:
        counts = Counter(s.status for s in b.sessions)  # one lazy load per batch
        out.append(
            BatchOut(
                batch_id=b.id,
                flow_id=b.flow_id,
                schedule_id=b.schedule_id,
                trigger=b.trigger,  # type: ignore[arg-type]
                scheduled_for=b.scheduled_for,
                created_at=b.created_at,
                target_count=b.target_count,
                sessions_created=b.sessions_created,
                ready_at=b.ready_at,
                status_counts={s: counts.get(s, 0) for s in STATUSES},  # type: ignore[arg-type]
                progress=f"{counts.get('completed', 0)}/{b.target_count}",
            ).model_dump(mode="json")
        )
    return {"items": out, "next_cursor": cursor}
