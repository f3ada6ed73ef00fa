"""The OpenAPI document as client generators read it: stable named operations, one schema per
enum, typed responses with their error bodies, tags and examples."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

# Stable from now on: generated clients name their functions after these. Sorted; a new
# operation adds its line.
OPERATION_IDS = [
    "batches_get",
    "batches_launch",
    "batches_list",
    "flows_counts",
    "flows_create",
    "flows_delete",
    "flows_get",
    "flows_list",
    "flows_update",
    "notifications_list",
    "notifications_read",
    "notifications_read_all",
    "notifications_stream",
    "ops_health",
    "ops_queues",
    "ops_ready",
    "ops_scheduler",
    "schedules_create",
    "schedules_delete",
    "schedules_get",
    "schedules_list",
    "schedules_of_flow",
    "schedules_pause",
    "schedules_preview",
    "schedules_resume",
    "schedules_run_now",
    "schedules_stats",
    "schedules_update",
    "sessions_get",
    "sessions_list",
    "sessions_update",
    "system_job_runs_get",
    "system_job_runs_list",
    "system_jobs_list",
    "system_jobs_run",
    "system_jobs_update",
    "target_lists_create",
    "target_lists_delete",
    "target_lists_get",
    "target_lists_list",
    "target_lists_replace",
    "target_lists_update",
    "users_create",
    "users_delete",
    "users_list",
    "users_me",
    "webhooks_create",
    "webhooks_delete",
    "webhooks_deliveries",
    "webhooks_get",
    "webhooks_list",
    "webhooks_test",
    "windows_cancel",
    "windows_create",
    "windows_get",
    "windows_list",
    "windows_update",
    "windows_updates_create",
    "windows_updates_list",
]
ENUMS = {
    "DeliveryStatus",
    "Event",
    "FlowType",
    "MisfirePolicy",
    "Role",
    "SessionStatus",
    "StepType",
    "SystemJobRunStatus",
    "SystemJobTrigger",
    "Trigger",
    "Weekday",
    "WindowStatus",
}


@pytest.fixture
async def document(client: httpx.AsyncClient) -> dict[str, Any]:
    r = await client.get("/openapi.json")
    assert r.status_code == 200
    return dict(r.json())


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            yield method, path, operation


async def test_every_operation_has_its_pinned_id_and_a_summary(document: dict[str, Any]) -> None:
    ids = [op["operationId"] for _, _, op in operations(document)]
    assert sorted(ids) == OPERATION_IDS
    assert all(op.get("summary") for _, _, op in operations(document))


async def test_no_operation_id_is_fastapis_default(document: dict[str, Any]) -> None:
    # FastAPI's default is "<function>_<path with _ for every non-word character>_<method>".
    for method, path, op in operations(document):
        default_tail = re.sub(r"\W", "_", path) + f"_{method}"
        assert not op["operationId"].endswith(default_tail), op["operationId"]
        assert re.fullmatch(r"[a-z]+(_[a-z]+)+", op["operationId"]), op["operationId"]


def _enums_outside_components(node: Any, path: tuple[Any, ...]) -> Iterator[tuple[Any, ...]]:
    if isinstance(node, dict):
        if "enum" in node and not (len(path) == 3 and path[:2] == ("components", "schemas")):
            yield path
        for key, value in node.items():
            yield from _enums_outside_components(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _enums_outside_components(value, (*path, i))


async def test_each_enum_is_one_named_schema_referenced_everywhere(
    document: dict[str, Any],
) -> None:
    assert list(_enums_outside_components(document, ())) == []
    schemas = document["components"]["schemas"]
    assert {name for name, schema in schemas.items() if "enum" in schema} == ENUMS
    session = schemas["SessionOut"]["properties"]
    assert session["status"] == {"$ref": "#/components/schemas/SessionStatus"}
    list_sessions = document["paths"]["/v1/sessions"]["get"]["parameters"]
    status = next(p for p in list_sessions if p["name"] == "status")
    assert {"$ref": "#/components/schemas/SessionStatus"} in status["schema"]["anyOf"]


async def test_responses_are_typed(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    step = {"$ref": "#/components/schemas/StepOut"}
    assert schemas["FlowOut"]["properties"]["steps"]["items"] == step
    assert schemas["SessionOut"]["properties"]["steps"]["items"] == step
    recurrence = schemas["ScheduleOut"]["properties"]["recurrence"]["anyOf"][0]
    assert {"$ref": "#/components/schemas/MonthlyRecurrence"} in recurrence["oneOf"]
    for path, name in [
        ("/healthz", "Health"),
        ("/readyz", "Readiness"),
        ("/v1/ops/scheduler", "SchedulerStatus"),
    ]:
        ok = document["paths"][path]["get"]["responses"]["200"]
        assert ok["content"]["application/json"]["schema"] == {
            "$ref": f"#/components/schemas/{name}"
        }


async def test_every_error_status_has_a_body_schema(document: dict[str, Any]) -> None:
    for method, path, op in operations(document):
        for status, response in op["responses"].items():
            if status[0] in "45":
                schema = response["content"]["application/json"]["schema"]
                assert "$ref" in schema, (method, path, status)
                if status == "422":
                    assert schema == {"$ref": "#/components/schemas/HTTPValidationError"}


async def test_tags_are_described_and_writes_have_examples(document: dict[str, Any]) -> None:
    described = {tag["name"] for tag in document["tags"] if tag.get("description")}
    assert {tag for _, _, op in operations(document) for tag in op["tags"]} <= described
    schemas = document["components"]["schemas"]
    for method, path, op in operations(document):
        if method in ("post", "put", "patch") and "requestBody" in op:
            content = op["requestBody"]["content"]
            schema = content["application/json"]["schema"]
            refs = [s["$ref"] for s in schema.get("anyOf", [schema]) if "$ref" in s]
            ref = refs[0].rsplit("/", 1)[-1]
            assert schemas[ref].get("examples"), (method, path)


async def test_rules_are_described_where_they_apply(document: dict[str, Any]) -> None:
    paths = document["paths"]
    assert "02:30" in paths["/v1/maintenance-schedules"]["post"]["description"]
    assert "target_list_id" in paths["/v1/sessions/batch"]["post"]["description"]
    transitions = paths["/v1/sessions/{session_id}"]["patch"]["description"]
    assert "| `pending` | `cancelled`, `in_progress` |" in transitions
    window = paths["/v1/maintenance-windows/{window_id}/updates"]["post"]["description"]
    assert "| `in_progress` | `cancelled`, `completed` |" in window
    assert "| `cancelled` | none (final) |" in window
    webhook = paths["/v1/webhooks"]["post"]["description"]
    assert "422 naming `url`" in webhook and "HMAC-SHA256" in webhook
    for path, method in [
        ("/v1/system-jobs", "get"),
        ("/v1/system-jobs/{key}", "patch"),
        ("/v1/system-jobs/{key}/run", "post"),
    ]:
        assert "belong to the deployment" in paths[path][method]["description"]


async def test_docs_pages_load_their_assets_from_the_api_itself(client: httpx.AsyncClient) -> None:
    for page in ("/docs", "/redoc"):
        html = (await client.get(page)).text
        assert external_hosts(html) == [], page
        assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
        assert any(a.endswith(".js") for a in assets), html
        for asset in assets:
            r = await client.get(asset)
            assert r.status_code == 200 and r.content, asset


def external_hosts(html: str) -> list[str]:
    """Every host a page names: `scheme://host` or a protocol-relative `//host`."""
    return re.findall(r"(?:[a-z][a-z0-9+.-]*:)?//([^/\s\"'<>]+)", html, flags=re.IGNORECASE)
