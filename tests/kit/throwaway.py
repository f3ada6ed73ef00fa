"""PostgreSQL and Redis servers of a test's own, which it may stop and start (never the shared
ones): scripts/testenv.py's throwaway servers, loaded from there so that there is one way to
start them. Raises `SetupError` (from testenv) saying what to install when binaries are missing."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType


def _testenv() -> ModuleType:
    path = Path(__file__).resolve().parents[2] / "scripts" / "testenv.py"
    spec = importlib.util.spec_from_file_location("maintflow_testenv", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


testenv = _testenv()
ThrowawayPostgres = testenv.ThrowawayPostgres
ThrowawayRedis = testenv.ThrowawayRedis
SetupError: type[Exception] = testenv.SetupError
