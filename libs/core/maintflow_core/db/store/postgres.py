"""The PostgreSQL store: every raw SQL statement of maintflow is here. A claim's writes are one
statement (a data-modifying CTE over arrays), sessions are COPYed, and the fan-out's per-target
statements are asyncpg prepared statements on autocommitted connections of the worker's own."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from functools import lru_cache
from typing import Any

import asyncpg
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from maintflow_core.db.session import create_engine, create_sessionmaker
from maintflow_core.db.store.base import (
    ClaimedRow,
    SessionWriter,
    Store,
    Wake,
    WorkerStatements,
)
from maintflow_core.records import SESSION_COLUMNS, Advance, Fire, progress_shard

# Everything a worker writes can be derived again from the batch's snapshot: a PostgreSQL crash
# that loses the last few hundred ms of commits leaves a batch short of sessions (or not marked
# ready), which the reconciler re-drives. So the workers skip the WAL flush per commit, which
# otherwise bounds fan-out.
WORKER_SERVER_SETTINGS = {"synchronous_commit": "off"}

_INSTANT = sa.DateTime(timezone=True)

# LISTEN/NOTIFY channel of new notifications; the payload is the team's id.
NOTIFICATIONS_CHANNEL = "maintflow_notifications"
# The listening connection is checked this often (a dead TCP peer raises nothing on its own),
# and reopened this long after it was lost.
_LISTEN_CHECK_S = 10.0
_LISTEN_RETRY_S = 1.0

log = logging.getLogger(__name__)

# (column, element type, JSON?): a fire's batch row, and its outbox row.
_BATCH: tuple[tuple[str, Any, bool], ...] = (
    ("id", sa.Uuid, False),
    ("team_id", sa.Uuid, False),
    ("flow_id", sa.Uuid, False),
    ("schedule_id", sa.Uuid, False),
    ("trigger", sa.Text, False),
    ("scheduled_for", _INSTANT, False),
    ("target_list_id", sa.Uuid, False),
    ("targets", sa.Text, True),
    ("steps", sa.Text, True),
    ("target_count", sa.Integer, False),
    ("sessions_created", sa.Integer, False),
    ("created_at", _INSTANT, False),
)
_OUTBOX: tuple[tuple[str, Any, bool], ...] = (
    ("kind", sa.Text, False),
    ("batch_id", sa.Uuid, False),
    ("payload", sa.Text, True),
    ("created_at", _INSTANT, False),
    ("attempts", sa.Integer, False),
)
_ADVANCE = (("id", sa.Uuid), ("next_run_at", _INSTANT), ("last_run_at", _INSTANT))


def _rows_source(
    prefix: str, alias: str, columns: Sequence[tuple[str, Any, bool]], same: frozenset[str]
) -> tuple[str, list[sa.BindParameter[Any]]]:
    """`<values> FROM unnest(<arrays>) …`, one array per column, except that
    - a column with the same value in every row (`same`: in a claim, the trigger, the counts,
      the instant of creation, the outbox kind…) is one scalar parameter, and
    - a JSON column is one JSON array (encoded in one call, not one per row), whose elements
      are joined to the rows by their position.
    Less to encode and send than one array per column."""
    values, arrays, names, joins, params = [], [], [], [], []
    for name, type_, is_json in columns:
        param = f"{prefix}{name}"
        if param in same:
            value = f"CAST(:{param} AS jsonb)" if is_json else f":{param}"
            params.append(sa.bindparam(param, type_=type_))
        elif is_json:
            # A JSON null element is a row without a value: SQL NULL.
            value = f"NULLIF({alias}_{name}.value, 'null'::jsonb)"
            joins.append(
                f"JOIN jsonb_array_elements(CAST(:{param} AS jsonb)) WITH ORDINALITY"
                f" AS {alias}_{name}(value, n) USING (n)"
            )
            params.append(sa.bindparam(param, type_=sa.Text))
        else:
            value = f"{alias}.{name}"
            arrays.append(f":{param}")
            names.append(name)
            params.append(sa.bindparam(param, type_=postgresql.ARRAY(type_)))
        values.append(value)
    source = (
        f"{', '.join(values)} FROM unnest({', '.join(arrays)}) WITH ORDINALITY"
        f" AS {alias}({', '.join(names)}, n) {' '.join(joins)}"
    )
    return source, params


@lru_cache(maxsize=16)
def _write_fires(same: frozenset[str]) -> sa.TextClause:
    """All of a claim's writes in one statement: the batches (an instant already fired is
    skipped by the partial unique index), the outbox row of each batch actually inserted, and
    the schedules moved on. Arrays instead of many VALUES rows keep it one short round trip
    for 500 fires."""
    batches, batch_params = _rows_source("b_", "f", _BATCH, same)
    messages, message_params = _rows_source("o_", "o", _OUTBOX, same)
    batch_id = ":o_batch_id" if "o_batch_id" in same else "o.batch_id"
    return sa.text(
        f"""
        WITH ins AS (
            INSERT INTO batches ({", ".join(name for name, _t, _j in _BATCH)})
            SELECT {batches}
            ON CONFLICT (schedule_id, scheduled_for) WHERE trigger = 'schedule' DO NOTHING
            RETURNING id
        ), messages AS (
            INSERT INTO outbox ({", ".join(name for name, _t, _j in _OUTBOX)})
            SELECT {messages}
             WHERE {batch_id} IN (SELECT id FROM ins)
        ), moved AS (
            UPDATE maintenance_schedules AS s
               SET next_run_at = u.next_run_at,
                   last_run_at = coalesce(u.last_run_at, s.last_run_at)
              FROM unnest(:a_id, :a_next_run_at, :a_last_run_at)
                   AS u(id, next_run_at, last_run_at)
             WHERE s.id = u.id
        )
        SELECT id FROM ins
        """
    ).bindparams(
        *batch_params,
        *message_params,
        *(sa.bindparam(f"a_{name}", type_=postgresql.ARRAY(type_)) for name, type_ in _ADVANCE),
    )


def _columns(
    prefix: str, rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, Any, bool]]
) -> tuple[dict[str, Any], set[str]]:
    """The parameters of `rows` column by column (a key a row lacks is NULL), and the names of
    those that are one value for every row (see `_rows_source`)."""
    params: dict[str, Any] = {}
    same: set[str] = set()
    for name, _type, is_json in columns:
        values = [row.get(name) for row in rows]
        param = f"{prefix}{name}"
        if len(values) > 1 and values.count(values[0]) == len(values):
            same.add(param)
            params[param] = _json(values[0]) if is_json else values[0]
        else:
            params[param] = json.dumps(values) if is_json else values
    return params, same


# Insert the session from the batch's snapshot and count it in a progress shard in one
# statement, atomic on its own: one round trip, no BEGIN/COMMIT. The session's columns are those
# of `records.session_rows`, taken from the batch server-side (its steps can be large).
_CREATE_SESSION = """
    WITH ins AS (
        INSERT INTO sessions (id, team_id, batch_id, flow_id, target_label, target_notes, status,
                              steps, intake, created_at, updated_at)
        SELECT $1::uuid, b.team_id, b.id, b.flow_id, $3::text, $4::text, 'pending', b.steps,
               b.intake, $5::timestamptz, $5::timestamptz
          FROM batches b
         WHERE b.id = $2::uuid AND b.steps IS NOT NULL
        ON CONFLICT (batch_id, target_label) DO NOTHING
        RETURNING batch_id
    )
    INSERT INTO batch_progress AS p (batch_id, shard, created, updated_at)
    SELECT batch_id, $6::int, 1, $5::timestamptz FROM ins
    ON CONFLICT (batch_id, shard)
        DO UPDATE SET created = p.created + 1, updated_at = excluded.updated_at
    RETURNING created
