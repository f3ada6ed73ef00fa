"""deploy/ read as the tools that consume it would: the alert rules by promtool (syntax and their
unit tests), the dashboard as JSON, the compose file against the Compose Specification's schema,
the Kubernetes manifests (rendered by kustomize when kubectl is installed) against the Kubernetes
schemas, every command any of them runs against the real `maintflow` command line, and the
PostgreSQL connections each topology can open against `max_connections`. (The dashboard's and
the rules' expressions are run against a real Prometheus in tests/e2e/test_observability.py.)"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

from maintflow_cli.main import parser
from maintflow_core.settings import Settings
from tests.kit.prometheus import DASHBOARD, DEPLOY, RULES, RULES_TEST, promtool

COMPOSE = DEPLOY / "compose.yaml"
DOCKERFILE = DEPLOY / "Dockerfile"
K8S = DEPLOY / "k8s"
OVERLAY = K8S / "overlays" / "example"
COMPOSE_SCHEMA = Path(__file__).with_name("compose-spec.json")  # origin: README.md here
KUBERNETES_VERSION = "1.33.0"
# Custom resources: their operators' schemas are not Kubernetes's own.
CUSTOM_KINDS = {"ScaledObject", "ServiceMonitor"}
DEFAULTS = Settings(database_url="postgresql+asyncpg://unused/unused")
# docs/operations.md, "Connection budget": PostgreSQL's default max_connections minus the
# superuser reserve, of which a topology may take at most this share (room for psql, a Job).
MAX_CONNECTIONS = 100 - 3
BUDGET_SHARE = 0.92
SCHEDULER_CONNECTIONS = 6
PROBE_CONNECTIONS = 1  # a scheduler's or worker's /readyz opens one of its own while it runs


def test_the_alert_rules_pass_promtool_check_and_their_unit_tests() -> None:
    checked = promtool("check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = promtool("test", "rules", RULES_TEST.name, cwd=RULES_TEST.parent)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    # Every alert has a test that expects it to fire.
    alerts = {r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]}
    fired = {
        case["alertname"]
        for test in yaml.safe_load(RULES_TEST.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
        if case["exp_alerts"]
    }
    assert alerts == fired


def test_the_dashboard_is_json_with_a_query_in_every_panel() -> None:
    board = json.loads(DASHBOARD.read_text())
    assert board["uid"] == "maintflow"
    for panel in board["panels"]:
        assert panel["targets"] and all(t["expr"].strip() for t in panel["targets"]), panel


def test_the_compose_file_follows_the_compose_specification() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    # The schema says draft-07 (under a URL jsonschema does not recognise by itself).
    jsonschema.Draft7Validator(json.loads(COMPOSE_SCHEMA.read_text())).validate(compose)
    services = compose["services"]
    assert services["scheduler"]["deploy"]["replicas"] == 2
    assert services["worker"]["deploy"]["replicas"] == 2
    for name in ("api", "scheduler", "worker"):
        waits = services[name]["depends_on"]
        assert waits["migrate"]["condition"] == "service_completed_successfully", name
    redis_args = services["redis"]["command"]
    assert "noeviction" in redis_args and "--appendonly" in redis_args


def kubernetes_objects() -> list[dict[str, Any]]:
    """The example overlay rendered by kustomize (kubectl's) when kubectl is installed; else
    the base's files as they are."""
    kubectl = shutil.which("kubectl")
    if kubectl:
        rendered = subprocess.run(
            [kubectl, "kustomize", str(OVERLAY)], capture_output=True, text=True, check=True
        ).stdout
        return [d for d in yaml.safe_load_all(rendered) if d]
    base = K8S / "base"
    listed = yaml.safe_load((base / "kustomization.yaml").read_text())["resources"]
    return [d for f in listed for d in yaml.safe_load_all((base / f).read_text()) if d]


def test_the_kubernetes_manifests_validate_against_the_kubernetes_schemas() -> None:
    objects = kubernetes_objects()
    kinds = sorted(o["kind"] for o in objects)
    for needed in ("ConfigMap", "Job", "PodDisruptionBudget", "Secret", "ScaledObject"):
        assert needed in kinds
    assert kinds.count("Deployment") == 3 and "ServiceMonitor" in kinds
    for obj in objects:
        if obj["kind"] in CUSTOM_KINDS:
            assert obj["spec"], obj  # the operator validates the rest
            continue
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    hpa = yaml.safe_load((K8S / "base" / "worker-hpa.yaml").read_text())
    kubernetes_validate.validate(hpa, KUBERNETES_VERSION, strict=True)


def deployments() -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in kubernetes_objects() if o["kind"] == "Deployment"}


