"""`maintflow dev` as a user runs it: one process, SQLite file, in-memory broker; a seconds-field
schedule made through the API produces batches and notifications; a second start reuses the data;
`maintflow admin` works beside it; Ctrl-C stops it cleanly."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.e2e
MAINTFLOW = [sys.executable, "-c", "from maintflow_cli.main import main; main()"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_dev(workdir: Path, port: int) -> tuple[subprocess.Popen[bytes], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAINTFLOW_")} | {
        "MAINTFLOW_MIN_SCHEDULE_INTERVAL_S": "1"
    }
    log = (workdir / "dev.log").open("ab")
    proc = subprocess.Popen(
        [*MAINTFLOW, "dev", "--port", str(port)], cwd=workdir, env=env, stdout=log, stderr=log
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        text = (workdir / "dev.log").read_text(errors="replace")
        for line in text.splitlines():
            if line.strip().startswith("token:"):
                token = line.split()[-1]
                wait_http(port, deadline)
                return proc, token
        assert proc.poll() is None, text
        time.sleep(0.1)
    proc.kill()
    raise AssertionError((workdir / "dev.log").read_text())


def wait_http(port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError("maintflow dev printed its token but never answered /healthz")


def stop(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise


def db_rows(workdir: Path, sql: str) -> list[Any]:
    with sqlite3.connect(workdir / ".maintflow" / "maintflow.db") as conn:
        return conn.execute(sql).fetchall()


def test_the_embedded_mode_fires_schedules_and_keeps_its_data(tmp_path: Path) -> None:
    port = free_port()
    proc, token = start_dev(tmp_path, port)
    try:
        api = httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"}
        )
        flow = api.post(
            "/v1/flows",
            json={
                "name": "Rotate certs",
                "flow_type": "maintenance",
                "steps": [{"id": "e", "type": "procedure_end", "title": "Done"}],
            },
        ).json()
        tl = api.post(
            "/v1/target-lists",
            json={"name": "web", "targets": [{"label": "web-1"}, {"label": "web-2"}]},
        ).json()
        r = api.post(
            "/v1/maintenance-schedules",
            json={
                "flow_id": flow["id"],
                "target_list_id": tl["id"],
                "cron_expression": "* * * * * */2",
            },
        )
        assert r.status_code == 201, r.text
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            ready = db_rows(
                tmp_path,
                "SELECT count(*) FROM batches WHERE ready_at IS NOT NULL AND trigger = 'schedule'",
            )[0][0]
            if ready >= 3:
                break
            time.sleep(0.5)
        assert ready >= 3, (tmp_path / "dev.log").read_text()
        assert api.post(f"/v1/maintenance-schedules/{r.json()['id']}/pause").status_code == 200
        # The CLI acts on the same database while the server runs.
        out = subprocess.run(
            [*MAINTFLOW, "admin", "create-team", "Beside"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            env={k: v for k, v in os.environ.items() if not k.startswith("MAINTFLOW_")},
        )
        assert out.returncode == 0, out.stderr
        assert '"token"' in out.stdout
        time.sleep(1.5)  # let the last fan-out finish
    finally:
        assert stop(proc) == 0
    per_batch = db_rows(
        tmp_path,
        "SELECT b.id, count(s.id) FROM batches b LEFT JOIN sessions s "
        "ON s.batch_id = b.id WHERE b.trigger = 'schedule' GROUP BY b.id",
    )
    assert per_batch and {n for _b, n in per_batch} == {2}
    notes = db_rows(tmp_path, "SELECT batch_id, message FROM notifications")
    assert len(notes) == len(per_batch)
    assert {m for _b, m in notes} == {"Maintenance run ready: Rotate certs — 2 sessions created"}
    assert len(db_rows(tmp_path, "SELECT id FROM teams")) == 2

    proc, token_again = start_dev(tmp_path, port)
    try:
        assert token_again == token
        flows = httpx.get(
            f"http://127.0.0.1:{port}/v1/flows", headers={"Authorization": f"Bearer {token}"}
        ).json()
        assert [f["name"] for f in flows["items"]] == ["Rotate certs"]
    finally:
        assert stop(proc) == 0
