"""Run-now in the embedded mode, as a user meets it: `maintflow dev` with nothing else due, a
run-now answered 202 becomes a batch with one session per target of the list as it was at the
request, and its "run ready" notification, within seconds. (The distributed mode's run-now is in
test_user_paths.py.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.kit.dev import new_schedule, running_dev
from tests.kit.logs import assert_no_job_failures
from tests.kit.poll import poll_until_sync
from tests.kit.procs import free_port

pytestmark = pytest.mark.e2e


def test_run_now_in_the_embedded_mode_fans_out_and_notifies_within_seconds(
    tmp_path: Path,
) -> None:
    with running_dev(tmp_path, free_port()) as dev:
        api = dev.api
        _flow, hosts, schedule = new_schedule(
            api, "Renew certs", ["rds-1", "rds-2"], list_name="rds"
        )
        resp = api.post(f"/v1/maintenance-schedules/{schedule['id']}/run-now")
        assert resp.status_code == 202, resp.text
        batch_id = resp.json()["batch_id"]
        changed = api.put(
            f"/v1/target-lists/{hosts['id']}",
            json={"name": "rds", "targets": [{"label": "rds-9"}]},
        )
        assert changed.status_code == 200, changed.text

        def ready() -> dict[str, Any] | None:
            batch = api.get(f"/v1/batches/{batch_id}").json()
            return batch if batch["ready_at"] and len(batch["sessions"]) == 2 else None

        batch = poll_until_sync(ready, 5, "run-now batch with its 2 sessions", detail=dev.proc.tail)
        assert sorted(s["target_label"] for s in batch["sessions"]) == ["rds-1", "rds-2"]
        assert {s["status"] for s in batch["sessions"]} == {"pending"}

        def notified() -> list[dict[str, Any]]:
            items = api.get("/v1/notifications").json()["items"]
            return [n for n in items if n["batch_id"] == batch_id]

        notes = poll_until_sync(notified, 5, "the batch.ready notification", detail=dev.proc.tail)
        assert [(n["event"], n["message"]) for n in notes] == [
            ("batch.ready", "Maintenance run ready: Renew certs — 2 sessions created")
        ]
    assert dev.exit_code == 0
    assert_no_job_failures(dev.proc.log_text(), "maintflow dev")
