"""The import rules of STYLE.md, read from the code: maintflow_core imports no web framework,
broker, Redis client or anything above it; the broker library (maintflow_broker) imports no
service; a service imports no other service — they meet in core (and the broker library). The
command line (maintflow_cli) starts the services, so it alone may import them."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {
    "maintflow_core": ROOT / "libs/core/maintflow_core",
    "maintflow_broker": ROOT / "libs/broker/maintflow_broker",
    "maintflow_api": ROOT / "services/api/maintflow_api",
    "maintflow_scheduler": ROOT / "services/scheduler/maintflow_scheduler",
    "maintflow_workers": ROOT / "services/workers/maintflow_workers",
    "maintflow_cli": ROOT / "services/cli/maintflow_cli",
}
SERVICES = {"maintflow_api", "maintflow_scheduler", "maintflow_workers", "maintflow_cli"}
OUTSIDE_WORLD = {"fastapi", "starlette", "uvicorn", "dramatiq", "redis", "apscheduler"}

# What each package may not import (top-level module names).
FORBIDDEN = {
    "maintflow_core": OUTSIDE_WORLD | SERVICES | {"maintflow_broker"},
    "maintflow_broker": SERVICES | {"fastapi", "starlette", "uvicorn", "apscheduler"},
    "maintflow_api": SERVICES - {"maintflow_api"},
    "maintflow_scheduler": SERVICES - {"maintflow_scheduler"},
    "maintflow_workers": SERVICES - {"maintflow_workers"},
    "maintflow_cli": set(),
}


def imports_of(path: Path) -> Iterator[tuple[int, str]]:
    """(line, top-level module) of every import in the file, function-local ones included."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module.split(".")[0]


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_a_package_imports_only_what_its_layer_may(package: str) -> None:
    root = PACKAGES[package]
    found = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in sorted(root.rglob("*.py"))
        for line, module in imports_of(path)
        if module in FORBIDDEN[package]
    ]
    assert found == []


def test_importing_all_of_core_loads_no_framework_broker_or_redis_client() -> None:
    """Also through third-party code: every core module imported in a fresh interpreter (the
    migration scripts are Alembic's to run, not to import)."""
    script = """
import importlib, pkgutil, sys
import maintflow_core
for info in pkgutil.walk_packages(maintflow_core.__path__, "maintflow_core."):
    if not info.name.startswith("maintflow_core.db.migrations"):
        importlib.import_module(info.name)
print(" ".join(sorted({name.split(".")[0] for name in sys.modules})))
"""
    loaded = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout.split()
    assert sorted(OUTSIDE_WORLD & set(loaded)) == []
    assert "maintflow_core" in loaded