"""

_COUNTS_COMPLETE = """
    SELECT b.ready_at IS NULL
           AND (SELECT coalesce(sum(p.created), 0) FROM batch_progress p
                 WHERE p.batch_id = $1::uuid) >= b.target_count
      FROM batches b
     WHERE b.id = $1::uuid AND b.steps IS NOT NULL
"""


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


class PostgresStore(Store):
    name = "postgres"

    def worker_engine(self, pool_size: int) -> AsyncEngine:
        # No pre-ping: a connection broken by a database restart fails one message, which is
        # retried; pinging would add a round trip to every one of them.
        return create_engine(
            self.settings,
            pool_pre_ping=False,
            connect_args={"server_settings": WORKER_SERVER_SETTINGS},
            pool_size=pool_size,
            max_overflow=0,
        )

    def session_writer(self, engine: AsyncEngine, pool_size: int) -> SessionWriter:
        return _PostgresSessionWriter(self.settings.database_url, pool_size)

    def read_sessionmaker(self, engine: AsyncEngine) -> async_sessionmaker[AsyncSession] | None:
        # Reads in autocommit: each of a GET's (few) statements is its own snapshot, which
        # saves the BEGIN and ROLLBACK round trips of every read request.
        return create_sessionmaker(engine.execution_options(isolation_level="AUTOCOMMIT"))

    async def write_fires(
        self, db: AsyncSession, fires: Sequence[Fire], advances: Sequence[Advance] = ()
    ) -> list[uuid.UUID]:
        batches, same_batch = _columns("b_", [f.batch for f in fires], _BATCH)
        messages, same_message = _columns("o_", [f.message for f in fires], _OUTBOX)
        params = {
            **batches,
            **messages,
            "a_id": [a.schedule_id for a in advances],
            "a_next_run_at": [a.next_run_at for a in advances],
            "a_last_run_at": [a.last_run_at for a in advances],
        }
        statement = _write_fires(frozenset(same_batch | same_message))
        return list((await db.execute(statement, params)).scalars())

    async def insert_sessions(self, db: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
        if not rows:
            return
        connection = await db.connection()
        raw = await connection.get_raw_connection()
        driver: Any = raw.driver_connection
        # The steps snapshot is the same for every row: encode it once.
        encoded: dict[int, str | None] = {}

        def as_json(value: Any) -> str | None:
            key = id(value)
            if key not in encoded:
                encoded[key] = _json(value)
            return encoded[key]

        records = [
            tuple(
                as_json(row[col]) if col in ("steps", "intake") else row[col]
                for col in SESSION_COLUMNS
            )
            for row in rows
        ]
        await driver.copy_records_to_table("sessions", records=records, columns=SESSION_COLUMNS)

    def conflict_insert(self, db: AsyncSession, table: type[Any]) -> Any:
        return postgresql.insert(table)

    async def announce_notification(self, db: AsyncSession, team_id: uuid.UUID) -> None:
        # NOTIFY is transactional: delivered to the listeners on commit, dropped on rollback.
        await db.execute(
            sa.select(sa.func.pg_notify(NOTIFICATIONS_CHANNEL, str(team_id))),
        )

    @asynccontextmanager
    async def notification_wakeups(self, wake: Wake) -> AsyncIterator[None]:
        """One LISTEN connection of its own (not from a pool: it holds session state), reopened
        whenever it is lost; each reopening wakes every stream (`wake(None)`), which then reads
        whatever was committed while nobody listened."""
        task = asyncio.create_task(self._listen(wake), name="maintflow-notification-listener")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _listen(self, wake: Wake) -> None:
        dsn = make_url(self.settings.database_url).set(drivername="postgresql")

        def heard(_conn: object, _pid: int, _channel: str, payload: str) -> None:
            try:
                wake(uuid.UUID(payload))
            except ValueError:
                wake(None)

        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(dsn.render_as_string(hide_password=False), timeout=10)
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                await conn.add_listener(NOTIFICATIONS_CHANNEL, heard)
                wake(None)  # anything committed before this LISTEN
                while not lost.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(lost.wait(), _LISTEN_CHECK_S)
                    if not lost.is_set():
                        await conn.fetchval("SELECT 1", timeout=_LISTEN_CHECK_S)
                log.warning("notification listener: connection lost; reopening")
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("notification listener: %s; reopening", exc)
            finally:
                if conn is not None:
                    conn.terminate()
            await asyncio.sleep(_LISTEN_RETRY_S)


async def _keep_session_state(conn: asyncpg.Connection) -> None:
    """Pool release hook: the hot path leaves no session state behind (no LISTEN, cursors,
    advisory locks or SETs), so skip asyncpg's default reset query — a round trip per message.
    An open transaction is still rolled back by asyncpg before this runs."""


# A webhook delivery's claim and its outcome: one autocommitted statement each.
_CLAIM_DELIVERY = """
UPDATE webhook_deliveries d
SET status = 'delivering', attempts = d.attempts + 1, next_attempt_at = $2
FROM webhooks w
WHERE d.id = ANY($1::uuid[]) AND d.status = 'queued' AND w.id = d.webhook_id
  AND w.disabled_at IS NULL
