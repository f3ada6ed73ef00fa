"""Fixtures of the fuzz tests: a team whose admin token the fuzzer uses, and one real resource of
each kind, so that generated path ids sometimes name something that exists."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.conftest import TeamCtx
from tests.kit.seed import new_flow, one_of_each


@dataclass(frozen=True)
class Seeded:
    token: str
    ids: dict[str, list[str]]


@pytest.fixture
async def seeded(team: TeamCtx) -> Seeded:
    """One of each resource of `team` (a maintenance flow with a schedule, a target list, a batch
    with sessions, a viewer, a notification), plus a second maintenance flow free to get a
    schedule and a procedural flow."""
    each = await one_of_each(team)
    free = await new_flow(team, name="Rotate certificates")
    procedural = await new_flow(team, "procedural", "Onboarding")
    ids = {name: [value] for name, value in each.by_parameter().items()}
    ids["flow_id"] += [str(free["id"]), str(procedural["id"])]
    ids["from_batch_id"] = [each.batch_id]
    ids["session_id"] = list(each.session_ids)
    return Seeded(token=team.token, ids=ids)
