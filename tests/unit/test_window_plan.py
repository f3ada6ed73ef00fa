"""The moves a due window makes at `now` (pure), by table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from maintflow_core.due.windows import plan_moves
from maintflow_core.usecases.windows import next_transition

START = datetime(2026, 6, 1, 13, 0, tzinfo=UTC)
END = START + timedelta(hours=1)
S = timedelta(seconds=1)


@pytest.mark.parametrize(
    ("status", "now", "moves"),
    [
        ("scheduled", START - S, []),
        ("scheduled", START, ["in_progress"]),
        ("scheduled", END - S, ["in_progress"]),
        # The whole span passed while nothing ran: both, in order.
        ("scheduled", END, ["in_progress", "completed"]),
        ("scheduled", END + timedelta(days=3), ["in_progress", "completed"]),
        ("in_progress", END - S, []),
        ("in_progress", END, ["completed"]),
        ("completed", END + S, []),
        ("cancelled", END + S, []),
    ],
)
def test_the_moves_of_a_due_window(status: str, now: datetime, moves: list[str]) -> None:
    assert plan_moves(status, START, END, now) == moves


@pytest.mark.parametrize(
    ("status", "instant"),
    [("scheduled", START), ("in_progress", END), ("completed", None), ("cancelled", None)],
)
def test_the_next_transition_follows_the_status(status: str, instant: datetime | None) -> None:
    assert next_transition(status, START, END) == instant
