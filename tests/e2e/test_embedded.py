"""`maintflow dev` as a user runs it: one process, SQLite file, in-memory broker; a seconds-field
schedule made through the API produces batches and notifications; a second start reuses the data;
`maintflow admin` works beside it; Ctrl-C stops it cleanly; nothing fails along the way."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.kit.dev import Dev, created, new_schedule, running_dev
from tests.kit.logs import assert_no_job_failures
from tests.kit.poll import poll_until_sync
from tests.kit.procs import clean_environ, free_port, maintflow_command

__all__ = ["Dev", "created", "running_dev"]  # tests/e2e/test_dev_guards.py imports them here

pytestmark = pytest.mark.e2e
READY_NOTE = "Maintenance run ready: Rotate certs — 2 sessions created"


def db_rows(workdir: Path, sql: str) -> list[Any]:
    with sqlite3.connect(workdir / ".maintflow" / "maintflow.db") as conn:
        return conn.execute(sql).fetchall()


def ready_batches(workdir: Path) -> int:
    sql = "SELECT count(*) FROM batches WHERE ready_at IS NOT NULL AND trigger = 'schedule'"
    return int(db_rows(workdir, sql)[0][0])


def every_batch_ready(workdir: Path) -> bool:
    sql = "SELECT count(*), count(ready_at) FROM batches WHERE trigger = 'schedule'"
    total, ready = db_rows(workdir, sql)[0]
    return bool(total) and total == ready


def test_the_embedded_mode_fires_schedules_and_keeps_its_data(tmp_path: Path) -> None:
    port = free_port()
    with running_dev(tmp_path, port) as dev:
        _flow, _hosts, schedule = new_schedule(
            dev.api, "Rotate certs", ["web-1", "web-2"], "* * * * * */2"
        )
        what = "3 ready scheduled batches"
        poll_until_sync(
            lambda: ready_batches(tmp_path) >= 3, 30, what, every=0.25, detail=dev.proc.tail
        )
        paused = dev.api.post(f"/v1/maintenance-schedules/{schedule['id']}/pause")
        assert paused.status_code == 200, paused.text
        # The CLI acts on the same database while the server runs.
        out = subprocess.run(
            [*maintflow_command(), "admin", "create-team", "Beside"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            env=clean_environ(),
        )
        assert out.returncode == 0, out.stderr
        assert '"token"' in out.stdout
        # Paused: the set of batches is final; wait for the last fan-out to finish.
        what = "every scheduled batch ready"
        poll_until_sync(
            lambda: every_batch_ready(tmp_path), 30, what, every=0.25, detail=dev.proc.tail
        )
    assert dev.exit_code == 0, dev.proc.tail()

    per_batch = db_rows(
        tmp_path,
        "SELECT b.id, count(s.id) FROM batches b LEFT JOIN sessions s "
        "ON s.batch_id = b.id WHERE b.trigger = 'schedule' GROUP BY b.id",
    )
    assert len(per_batch) >= 3 and {n for _b, n in per_batch} == {2}, per_batch
    notes = db_rows(tmp_path, "SELECT batch_id, message FROM notifications")
    assert sorted(b for b, _m in notes) == sorted(b for b, _n in per_batch)
    assert {m for _b, m in notes} == {READY_NOTE}
    assert len(db_rows(tmp_path, "SELECT id FROM teams")) == 2

    with running_dev(tmp_path, port) as again:
        assert again.token == dev.token
        flows = again.api.get("/v1/flows")
        assert flows.status_code == 200, flows.text
        assert [f["name"] for f in flows.json()["items"]] == ["Rotate certs"]
    assert again.exit_code == 0, again.proc.tail()
    assert_no_job_failures(dev.proc.log_text(), "maintflow dev")