def test_every_pod_is_probed_on_its_port_and_workers_outlast_an_actor() -> None:
    ports = {
        "maintflow-api": 8000,
        "maintflow-scheduler": DEFAULTS.scheduler_ops_port,
        "maintflow-worker": DEFAULTS.worker_ops_port,
    }
    found = deployments()
    assert found["maintflow-scheduler"]["spec"]["replicas"] == 2
    for name, port in ports.items():
        pod = found[name]["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        named = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert named[container["readinessProbe"]["httpGet"]["port"]] == port
        assert container["resources"]["requests"] and container["resources"]["limits"]
    worker = found["maintflow-worker"]["spec"]["template"]["spec"]
    assert worker["terminationGracePeriodSeconds"] > DEFAULTS.actor_time_limit_s
    compose_grace = yaml.safe_load(COMPOSE.read_text())["services"]["worker"]["stop_grace_period"]
    assert int(compose_grace.rstrip("s")) > DEFAULTS.actor_time_limit_s


def dockerfile_commands() -> list[list[str]]:
    """The exec-form commands of the Dockerfile: ENTRYPOINT + CMD, and the HEALTHCHECK's."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    forms = {
        key: json.loads(m.group(1))
        for key in ("ENTRYPOINT", "CMD")
        if (m := re.search(rf"^{key} (\[.*\])$", text, re.M))
    }
    check = re.search(r"^HEALTHCHECK .* CMD (\[.*\])$", text, re.M)
    assert check and forms.get("ENTRYPOINT") == ["maintflow"], text
    return [forms["ENTRYPOINT"] + forms["CMD"], json.loads(check.group(1))]


def all_commands() -> list[list[str]]:
    """Every `maintflow …` command deploy/ runs: the image's, compose's, the pods'."""
    commands = dockerfile_commands()
    for name, service in yaml.safe_load(COMPOSE.read_text())["services"].items():
        if service.get("image", "").startswith("maintflow") and "command" in service:
            commands.append(["maintflow", *service["command"]])
        elif "image" not in service:
            raise AssertionError(f"compose service {name} has no image")
    for obj in kubernetes_objects():
        if obj["kind"] in ("Deployment", "Job"):
            for container in obj["spec"]["template"]["spec"]["containers"]:
                commands.append(["maintflow", *container["args"]])
    return commands


def test_every_command_deploy_runs_is_a_real_maintflow_command() -> None:
    commands = all_commands()
    roles = {c[1] for c in commands}
    assert {"api", "scheduler", "worker", "migrate", "healthcheck"} <= roles
    cli = parser()
    for command in commands:
        assert command[0] == "maintflow", command
        try:
            cli.parse_args(command[1:])
        except SystemExit as exc:  # argparse's way of refusing
            raise AssertionError(f"not a maintflow command: {shlex.join(command)}") from exc


def connections(api: int, api_processes: int, schedulers: int, workers: int, threads: int) -> int:
    # A pool, and the live notification streams' one LISTEN connection (docs/operations.md).
    per_api = DEFAULTS.db_pool_size + DEFAULTS.db_max_overflow + 1
    per_worker = 2 * threads  # a SQLAlchemy pool and an asyncpg pool, each of `threads`
    probes = (schedulers + workers) * PROBE_CONNECTIONS
    return (
        api * api_processes * per_api
        + schedulers * SCHEDULER_CONNECTIONS
        + (workers * per_worker)
        + probes
    )


def flag(args: list[str], name: str, default: int) -> int:
    return int(args[args.index(name) + 1]) if name in args else default


def test_each_topology_fits_postgresqls_default_max_connections_with_room() -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    compose_worker = services["worker"]["command"]
    compose = connections(
        api=1,
        api_processes=flag(services["api"]["command"], "--workers", 1),
        schedulers=services["scheduler"]["deploy"]["replicas"],
        workers=services["worker"]["deploy"]["replicas"] * flag(compose_worker, "--processes", 1),
        threads=flag(compose_worker, "--threads", DEFAULTS.worker_threads),
    )
    found = deployments()

    def args(name: str) -> list[str]:
        return list(found[name]["spec"]["template"]["spec"]["containers"][0]["args"])

    k8s = connections(
        api=found["maintflow-api"]["spec"]["replicas"],
        api_processes=flag(args("maintflow-api"), "--workers", 1),
        schedulers=found["maintflow-scheduler"]["spec"]["replicas"],
        workers=found["maintflow-worker"]["spec"]["replicas"]
        * flag(args("maintflow-worker"), "--processes", 1),
        threads=flag(args("maintflow-worker"), "--threads", DEFAULTS.worker_threads),
    )
    for name, needed in (("compose", compose), ("kubernetes", k8s)):
        assert needed <= BUDGET_SHARE * MAX_CONNECTIONS, f"{name}: {needed} connections"
