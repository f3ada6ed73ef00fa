"""Bad input gets a clear 4xx in FastAPI's `{"detail": ...}` shape, and every 422 names the field
(`detail[*].loc`). Never a 500, never a traceback."""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from maintflow_api.app import create_app
from maintflow_core.clock import FakeClock
from maintflow_core.settings import Settings
from tests.conftest import STEPS, TeamCtx, new_flow, new_target_list

MIB = 1024 * 1024


def names(r: httpx.Response, *loc: str | int) -> None:
    """`r` is a 422 whose detail names `loc` (e.g. "body", "targets", 0, "label")."""
    assert r.status_code == 422, (r.status_code, r.text)
    detail = r.json()["detail"]
    assert isinstance(detail, list) and detail, r.text
    for error in detail:
        assert {"loc", "msg", "type"} <= set(error), error
    locs = [tuple(e["loc"]) for e in detail]
    assert any(found[: len(loc)] == loc for found in locs), (loc, locs)


def refused(r: httpx.Response, status: int) -> None:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"] == "application/json", r.headers
    assert isinstance(r.json()["detail"], str), r.text


async def _seed(t: TeamCtx) -> dict[str, Any]:
    """One of each: flow, list, batch (with sessions), schedule."""
    flow = await new_flow(t)
    tl = await new_target_list(t, 2)
    batch = (
        await t.req(
            "POST", "/v1/sessions/batch", json={"flow_id": flow["id"], "target_list_id": tl["id"]}
        )
    ).json()
    schedule = (
        await t.req(
            "POST",
            "/v1/maintenance-schedules",
            json={"flow_id": flow["id"], "cron_expression": "0 9 * * *"},
        )
    ).json()
    return {
        "flow": flow["id"],
        "list": tl["id"],
        "batch": batch["batch_id"],
        "session": batch["sessions"][0]["id"],
        "schedule": schedule["id"],
    }


def _schedule(flow_id: str, **extra: object) -> dict[str, object]:
    return {"flow_id": flow_id, "cron_expression": "0 9 * * *", **extra}


# --- cron and timezones -------------------------------------------------------------------------


async def test_a_malformed_cron_is_refused_naming_the_field(team: TeamCtx) -> None:
    flow = await new_flow(team)
    for expression in ("every day", "61 * * * *", "* * *", "0 25 * * *", "0 9 * * mon-", "@reboot"):
        r = await team.req(
            "POST",
            "/v1/maintenance-schedules",
            json=_schedule(flow["id"], cron_expression=expression),
        )
        names(r, "body", "cron_expression")


async def test_a_cron_that_never_fires_is_refused_naming_the_field(team: TeamCtx) -> None:
    flow = await new_flow(team)
    r = await team.req(
        "POST",
        "/v1/maintenance-schedules",
        json=_schedule(flow["id"], cron_expression="0 0 30 2 *"),
    )
    names(r, "body", "cron_expression")
    assert "never fires" in r.text


async def test_an_unknown_timezone_is_refused_naming_the_field(team: TeamCtx) -> None:
    flow = await new_flow(team)
    for zone in ("Mars/Olympus", "utc+2", "../../etc/passwd", "Europe/London\x00"):
        r = await team.req(
            "POST", "/v1/maintenance-schedules", json=_schedule(flow["id"], timezone=zone)
        )
        names(r, "body", "timezone")
    s = (await team.req("POST", "/v1/maintenance-schedules", json=_schedule(flow["id"]))).json()
    r = await team.req(
        "PATCH", f"/v1/maintenance-schedules/{s['id']}", json={"timezone": "Nowhere/Town"}
    )
    names(r, "body", "timezone")


# --- targets and labels -------------------------------------------------------------------------


async def test_ten_thousand_and_one_targets_are_refused_naming_the_field(team: TeamCtx) -> None:
    flow = await new_flow(team)
    targets = [{"label": f"h{i:05d}"} for i in range(10_001)]
    r = await team.req("POST", "/v1/target-lists", json={"name": "big", "targets": targets})
    names(r, "body", "targets")
    r = await team.req(
        "POST", "/v1/sessions/batch", json={"flow_id": flow["id"], "targets": targets}
    )
    names(r, "body", "targets")


