"""The test kit's own promises: polling returns what it waited for and fails naming it, the log
check catches a failed job or a traceback in either log format, settings names are checked."""

from __future__ import annotations

import json
import time

import pytest

from tests.kit.cluster import cluster_env
from tests.kit.lease import holder_pid
from tests.kit.logs import assert_no_job_failures, event_count, last_json_object
from tests.kit.poll import poll_until, poll_until_sync


async def test_poll_until_returns_the_first_truthy_value_awaiting_coroutines() -> None:
    calls = []

    async def third_time() -> int | None:
        calls.append(1)
        return len(calls) if len(calls) == 3 else None

    assert await poll_until(third_time, 5, "three calls", every=0) == 3


async def test_poll_until_fails_naming_what_it_waited_for_and_what_it_saw_last() -> None:
    started = time.monotonic()
    with pytest.raises(AssertionError, match=r"the batch ready: not within 0.2 s \(last seen: 0\)"):
        await poll_until(lambda: 0, 0.2, "the batch ready", every=0.05, detail=lambda: "logs")
    assert 0.2 <= time.monotonic() - started < 2


async def test_poll_until_lets_errors_through_unless_told_to_ignore_them() -> None:
    def refused() -> bool:
        raise ConnectionRefusedError

    with pytest.raises(ConnectionRefusedError):
        await poll_until(refused, 1, "a connection")
    with pytest.raises(AssertionError, match="ConnectionRefusedError"):
        await poll_until(refused, 0.1, "a connection", every=0.02, ignore=(OSError,))


def test_the_sync_poll_fails_like_the_async_one() -> None:
    assert poll_until_sync(lambda: "up", 1, "up") == "up"
    with pytest.raises(AssertionError, match=r"down: not within 0\.05 s"):
        poll_until_sync(lambda: None, 0.05, "down", every=0.01)


JSON_FAILURE = json.dumps(
    {
        "event": "scheduler_job_failed",
        "job": "tick",
        "exc": "Traceback (most recent call last):\n  ...\nOSError: gone",
    }
)
TEXT_TRACEBACK = """2026-06-01 12:00:00,000 ERROR dramatiq.worker Failed to process message
Traceback (most recent call last):
  File "x.py", line 1, in <module>
RuntimeError: boom"""


@pytest.mark.parametrize("log", [JSON_FAILURE, TEXT_TRACEBACK])
def test_a_failed_job_or_a_traceback_fails_the_log_check(log: str) -> None:
    with pytest.raises(AssertionError, match="scheduler-a: 1 log line"):
        assert_no_job_failures(log, "scheduler-a")


def test_a_clean_log_passes_the_log_check() -> None:
    clean = "\n".join(json.dumps({"event": e}) for e in ("leader_elected", "schedules_fired"))
    assert_no_job_failures(clean)
    assert_no_job_failures(clean.splitlines())
    assert event_count(clean, "schedules_fired") == 1


def test_the_last_json_object_of_a_command_output_is_found() -> None:
    output = 'migrating…\n{"team": "a"}\nnot json {\n{"team": "b", "token": "mf_x"}\n'
    assert last_json_object(output) == {"team": "b", "token": "mf_x"}
    with pytest.raises(AssertionError, match="no JSON object"):
        last_json_object("nothing here")


def test_cluster_env_names_settings_and_refuses_unknown_ones() -> None:
    env = cluster_env("postgresql+asyncpg://db/x", scheduler_lease_s=3)
    assert env["MAINTFLOW_SCHEDULER_LEASE_S"] == "3"
    assert env["MAINTFLOW_LOG_FORMAT"] == "json"
    with pytest.raises(ValueError, match="scheduler_lease"):
        cluster_env("postgresql+asyncpg://db/x", scheduler_lease=3)


def test_the_pid_is_read_from_a_lease_holder_id() -> None:
    assert holder_pid("host-1:4242:ab12cd34") == 4242
    assert holder_pid("test-scheduler") is None
