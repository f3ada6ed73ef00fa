"""A client generated from the served /openapi.json with openapi-python-client, during the run,
driving the main paths against `maintflow dev` as a client user would: a flow, a target list
sent as CSV, a batch launch and its sessions' transitions, a schedule with a recurrence, its
preview, pause and resume, and a run-now; a maintenance window, a webhook and a system job run
with their named enums and ETags. Also: /docs and /redoc there load nothing from another host."""

from __future__ import annotations

import importlib
import io
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.api.test_openapi import external_hosts
from tests.kit.dev import Dev, running_dev
from tests.kit.poll import poll_until_sync
from tests.kit.procs import free_port

pytestmark = pytest.mark.e2e
PACKAGE = "maintflow_generated_client"
# text/csv bodies become file uploads (openapi-python-client sends those as they are); no
# formatting of the generated code.
CONFIG = f"""package_name_override: {PACKAGE}
content_type_overrides:
  text/csv: application/octet-stream
post_hooks: []
"""
OPTIONS = ["--output-path", PACKAGE, "--config", "config.yaml"]


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dev]:
    with running_dev(tmp_path_factory.mktemp("dev"), free_port()) as running:
        yield running
    assert running.exit_code == 0


@pytest.fixture(scope="module")
def generated(dev: Dev, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """The client package generated from the document `maintflow dev` serves."""
    workdir = tmp_path_factory.mktemp("client")
    (workdir / "openapi.json").write_bytes(dev.api.get("/openapi.json").content)
    (workdir / "config.yaml").write_text(CONFIG)
    generator = Path(sys.executable).parent / "openapi-python-client"
    done = subprocess.run(
        [str(generator), "generate", "--path", "openapi.json", "--meta", "none", *OPTIONS],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Unsupported" not in done.stdout + done.stderr, done.stdout + done.stderr
    sys.path.insert(0, str(workdir))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(workdir))
        for name in [m for m in sys.modules if m.split(".")[0] == PACKAGE]:
            del sys.modules[name]


def _module(package: ModuleType, name: str) -> Any:
    return importlib.import_module(f"{package.__name__}.{name}")


def test_the_main_paths_through_a_generated_client(dev: Dev, generated: ModuleType) -> None:
    models = _module(generated, "models")
    call = _Calls(generated, dev)
    step = models.Step(id="patch", type_=models.StepType.PROCEDURE_STEP, title="Install updates")
    end = models.Step(id="done", type_=models.StepType.PROCEDURE_END, title="Done")
    flow = call.ok(
        201,
        "flows.flows_create",
        body=models.FlowCreate(
            name="Patch web servers", flow_type=models.FlowType.MAINTENANCE, steps=[step, end]
        ),
    )
    assert (
        isinstance(flow, models.FlowOut) and flow.steps[0].type_ == models.StepType.PROCEDURE_STEP
    )

    csv = b'\xef\xbb\xbflabel,notes\r\nweb-01,rack 4\r\n"web-02","rack 4, top"\r\n'
    upload = _module(generated, "types").File(payload=io.BytesIO(csv), mime_type="text/csv")
    targets = call.ok(201, "target_lists.target_lists_create", body=upload, name="Web servers")
    assert [(t.label, t.notes) for t in targets.targets] == [
        ("web-01", "rack 4"),
        ("web-02", "rack 4, top"),
    ]

    edited = call.ok(
        200,
        "target_lists.target_lists_update",
        list_id=targets.id,
        body=models.TargetListEdit(
            add=[models.Target(label="web-03")],
            update=[models.TargetNotes(label="web-01", notes="rack 5")],
        ),
    )
    assert [(t.label, t.notes) for t in edited.targets] == [
        ("web-01", "rack 5"),
        ("web-02", "rack 4, top"),
        ("web-03", None),
    ]
    edited = call.ok(
        200,
        "target_lists.target_lists_update",
        list_id=targets.id,
        body=models.TargetListEdit(remove=["web-03"]),
    )
    assert edited.target_count == 2

    launched = call.ok(
        201,
        "sessions_and_batches.batches_launch",
        body=models.BatchLaunch(flow_id=flow.id, target_list_id=targets.id),
    )
    assert launched.count == 2
    session_id = launched.sessions[0].id
    for status in (models.SessionStatus.IN_PROGRESS, models.SessionStatus.COMPLETED):
        moved = call.ok(
            200,
            "sessions_and_batches.sessions_update",
            session_id=session_id,
            body=models.SessionUpdate(status=status, current_step_id="done"),
        )
        assert moved.status == status
    refused = call.answer(
        "sessions_and_batches.sessions_update",
        session_id=session_id,
        body=models.SessionUpdate(status=models.SessionStatus.PENDING),
    )
    assert refused.status_code == 409 and "completed" in refused.parsed.detail

    recurrence = models.MonthlyRecurrence(type_="monthly", day="last", time="02:30")
    schedule = call.ok(
        201,
        "maintenance_schedules.schedules_create",
        body=models.ScheduleCreate(
            flow_id=flow.id,
            recurrence=recurrence,
            timezone="Europe/Berlin",
            target_list_id=targets.id,
        ),
    )
    assert schedule.cron_expression == "30 2 L * *"
    assert isinstance(schedule.recurrence, models.MonthlyRecurrence)
    preview = call.ok(
        200, "maintenance_schedules.schedules_preview", schedule_id=schedule.id, count=3
    )
    assert len(preview.fire_times) == 3 and preview.skipped_months == []
    paused = call.ok(
        200,
        "maintenance_schedules.schedules_pause",
        schedule_id=schedule.id,
        body=models.PauseRequest(reason="change freeze"),
    )
    assert paused.is_active is False and paused.paused_reason == "change freeze"
    resumed = call.ok(200, "maintenance_schedules.schedules_resume", schedule_id=schedule.id)
    assert resumed.is_active is True and resumed.next_run_at is not None

    accepted = call.ok(202, "maintenance_schedules.schedules_run_now", schedule_id=schedule.id)

    def run_ready() -> Any:
        batch = call.ok(200, "sessions_and_batches.batches_get", batch_id=accepted.batch_id)
        return batch if len(batch.sessions) == 2 else None

    batch = poll_until_sync(run_ready, 10, "the run-now batch's 2 sessions", detail=dev.proc.tail)
    assert batch.trigger == models.Trigger.RUN_NOW
    assert sorted(s.target_label for s in batch.sessions) == ["web-01", "web-02"]


def test_windows_webhooks_and_system_jobs_through_a_generated_client(
    dev: Dev, generated: ModuleType
) -> None:
    models = _module(generated, "models")
    call = _Calls(generated, dev)
    start = datetime.now(UTC) + timedelta(days=1)
    window = call.ok(
        201,
        "maintenance_windows.windows_create",
        body=models.WindowCreate(
            title="Core switch upgrade", start_at=start, end_at=start + timedelta(hours=2)
        ),
    )
    assert window.status == models.WindowStatus.SCHEDULED
    read = call.answer("maintenance_windows.windows_get", window_id=window.id)
    tag = read.headers["ETag"]
    entry = call.ok(
        201,
        "maintenance_windows.windows_updates_create",
        window_id=window.id,
        body=models.WindowPost(
            message="Started early", status_change=models.WindowStatus.IN_PROGRESS
        ),
    )
    assert entry.new_status == models.WindowStatus.IN_PROGRESS
    stale = call.answer(
        "maintenance_windows.windows_update",
        window_id=window.id,
        body=models.WindowUpdateRequest(title="Lost"),
        if_match=tag,
    )
    assert stale.status_code == 412
    started = call.ok(200, "notifications.notifications_list")
    assert models.Event.WINDOW_STARTED in [n.event for n in started.items]

    # Subscribed to `ping` only: nothing raised here is ever sent to it.
    webhook = call.ok(
        201,
        "webhooks.webhooks_create",
        body=models.WebhookCreate(url="https://93.184.215.14/hooks", events=[models.Event.PING]),
    )
    assert webhook.events == [models.Event.PING]
    tag = call.answer("webhooks.webhooks_get", webhook_id=webhook.id).headers["ETag"]
    call.ok(204, "webhooks.webhooks_delete", webhook_id=webhook.id, if_match=tag)

    accepted = call.ok(202, "system_jobs.system_jobs_run", key="retention_cleanup_manual")

    def run_over() -> Any:
        run = call.ok(200, "system_jobs.system_job_runs_get", run_id=accepted.run_id)
        return run if run.status != models.SystemJobRunStatus.RUNNING else None

    run = poll_until_sync(run_over, 20, "the manual system job run's end", detail=dev.proc.tail)
    assert run.status == models.SystemJobRunStatus.SUCCESS
    assert run.trigger == models.SystemJobTrigger.MANUAL


def test_the_docs_pages_of_maintflow_dev_load_nothing_from_another_host(dev: Dev) -> None:
    for page in ("/docs", "/redoc"):
        r = dev.api.get(page)
        assert r.status_code == 200 and external_hosts(r.text) == [], page


class _Calls:
    """The generated operations, called through one authenticated client."""

    def __init__(self, package: ModuleType, dev: Dev) -> None:
        self.package = package
        client_module = _module(package, "client")
        self.client = client_module.AuthenticatedClient(
            base_url=str(dev.api.base_url).rstrip("/"), token=dev.token
        )

    def answer(self, operation: str, **kwargs: Any) -> Any:
        function = _module(self.package, f"api.{operation}")
        return function.sync_detailed(client=self.client, **kwargs)

    def ok(self, status: int, operation: str, **kwargs: Any) -> Any:
        response = self.answer(operation, **kwargs)
        assert response.status_code == status, (operation, response.content)
        return response.parsed