async def test_duplicate_labels_are_refused_naming_the_field(team: TeamCtx) -> None:
    flow = await new_flow(team)
    targets = [{"label": "db-1"}, {"label": "db-2"}, {"label": "db-1"}]
    r = await team.req("POST", "/v1/target-lists", json={"name": "dup", "targets": targets})
    names(r, "body", "targets")
    assert "db-1" in r.text
    r = await team.req(
        "POST", "/v1/sessions/batch", json={"flow_id": flow["id"], "targets": targets}
    )
    names(r, "body", "targets")


async def test_a_label_of_256_chars_is_refused_naming_the_field(team: TeamCtx) -> None:
    r = await team.req(
        "POST", "/v1/target-lists", json={"name": "long", "targets": [{"label": "x" * 256}]}
    )
    names(r, "body", "targets", 0, "label")
    ok = await team.req(
        "POST", "/v1/target-lists", json={"name": "long", "targets": [{"label": "x" * 255}]}
    )
    assert ok.status_code == 201, ok.text


# --- body size ----------------------------------------------------------------------------------


def test_the_body_limit_defaults_to_8_mib(settings: Settings) -> None:
    assert Settings.model_fields["max_body_bytes"].default == 8 * MIB
    assert settings.max_body_bytes == 8 * MIB  # the test app runs with the default


async def test_a_10_mb_body_is_refused_with_413(team: TeamCtx) -> None:
    body = json.dumps({"name": "big", "description": "x" * (10 * 1000 * 1000), "targets": []})
    r = await team.req(
        "POST", "/v1/target-lists", content=body, headers={"Content-Type": "application/json"}
    )
    refused(r, 413)


