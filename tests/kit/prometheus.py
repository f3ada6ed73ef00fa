"""A real Prometheus for tests: the binaries (Debian's `prometheus` package, installed when missing
and the run may), one server on a port and a storage directory of its own scraping given targets
every second, its query API, and what maintflow's dashboard and alert rules ask of it.

    async with PrometheusServer(tmp_path, {"maintflow-api": [api.url]}) as prom:
        await prom.wait_scraped(["maintflow-api"])
        await prom.query('sum(maintflow_scheduler_is_leader)')
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from tests.kit.poll import poll_until
from tests.kit.procs import Proc, clean_environ, free_port, spawn

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
RULES = DEPLOY / "prometheus" / "rules.yml"
RULES_TEST = DEPLOY / "prometheus" / "rules_test.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "maintflow.json"
# Grafana's own variables, as Grafana would substitute them.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h"}
# Series names in a PromQL expression: ours and Dramatiq's.
SERIES = re.compile(r"\b((?:maintflow|dramatiq)_[a-z0-9_]+)\b")


def binaries() -> tuple[str, str]:
    """Paths of `prometheus` and `promtool`. Missing: installed from Debian's `prometheus`
    package when this run is root with apt-get; otherwise the test is skipped, saying why."""
    found = shutil.which("prometheus"), shutil.which("promtool")
    if None in found and shutil.which("apt-get") and _is_root():
        subprocess.run(
            ["apt-get", "install", "-y", "-q", "prometheus"],
            capture_output=True,
            timeout=300,
            check=False,
        )
        found = shutil.which("prometheus"), shutil.which("promtool")
    prometheus, promtool = found
    if prometheus is None or promtool is None:
        pytest.skip(
            "needs Prometheus (prometheus and promtool): apt-get install prometheus (as root) "
            "or put both binaries on PATH"
        )
    return prometheus, promtool


def _is_root() -> bool:
    import os

    return os.geteuid() == 0


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    _, tool = binaries()
    return subprocess.run(
        [tool, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def dashboard_expressions() -> list[str]:
    """Every PromQL expression of the Grafana dashboard, Grafana's variables substituted."""
    board = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for panel in board["panels"] for t in panel.get("targets", [])]
    for variable, value in GRAFANA_VARIABLES.items():
        exprs = [e.replace(variable, value) for e in exprs]
    return exprs


def rule_expressions() -> list[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [str(rule["expr"]) for group in groups for rule in group["rules"]]


def queried_series() -> set[str]:
    """Every series name the dashboard and the alert rules query."""
    return {m for e in [*dashboard_expressions(), *rule_expressions()] for m in SERIES.findall(e)}


class PrometheusServer:
    """`prometheus` on a free port with its own storage, scraping `targets` (job name → base URLs
    whose /metrics it reads) every second, with maintflow's alert rules loaded."""

    def __init__(self, workdir: Path, targets: Mapping[str, Sequence[str]]) -> None:
        self.workdir = Path(workdir)
        self.targets = targets
        self.port = free_port()
        self.proc: Proc | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _config(self) -> dict[str, Any]:
        return {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(RULES)],
            "scrape_configs": [
                {
                    "job_name": job,
                    "static_configs": [{"targets": [urlsplit(u).netloc for u in urls]}],
                }
                for job, urls in self.targets.items()
            ],
        }

    async def __aenter__(self) -> PrometheusServer:
        prometheus, _ = binaries()
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "prometheus.yml"
        config.write_text(yaml.safe_dump(self._config()))
        argv = [
            prometheus,
            f"--config.file={config}",
            f"--storage.tsdb.path={self.workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
        ]
        self.proc = spawn("prometheus", argv, self.workdir, clean_environ(), role="prometheus")
        self.proc.port = self.port
        await self.proc.wait_http("/-/ready", 60)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.proc is not None:
            self.proc.stop()

    async def api(self, path: str, **params: str) -> Any:
        async with httpx.AsyncClient(base_url=self.url, timeout=10) as client:
            resp = await client.get(f"/api/v1/{path}", params=params)
        body = resp.json()
        if body.get("status") != "success":
            raise AssertionError(f"GET /api/v1/{path} {params}: {resp.status_code} {body}")
        return body["data"]

    async def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector `expr` evaluates to now (a parse error fails with its message)."""
        data = await self.api("query", query=expr)
        return list(data["result"]) if data["resultType"] == "vector" else [data["result"]]

    async def wait_scraped(self, jobs: Sequence[str], timeout: float = 60) -> None:
        """Until every target of `jobs` has been scraped successfully."""

        async def all_up() -> bool:
            active = (await self.api("targets"))["activeTargets"]
            mine = [t for t in active if t["labels"]["job"] in jobs]
            return bool(mine) and all(t["health"] == "up" for t in mine)

        await poll_until(all_up, timeout, f"targets of {list(jobs)} up", detail=self.log_tail)

    def log_tail(self) -> str:
        return self.proc.tail(40) if self.proc else ""
