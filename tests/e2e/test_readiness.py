"""/readyz follows the dependencies: the API, a scheduler and a worker, on a PostgreSQL and a
Redis of this test's own, answer 503 naming the one that is down while it is stopped, and 200
again once it is back — without being restarted themselves."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.kit.cluster import Cluster, cluster_env
from tests.kit.poll import poll_until
from tests.kit.procs import Proc
from tests.kit.throwaway import SetupError, ThrowawayPostgres, ThrowawayRedis

pytestmark = pytest.mark.e2e

OK = {"status": "ok", "database": "ok", "broker": "ok"}


@pytest.fixture
async def servers() -> AsyncIterator[tuple[Any, Any]]:
    with contextlib.ExitStack() as stack:
        try:
            pg, redis = await asyncio.gather(
                asyncio.to_thread(ThrowawayPostgres, stack),
                asyncio.to_thread(ThrowawayRedis, stack),
            )
        except SetupError as exc:
            pytest.skip(f"cannot start throwaway servers: {exc}")
        yield pg, redis


async def readiness(proc: Proc) -> tuple[int, dict[str, Any]]:
    async with httpx.AsyncClient(timeout=10) as client:
        resp = await client.get(f"{proc.url}/readyz")
    return resp.status_code, dict(resp.json())


async def wait_all(procs: list[Proc], status: int, down: str | None, what: str) -> None:
    async def there() -> bool:
        for proc in procs:
            code, body = await readiness(proc)
            if code != status:
                return False
            if down is not None and not body[down].startswith("unreachable"):
                return False
            if down is None and body != OK:
                return False
        return True

    await poll_until(there, 30, what, ignore=(httpx.HTTPError,))


async def test_readyz_turns_unready_while_a_dependency_is_down_and_ready_when_it_returns(
    tmp_path: Path, servers: tuple[Any, Any]
) -> None:
    pg, redis = servers
    env = cluster_env(pg.url, redis.url, "readiness")
    async with Cluster(tmp_path / "procs", env) as cluster:
        await cluster.run_cli("migrate")
        procs = list(
            await asyncio.gather(
                cluster.start_api(),
                cluster.start_scheduler("scheduler"),
                cluster.start_worker("worker", processes=1, threads=2),
            )
        )
        await wait_all(procs, 200, None, "every process ready")

        for server, name in ((redis, "broker"), (pg, "database")):
            await asyncio.to_thread(server.stop)
            await wait_all(procs, 503, name, f"every process unready without its {name}")
            for proc in procs:
                _, body = await readiness(proc)
                other = "database" if name == "broker" else "broker"
                assert body[other] == "ok", (proc.name, body)
            await asyncio.to_thread(server.start)
            await wait_all(procs, 200, None, f"every process ready again with its {name}")

        assert all(proc.alive for proc in procs), cluster.logs()