async def test_a_chunked_body_over_the_limit_without_content_length_is_refused_with_413(
    team: TeamCtx,
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"name": "big", "description": "'
        for _ in range(9):
            yield b"x" * MIB
        yield b'", "targets": []}'

    r = await team.req(
        "POST", "/v1/target-lists", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert "content-length" not in r.request.headers
    refused(r, 413)


async def test_a_body_just_under_the_limit_is_read(team: TeamCtx) -> None:
    """Not refused for its size: validated, and refused for the long description instead."""
    head, tail = b'{"name": "big", "targets": [{"label": "a"}], "description": "', b'"}'
    body = head + b"x" * (8 * MIB - len(head) - len(tail)) + tail
    assert len(body) == 8 * MIB
    r = await team.req(
        "POST", "/v1/target-lists", content=body, headers={"Content-Type": "application/json"}
    )
    names(r, "body", "description")


# --- NUL bytes, surrogates, unicode -------------------------------------------------------------


async def test_nul_bytes_are_refused_naming_the_field(team: TeamCtx) -> None:
    ids = await _seed(team)
    step = {"id": "s1", "type": "procedure_step", "title": "t"}
    cases: list[tuple[str, str, dict[str, Any], tuple[str | int, ...]]] = [
        (
            "POST",
            "/v1/flows",
            {"name": "a\x00", "flow_type": "maintenance", "steps": STEPS},
            ("body", "name"),
        ),
        (
            "POST",
            "/v1/flows",
            {"name": "a", "flow_type": "maintenance", "steps": [{**step, "title": "t\x00"}]},
            ("body", "steps", 0, "title"),
        ),
        (
            "POST",
            "/v1/flows",
            {"name": "a", "flow_type": "maintenance", "steps": [{**step, "content_type": "\x00"}]},
            ("body", "steps", 0, "content_type"),
        ),
        (
            "POST",
            "/v1/flows",
            {"name": "a", "flow_type": "maintenance", "steps": [{**step, "id": "\x00"}]},
            ("body", "steps", 0, "id"),
        ),
        (
            "POST",
            "/v1/flows",
            {"name": "a", "flow_type": "maintenance", "steps": STEPS, "intake_form": {"k": "\x00"}},
            ("body", "intake_form"),
        ),
        (
            "POST",
            "/v1/flows",
            {"name": "a", "flow_type": "maintenance", "steps": STEPS, "intake_form": {"\x00": 1}},
            ("body", "intake_form"),
        ),
        ("PATCH", f"/v1/flows/{ids['flow']}", {"description": "d\x00"}, ("body", "description")),
        (
            "POST",
            "/v1/target-lists",
            {"name": "n", "targets": [{"label": "a\x00b"}]},
            ("body", "targets", 0, "label"),
        ),
        (
            "POST",
            "/v1/target-lists",
            {"name": "n", "targets": [{"label": "a", "notes": "\x00"}]},
            ("body", "targets", 0, "notes"),
        ),
        (
            "POST",
            "/v1/target-lists",
            {"name": "n\x00", "targets": [{"label": "a"}]},
            ("body", "name"),
        ),
        (
            "PUT",
            f"/v1/target-lists/{ids['list']}",
            {"name": "n", "targets": [{"label": "\x00"}]},
            ("body", "targets", 0, "label"),
        ),
        (
            "POST",
            "/v1/sessions/batch",
            {"flow_id": ids["flow"], "targets": [{"label": "a", "notes": "x\x00"}]},
            ("body", "targets", 0, "notes"),
        ),
        (
            "POST",
            "/v1/sessions/batch",
            {"flow_id": ids["flow"], "targets": [{"label": "a"}], "intake": {"a": ["\x00"]}},
            ("body", "intake"),
        ),
        ("PATCH", f"/v1/sessions/{ids['session']}", {"notes": "n\x00"}, ("body", "notes")),
        (
            "PATCH",
            f"/v1/sessions/{ids['session']}",
            {"current_step_id": "s\x00"},
            ("body", "current_step_id"),
        ),
        (
            "POST",
            f"/v1/maintenance-schedules/{ids['schedule']}/pause",
            {"reason": "\x00"},
            ("body", "reason"),
        ),
        (
            "PATCH",
            f"/v1/maintenance-schedules/{ids['schedule']}",
            {"cron_expression": "0 9 * * *\x00"},
            ("body", "cron_expression"),
        ),
        ("POST", "/v1/users", {"email": "a\x00@b.c", "role": "viewer"}, ("body", "email")),
    ]
    for method, url, body, loc in cases:
        names(await team.req(method, url, json=body), *loc)


async def test_nul_bytes_in_the_search_query_are_refused_naming_the_parameter(
    team: TeamCtx,
) -> None:
    names(await team.req("GET", "/v1/flows", params={"q": "rds\x00"}), "query", "q")
    assert (await team.req("GET", "/v1/flows", params={"q": "rds"})).status_code == 200


async def test_lone_surrogates_are_refused_naming_the_field(team: TeamCtx) -> None:
    """JSON may spell half a UTF-16 pair (`\\ud800`); such text cannot be stored as UTF-8."""
    ids = await _seed(team)
    cases: list[tuple[str, str, str, tuple[str | int, ...]]] = [
        (
            "POST",
            "/v1/target-lists",
            '{"name": "a\\ud800", "targets": [{"label": "x"}]}',
            ("body", "name"),
        ),
        (
            "POST",
            "/v1/target-lists",
            '{"name": "a", "targets": [{"label": "\\udfff"}]}',
            ("body", "targets", 0, "label"),
        ),
        (
            "POST",
            "/v1/flows",
            '{"name": "a", "flow_type": "maintenance", '
            '"steps": [{"id": "\\ud800", "type": "procedure_end", "title": "t"}]}',
            ("body", "steps", 0, "id"),
        ),
        (
            "POST",
            "/v1/flows",
            '{"name": "a", "flow_type": "maintenance", "intake_form": {"q": ["\\ud83d"]}, '
            '"steps": [{"id": "s", "type": "procedure_end", "title": "t"}]}',
            ("body", "intake_form"),
        ),
        ("POST", "/v1/users", '{"email": "a\\ud800@b.c", "role": "viewer"}', ("body", "email")),
        ("PATCH", f"/v1/sessions/{ids['session']}", '{"notes": "\\udc00"}', ("body", "notes")),
    ]
    for method, url, raw, loc in cases:
        r = await team.req(method, url, content=raw, headers={"Content-Type": "application/json"})
        names(r, *loc)
    # A well-formed pair is one character, and fine.
    r = await team.req(
        "POST",
        "/v1/target-lists",
        content='{"name": "pair \\ud83d\\ude80", "targets": [{"label": "x"}]}',
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 201 and r.json()["name"] == "pair \U0001f680", r.text


async def test_numbers_json_cannot_store_are_refused_naming_the_field(team: TeamCtx) -> None:
    """Python reads `NaN`, `Infinity` and `1e400` (as inf); PostgreSQL's jsonb stores none."""
    flow = await new_flow(team)
    for number in ("NaN", "Infinity", "-Infinity", "1e400"):
        body = {"flow_id": flow["id"], "targets": [{"label": "a"}], "intake": {"n": "NUMBER"}}
        raw = json.dumps(body).replace('"NUMBER"', number)
        r = await team.req(
            "POST", "/v1/sessions/batch", content=raw, headers={"Content-Type": "application/json"}
        )
        names(r, "body", "intake")
    body = {"name": "a", "flow_type": "maintenance", "steps": STEPS, "intake_form": {"n": ["N"]}}
    raw = json.dumps(body).replace('"N"', "1e999")
    r = await team.req(
        "POST", "/v1/flows", content=raw, headers={"Content-Type": "application/json"}
    )
    names(r, "body", "intake_form")


async def test_free_form_json_nested_too_deep_is_refused_naming_the_field(team: TeamCtx) -> None:
    """Deeper objects could be stored but never read back (serialisation has a depth limit)."""
    flow = await new_flow(team)

    def nested(depth: int) -> object:
        value: object = 1
        for i in range(depth):
            value = [value] if i % 2 else {"k": value}
        return value

    ok = await team.req(
        "POST",
        "/v1/sessions/batch",
        json={"flow_id": flow["id"], "targets": [{"label": "a"}], "intake": nested(31)},
    )
    assert ok.status_code == 201, ok.text
    session = await team.req("GET", f"/v1/sessions/{ok.json()['sessions'][0]['id']}")
    assert session.status_code == 200 and session.json()["intake"] == nested(31)
    for depth in (33, 800):
        r = await team.req(
            "POST",
            "/v1/sessions/batch",
            json={"flow_id": flow["id"], "targets": [{"label": "a"}], "intake": nested(depth)},
        )
        names(r, "body", "intake")
        r = await team.req(
            "POST",
            "/v1/flows",
            json={
                "name": "n",
                "flow_type": "maintenance",
                "steps": STEPS,
                "intake_form": nested(depth),
            },
        )
        names(r, "body", "intake_form")
    assert (await team.req("GET", "/v1/sessions")).status_code == 200
    # Nesting past what the JSON parser takes at all is invalid JSON.
    deep = b'{"name": "n", "targets": [{"label": "a"}], "description": ' + b"[" * 100_000
    r = await team.req(
        "POST", "/v1/target-lists", content=deep, headers={"Content-Type": "application/json"}
    )
    names(r, "body")


UNICODE_NAMES = [
    "Patch 🚀 the fleet 🛠️",
    "تحديث الخوادم",  # Arabic, right to left
    "עדכון שרתים ‏(RTL)",  # Hebrew with a right-to-left mark
    "Cafe\u0301 e\u0308 n\u0303",  # combining accents, not precomposed
    "👩🏽‍💻 ZWJ sequence",
    "日本語のメンテナンス",
]


async def test_unicode_names_are_accepted_and_round_tripped(team: TeamCtx) -> None:
    for name in UNICODE_NAMES:
        flow = await new_flow(team, name=name)
        assert flow["name"] == name
        assert (await team.req("GET", f"/v1/flows/{flow['id']}")).json()["name"] == name
    r = await team.req(
        "POST",
        "/v1/target-lists",
        json={
            "name": UNICODE_NAMES[0],
            "targets": [{"label": n, "notes": n} for n in UNICODE_NAMES],
        },
    )
    assert r.status_code == 201, r.text
    got = (await team.req("GET", f"/v1/target-lists/{r.json()['id']}")).json()
    assert [t["label"] for t in got["targets"]] == UNICODE_NAMES
    assert [t["notes"] for t in got["targets"]] == UNICODE_NAMES
    # Combining and precomposed spellings are different labels (no silent normalisation).
    r = await team.req(
        "POST",
        "/v1/target-lists",
        json={"name": "nfc", "targets": [{"label": "Caf\u00e9"}, {"label": "Cafe\u0301"}]},
    )
    assert r.status_code == 201, r.text
    found = (await team.req("GET", "/v1/flows", params={"q": "🚀"})).json()["items"]
    assert [f["name"] for f in found] == [UNICODE_NAMES[0]]


# --- wrong JSON types ---------------------------------------------------------------------------


def _write_routes(ids: dict[str, Any]) -> list[tuple[str, str, dict[str, Any], set[str]]]:
    """Every write route with a body: method, url, a valid body, its required fields."""
    flow = {"name": "f", "flow_type": "maintenance", "steps": STEPS}
    tl = {"name": "l", "targets": [{"label": "a"}]}
    schedule = f"/v1/maintenance-schedules/{ids['schedule']}"
    return [
        ("POST", "/v1/flows", flow, {"name", "flow_type", "steps"}),
        ("PATCH", f"/v1/flows/{ids['flow']}", {"name": "g", "steps": STEPS}, set()),
        ("POST", "/v1/target-lists", tl, {"name", "targets"}),
        ("PUT", f"/v1/target-lists/{ids['list']}", tl, {"name", "targets"}),
        (
            "POST",
            "/v1/sessions/batch",
            {"flow_id": ids["flow"], "targets": [{"label": "a"}], "intake": {"k": "v"}},
            {"flow_id"},
        ),
        ("PATCH", f"/v1/sessions/{ids['session']}", {"status": "in_progress", "notes": "n"}, set()),
        ("POST", "/v1/maintenance-schedules", _schedule(ids["flow"], timezone="UTC"), {"flow_id"}),
        ("PATCH", schedule, {"cron_expression": "0 10 * * *", "timezone": "UTC"}, set()),
        ("POST", f"{schedule}/pause", {"reason": "r"}, set()),
        ("POST", "/v1/users", {"email": "x@y.z", "role": "viewer"}, {"email", "role"}),
    ]


def _wrong(value: object) -> list[object]:
    """Values of the wrong JSON type for a field holding `value`."""
    if isinstance(value, list):
        return ["a string", {"an": "object"}, 7]
    if isinstance(value, dict):
        return [["an", "array"], "a string", 7]
    return [7, 1.5, True, ["a"], {"an": "object"}]


async def test_wrong_json_types_are_refused_naming_the_field_on_every_write_route(
    team: TeamCtx,
) -> None:
    """String for list, number for string, object for array, null or nothing where required."""
    ids = await _seed(team)
    checked = 0
    for method, url, body, required in _write_routes(ids):
        for field, value in body.items():
            for wrong in _wrong(value):
                names(await team.req(method, url, json={**body, field: wrong}), "body", field)
                checked += 1
        for field in required:
            names(await team.req(method, url, json={**body, field: None}), "body", field)
            rest = {k: v for k, v in body.items() if k != field}
            names(await team.req(method, url, json=rest), "body", field)
            checked += 2
        for whole in ([body], "text", 3, True):
            names(await team.req(method, url, json=whole), "body")
            checked += 1
    assert checked > 150, checked


async def test_a_wrong_type_inside_a_list_names_the_item(team: TeamCtx) -> None:
    r = await team.req("POST", "/v1/target-lists", json={"name": "n", "targets": ["db-1"]})
    names(r, "body", "targets", 0)
    r = await team.req("POST", "/v1/target-lists", json={"name": "n", "targets": [{"label": 5}]})
    names(r, "body", "targets", 0, "label")
    r = await team.req(
        "POST",
        "/v1/flows",
        json={"name": "n", "flow_type": "maintenance", "steps": [{**STEPS[0], "title": None}]},
    )
    names(r, "body", "steps", 0, "title")


async def test_unknown_fields_are_refused_naming_them(team: TeamCtx) -> None:
    ids = await _seed(team)
    for method, url, body, _required in _write_routes(ids):
        names(await team.req(method, url, json={**body, "colour": "red"}), "body", "colour")


async def test_an_invalid_json_body_is_refused_with_422(team: TeamCtx) -> None:
    for raw in (b"{", b'{"name": "a",}', b"{'name': 'a'}", b'{"name": "a"} trailing', b"\xff"):
        r = await team.req(
            "POST", "/v1/target-lists", content=raw, headers={"Content-Type": "application/json"}
        )
        names(r, "body")


async def test_rules_across_fields_name_each_field_concerned(team: TeamCtx) -> None:
    ids = await _seed(team)
    url = "/v1/sessions/batch"
    r = await team.req("POST", url, json={"flow_id": ids["flow"]})
    for field in ("targets", "target_list_id", "from_batch_id"):
        names(r, "body", field)
    r = await team.req(
        "POST",
        url,
        json={"flow_id": ids["flow"], "targets": [{"label": "a"}], "target_list_id": ids["list"]},
    )
    assert {tuple(e["loc"]) for e in r.json()["detail"]} == {
        ("body", "targets"),
        ("body", "target_list_id"),
    }
    r = await team.req("POST", "/v1/maintenance-schedules", json={"flow_id": ids["flow"]})
    names(r, "body", "cron_expression")
    names(r, "body", "recurrence")
    both = {"cron_expression": "0 9 * * *", "recurrence": {"type": "daily", "time": "09:00"}}
    r = await team.req("PATCH", f"/v1/maintenance-schedules/{ids['schedule']}", json=both)
    names(r, "body", "cron_expression")
    names(r, "body", "recurrence")


# --- ids ----------------------------------------------------------------------------------------


async def test_ids_that_are_not_uuids_in_the_path_are_refused_naming_the_parameter(
    team: TeamCtx,
) -> None:
    routes = [
        ("GET", "/v1/flows/{}", "flow_id"),
        ("PATCH", "/v1/flows/{}", "flow_id"),
        ("DELETE", "/v1/flows/{}", "flow_id"),
        ("GET", "/v1/flows/{}/schedule", "flow_id"),
        ("GET", "/v1/target-lists/{}", "list_id"),
        ("DELETE", "/v1/target-lists/{}", "list_id"),
        ("GET", "/v1/sessions/{}", "session_id"),
        ("GET", "/v1/batches/{}", "batch_id"),
        ("GET", "/v1/maintenance-schedules/{}", "schedule_id"),
        ("DELETE", "/v1/maintenance-schedules/{}", "schedule_id"),
        ("POST", "/v1/maintenance-schedules/{}/resume", "schedule_id"),
        ("POST", "/v1/maintenance-schedules/{}/run-now", "schedule_id"),
        ("GET", "/v1/maintenance-schedules/{}/preview", "schedule_id"),
        ("POST", "/v1/notifications/{}/read", "notification_id"),
        ("DELETE", "/v1/users/{}", "user_id"),
    ]
    for method, template, param in routes:
        for bad in ("42", "not-a-uuid", "0" * 33, "%00", "'; DROP TABLE flows; --"):
            names(await team.req(method, template.format(bad)), "path", param)


async def test_ids_that_are_not_uuids_in_the_body_are_refused_naming_the_field(
    team: TeamCtx,
) -> None:
    ids = await _seed(team)
    cases = [
        ("POST", "/v1/sessions/batch", {"flow_id": "nope", "targets": [{"label": "a"}]}, "flow_id"),
        (
            "POST",
            "/v1/sessions/batch",
            {"flow_id": ids["flow"], "target_list_id": 12},
            "target_list_id",
        ),
        (
            "POST",
            "/v1/sessions/batch",
            {"flow_id": ids["flow"], "from_batch_id": "x"},
            "from_batch_id",
        ),
        ("POST", "/v1/maintenance-schedules", _schedule("123"), "flow_id"),
        (
            "POST",
            "/v1/maintenance-schedules",
            _schedule(ids["flow"], target_list_id="l"),
            "target_list_id",
        ),
        (
            "PATCH",
            f"/v1/maintenance-schedules/{ids['schedule']}",
            {"target_list_id": "zz"},
            "target_list_id",
        ),
    ]
    for method, url, body, field in cases:
        names(await team.req(method, url, json=body), "body", field)


async def test_ids_that_are_not_uuids_in_the_query_are_refused_naming_the_parameter(
    team: TeamCtx,
) -> None:
    cases = [
        ("/v1/sessions", "batch_id"),
        ("/v1/sessions", "flow_id"),
        ("/v1/batches", "flow_id"),
        ("/v1/batches", "schedule_id"),
        ("/v1/maintenance-schedules", "flow_id"),
    ]
    for url, param in cases:
        names(await team.req("GET", url, params={param: "not-a-uuid"}), "query", param)


# --- headers and paging -------------------------------------------------------------------------


async def test_an_idempotency_key_of_256_chars_or_with_control_characters_is_refused(
    team: TeamCtx,
) -> None:
    ids = await _seed(team)
    launches = [
        ("/v1/sessions/batch", {"flow_id": ids["flow"], "targets": [{"label": "a"}]}),
        (f"/v1/maintenance-schedules/{ids['schedule']}/run-now", None),
    ]
    for url, body in launches:
        for key in ("k" * 256, "key\x01", "tab\there", "bell\x07", ""):
            r = await team.req("POST", url, json=body, headers={"Idempotency-Key": key})
            names(r, "header", "Idempotency-Key")
        r = await team.req("POST", url, json=body, headers={"Idempotency-Key": "k" * 255})
        assert r.status_code in (201, 202), r.text
    batches = (await team.req("GET", "/v1/batches")).json()["items"]
    assert len(batches) == 3  # the seeded one and one per accepted launch, none for the refused


async def test_limit_out_of_range_and_a_garbage_cursor_are_refused_naming_the_parameter(
    team: TeamCtx,
) -> None:
    lists = [
        "/v1/flows",
        "/v1/target-lists",
        "/v1/sessions",
        "/v1/batches",
        "/v1/maintenance-schedules",
        "/v1/notifications",
        "/v1/users",
    ]
    far_past = base64.urlsafe_b64encode(
        json.dumps(["0001-01-01T00:00:00+14:00", str(uuid.uuid4())]).encode()
    ).decode()
    naive = base64.urlsafe_b64encode(
        json.dumps(["2026-01-01T00:00:00", str(uuid.uuid4())]).encode()
    ).decode()
    for url in lists:
        for limit in ("0", "501", "-1", "ten", "1e3", "99999999999999999999"):
            names(await team.req("GET", url, params={"limit": limit}), "query", "limit")
        for cursor in ("garbage", "!!!", "e30", "W10", far_past, naive, "x" * 501, "\x00"):
            names(await team.req("GET", url, params={"cursor": cursor}), "query", "cursor")
        assert (await team.req("GET", url, params={"limit": 500})).status_code == 200


async def test_preview_refuses_an_after_outside_the_calendar_naming_the_parameter(
    team: TeamCtx,
) -> None:
    ids = await _seed(team)
    url = f"/v1/maintenance-schedules/{ids['schedule']}/preview"
    for after in (
        "0001-01-01T00:00:00+01:00",
        "2026-06-01T12:00:00",
        "soon",
        "1700000000",
        "6.103515625e-05",
        "2026-06-01",
    ):
        names(await team.req("GET", url, params={"after": after}), "query", "after")
    for count in ("0", "1001"):
        names(await team.req("GET", url, params={"count": count}), "query", "count")
    late = await team.req("GET", url, params={"after": "9999-12-28T12:00:00Z", "count": 5})
    assert late.status_code == 200, late.text
    assert [t["utc"] for t in late.json()["fire_times"]] == [
        "9999-12-29T09:00:00Z",
        "9999-12-30T09:00:00Z",
        "9999-12-31T09:00:00Z",
    ]


async def test_instants_outside_the_calendar_are_refused_naming_the_field(team: TeamCtx) -> None:
    flow = await new_flow(team)
    edges = ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00")
    for field in ("start_at", "end_at"):
        for value in edges:
            r = await team.req(
                "POST", "/v1/maintenance-schedules", json=_schedule(flow["id"], **{field: value})
            )
            names(r, "body", field)
    for value in edges:
        r = await team.req(
            "POST",
            "/v1/maintenance-schedules",
            json={"flow_id": flow["id"], "recurrence": {"type": "once", "run_at": value}},
        )
        names(r, "body", "recurrence")


async def test_instants_must_be_date_time_text_not_unix_times(team: TeamCtx) -> None:
    """The document says RFC 3339; pydantic alone would also read numbers as Unix times."""
    flow = await new_flow(team)
    for value in (1_800_000_000, "1800000000", 1.8e9, "2027-01-01"):
        for field in ("start_at", "end_at"):
            r = await team.req(
                "POST", "/v1/maintenance-schedules", json=_schedule(flow["id"], **{field: value})
            )
            names(r, "body", field)
        r = await team.req(
            "POST",
            "/v1/maintenance-schedules",
            json={"flow_id": flow["id"], "recurrence": {"type": "once", "run_at": value}},
        )
        names(r, "body", "recurrence")
    ok = await team.req(
        "POST",
        "/v1/maintenance-schedules",
        json=_schedule(
            flow["id"], start_at="2027-01-01T00:00:00+01:00", end_at="2028-01-01 00:00Z"
        ),
    )
    assert ok.status_code == 201, ok.text
    # Returned in UTC, by the POST as by a later GET.
    assert ok.json()["start_at"] == "2026-12-31T23:00:00Z"
    got = (await team.req("GET", f"/v1/maintenance-schedules/{ok.json()['id']}")).json()
    assert (got["start_at"], got["end_at"]) == ("2026-12-31T23:00:00Z", "2028-01-01T00:00:00Z")
    r = await team.req(
        "PATCH",
        f"/v1/maintenance-schedules/{ok.json()['id']}",
        json={"end_at": "2028-06-01T12:00:00-04:00"},
    )
    assert r.status_code == 200 and r.json()["end_at"] == "2028-06-01T16:00:00Z", r.text


# --- error shape --------------------------------------------------------------------------------


async def test_errors_keep_fastapis_detail_shape(team: TeamCtx) -> None:
    ids = await _seed(team)
    viewer = await team.user("viewer")
    missing = uuid.uuid4()
    refused(await team.client.get("/v1/flows"), 401)
    refused(await team.req("POST", "/v1/target-lists", token=viewer, json={}), 403)
    refused(await team.req("GET", f"/v1/flows/{missing}"), 404)
    refused(
        await team.req(
            "POST", "/v1/target-lists", json={"name": "RDS hosts", "targets": [{"label": "a"}]}
        ),
        409,
    )
    proc = await new_flow(team, "procedural", "Onboarding")
    refused(
        await team.req(
            "POST", "/v1/sessions/batch", json={"flow_id": proc["id"], "targets": [{"label": "a"}]}
        ),
        400,
    )
    r = await team.req("PUT", "/v1/flows")
    refused(r, 405)
    r = await team.req("OPTIONS", f"/v1/flows/{ids['flow']}")
    refused(r, 405)
    assert r.headers["allow"] == "DELETE, GET, PATCH"


async def test_a_405_lists_every_method_of_the_path(team: TeamCtx) -> None:
    for url, allow in [
        ("/v1/flows", "GET, POST"),
        ("/v1/target-lists/" + str(uuid.uuid4()), "DELETE, GET, PATCH, PUT"),
        ("/v1/users", "GET, POST"),
    ]:
        r = await team.req("TRACE", url)
        refused(r, 405)
        assert r.headers["allow"] == allow, (url, r.headers["allow"])


@pytest.fixture
async def crashing_app(settings: Settings, clock: FakeClock) -> AsyncIterator[FastAPI]:
    app = create_app(settings, clock)

    async def boom() -> None:
        raise RuntimeError("secret internals: password=hunter2")

    app.add_api_route("/v1/boom", boom)
    async with app.router.lifespan_context(app):
        yield app


async def test_an_unexpected_error_is_a_json_500_without_a_traceback(crashing_app: FastAPI) -> None:
    transport = httpx.ASGITransport(app=crashing_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        r = await c.get("/v1/boom")
    assert r.status_code == 500
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {"detail": "Internal Server Error"}
    assert "hunter2" not in r.text and "Traceback" not in r.text


async def test_queue_depths_with_the_broker_down_are_a_documented_503(
    settings: Settings, clock: FakeClock, team: TeamCtx
) -> None:
    down = settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    app = create_app(down, clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            r = await c.get("/v1/ops/queues", headers=team.headers)
    refused(r, 503)
    assert "503" in app.openapi()["paths"]["/v1/ops/queues"]["get"]["responses"]


# --- query parameters ---------------------------------------------------------------------------


async def test_unknown_query_parameters_are_refused_naming_them_on_every_route(
    team: TeamCtx,
) -> None:
    """A misspelt filter must never answer with unfiltered data."""
    document = (await team.client.get("/openapi.json")).json()
    checked = 0
    for path, operations in document["paths"].items():
        url = path
        for name in re.findall(r"{(\w+)}", path):
            url = url.replace(f"{{{name}}}", str(uuid.uuid4()))
        for method in operations:
            r = await team.req(method.upper(), url, params={"sort": "name"}, json={})
            names(r, "query", "sort")
            checked += 1
    assert checked > 30
    cases = [
        ("/v1/flows", {"flow_type": "maintenance", "sort": "name"}, ["sort"]),
        (
            "/v1/sessions",
            {"trigger": "manual", "created_after": "2026-01-01T00:00:00Z"},
            ["trigger", "created_after"],
        ),
        ("/v1/batches", {"trigger": "manual", "created_afer": "2026-01-01Z"}, ["created_afer"]),
    ]
    for url, params, unknown in cases:
        r = await team.req("GET", url, params=params)
        assert r.status_code == 422, r.text
        assert [e["loc"] for e in r.json()["detail"]] == [["query", name] for name in unknown]
        assert {e["type"] for e in r.json()["detail"]} == {"extra_forbidden"}
    r = await team.req("GET", "/v1/flows", params={"sort": "name"})
    assert "flow_type" in r.json()["detail"][0]["msg"]  # it says what the route takes
    r = await team.req("GET", "/v1/flows", params={"flow_type": "maintenance", "limit": 5})
    assert r.status_code == 200