RETURNING d.id, d.webhook_id, d.attempts, d.body, w.url, w.secret
"""
_SETTLE_DELIVERY = """
WITH moved AS (
    UPDATE webhook_deliveries
    SET status = $3, last_status_code = $4, last_error = $5, next_attempt_at = $6,
        finished_at = $7
    WHERE id = $1 AND status = 'delivering' AND attempts = $2
    RETURNING id
)
INSERT INTO webhook_attempts (delivery_id, number, started_at, duration_ms, status_code, error)
SELECT id, $2, $8, $9, $4, $10 FROM moved
RETURNING id
"""


class _PostgresStatements:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def claim_deliveries(
        self, delivery_ids: Sequence[uuid.UUID], lease_until: datetime
    ) -> list[ClaimedRow]:
        rows = await self.conn.fetch(_CLAIM_DELIVERY, list(delivery_ids), lease_until)
        return [ClaimedRow(*row) for row in rows]

    async def settle_delivery(self, attempt: dict[str, Any], moved: dict[str, Any]) -> bool:
        settled = await self.conn.fetchval(
            _SETTLE_DELIVERY,
            attempt["delivery_id"],
            attempt["number"],
            moved["status"],
            moved["last_status_code"],
            moved["last_error"],
            moved["next_attempt_at"],
            moved["finished_at"],
            attempt["started_at"],
            attempt["duration_ms"],
            attempt["error"],
        )
        return settled is not None

    async def create_session(
        self, batch_id: uuid.UUID, label: str, notes: str | None, now: datetime
    ) -> bool:
        created = await self.conn.fetchval(
            _CREATE_SESSION, uuid.uuid4(), batch_id, label, notes, now, progress_shard()
        )
        return created is not None

    async def counts_complete(self, batch_id: uuid.UUID) -> bool:
        return bool(await self.conn.fetchval(_COUNTS_COMPLETE, batch_id))


class _PostgresSessionWriter(SessionWriter):
    """Raw asyncpg connections in autocommit, from a pool of the worker's own, so each statement
    is one prepared-statement round trip with no ORM layer, no BEGIN/COMMIT and no reset query
    on release."""

    def __init__(self, database_url: str, pool_size: int) -> None:
        self.dsn = make_url(database_url).set(drivername="postgresql")
        self.pool_size = pool_size
        self._pool: asyncpg.Pool | None = None

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[WorkerStatements]:
        if self._pool is None:
            self._pool = await asyncpg.create_pool(
                self.dsn.render_as_string(hide_password=False),
                min_size=0,
                max_size=self.pool_size,
                server_settings=WORKER_SERVER_SETTINGS,
                reset=_keep_session_state,
                max_inactive_connection_lifetime=300,
            )
        async with self._pool.acquire() as conn:
            yield _PostgresStatements(conn)

    async def dispose(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
