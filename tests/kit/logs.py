"""Reading what processes wrote: JSON-line logs (`MAINTFLOW_LOG_FORMAT=json`: one object per line
with an "event"), the JSON a CLI command prints, and the check that a run that should have gone
smoothly logged no failed scheduler job and no Python traceback."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from typing import Any

TRACEBACK = "Traceback (most recent call last)"
JOB_FAILED = "scheduler_job_failed"


def _lines(log: str | Iterable[str]) -> list[str]:
    return log.splitlines() if isinstance(log, str) else list(log)


def json_objects(log: str | Iterable[str]) -> list[dict[str, Any]]:
    """Every line that is a JSON object, parsed; other lines (a banner, a plain-text library
    message) are skipped."""
    found = []
    for line in _lines(log):
        text = line.strip()
        if text.startswith("{"):
            try:
                value = json.loads(text)
            except ValueError:
                continue
            if isinstance(value, dict):
                found.append(value)
    return found


def last_json_object(output: str) -> dict[str, Any]:
    """The last JSON object line of a command's output (`maintflow admin create-team` prints the
    team and its token as one)."""
    objects = json_objects(output)
    if not objects:
        raise AssertionError(f"no JSON object in the output: {output!r}")
    return objects[-1]


def events(log: str | Iterable[str]) -> Counter[str]:
    """How many times each event was logged."""
    return Counter(str(o["event"]) for o in json_objects(log) if "event" in o)


def event_count(log: str | Iterable[str], name: str) -> int:
    return events(log)[name]


def job_failures(log: str | Iterable[str]) -> list[str]:
    """The lines that log a failed scheduler job or carry a Python traceback (in a JSON line the
    traceback is in its "exc" field, so it is still on that line)."""
    return [line for line in _lines(log) if JOB_FAILED in line or TRACEBACK in line]


def assert_no_job_failures(log: str | Iterable[str], where: str = "") -> None:
    """Fail if the log holds a `scheduler_job_failed` event or a Python traceback. For runs where
    nothing should have gone wrong: a failure there is a bug even if the end state looks right
    (a job that failed and was retried, a worker message that raised)."""
    bad = job_failures(log)
    if bad:
        shown = "\n".join(line[:2000] for line in bad[:5])
        more = f"\n... and {len(bad) - 5} more" if len(bad) > 5 else ""
        label = f"{where}: " if where else ""
        raise AssertionError(
            f"{label}{len(bad)} log line(s) with a failed job or a traceback:\n{shown}{more}"
        )
