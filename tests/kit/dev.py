"""`maintflow dev` as a test runs it: the embedded mode (SQLite, in-memory broker, scheduler and
workers in one process) in a directory of the test's, ready when it has printed its admin token
and answers /healthz, stopped with Ctrl-C at the end of the block.

    with running_dev(tmp_path, free_port()) as dev:
        flow = created(dev.api.post("/v1/flows", json=body))
    assert dev.exit_code == 0
"""

from __future__ import annotations

import signal
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.kit.poll import poll_until_sync
from tests.kit.procs import Proc, clean_environ, maintflow_command, spawn


@dataclass
class Dev:
    proc: Proc
    token: str
    api: httpx.Client
    exit_code: int | None = None  # after Ctrl-C; None: it had to be killed


def _token(proc: Proc) -> str | None:
    proc.check_alive()
    for line in proc.own_log().splitlines():  # not an earlier run's, in the same directory
        if line.strip().startswith("token:"):
            return line.split()[-1]
    return None


@contextmanager
def running_dev(workdir: Path, port: int, env: Mapping[str, str] | None = None) -> Iterator[Dev]:
    """`maintflow dev --port P` in `workdir` (with MAINTFLOW_MIN_SCHEDULE_INTERVAL_S=1: a seconds
    schedule may fire every second, and the MAINTFLOW_* variables of `env`), ready (token
    printed, /healthz 200); stopped with Ctrl-C (SIGINT) at the end of the block, its exit code
    in `exit_code`."""
    env = clean_environ({"MAINTFLOW_MIN_SCHEDULE_INTERVAL_S": "1", **(env or {})})
    proc = spawn("dev", [*maintflow_command(), "dev", "--port", str(port)], workdir, env)
    url = f"http://127.0.0.1:{port}"
    try:
        what = "maintflow dev printed its token"
        token = poll_until_sync(lambda: _token(proc), 60, what, detail=proc.tail)

        def healthy() -> bool:
            return httpx.get(f"{url}/healthz").status_code == 200

        poll_until_sync(healthy, 30, "GET /healthz 200", ignore=(httpx.TransportError,))
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as api:
            dev = Dev(proc, token, api)
            yield dev
        proc.signal(signal.SIGINT)
        dev.exit_code = proc.finish_stop(20)
    finally:
        if not proc.cleaned:  # the block failed: no need to be gentle
            proc.finish_stop(0)


def created(r: httpx.Response) -> dict[str, Any]:
    """The JSON of a 201 Created answer (asserted)."""
    assert r.status_code == 201, r.text
    return dict(r.json())


ONE_STEP = [{"id": "end", "type": "procedure_end", "title": "Done"}]


def new_schedule(
    api: httpx.Client,
    flow_name: str,
    labels: list[str],
    cron: str = "0 3 * * *",
    list_name: str | None = None,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Through the API: a one-step maintenance flow, a target list of `labels` (named
    `list_name`, else as the flow), and a schedule of the flow on the list at `cron` (by default
    03:00 every day: nothing due soon, runs come from run-now). Returns (flow, list, schedule)."""
    flow = created(
        api.post(
            "/v1/flows", json={"name": flow_name, "flow_type": "maintenance", "steps": ONE_STEP}
        )
    )
    targets = [{"label": label} for label in labels]
    body = {"name": list_name or flow_name, "targets": targets}
    hosts = created(api.post("/v1/target-lists", json=body))
    schedule = created(
        api.post(
            "/v1/maintenance-schedules",
            json={"flow_id": flow["id"], "target_list_id": hosts["id"], "cron_expression": cron},
        )
    )
    return flow, hosts, schedule
