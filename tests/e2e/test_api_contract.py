"""Two `maintflow api` processes on one database and one Redis, as a load balancer would spread a
client's requests: they share each token's request limit; of two writers sending the same
If-Match tag, one to each process, exactly one wins; a target list goes in and out as CSV and
is edited with PATCH on either.

The limit is set explicitly to 20 requests a minute: with the shipped 100 per 2 seconds, whether
a burst crosses it would depend on how fast this machine answers."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import REDIS_URL
from tests.kit.broker import drop_namespace
from tests.kit.cluster import Cluster, cluster_env
from tests.kit.logs import last_json_object
from tests.kit.procs import Proc
from tests.kit.seed import STEPS, post_created

pytestmark = pytest.mark.e2e
LIMIT = 20


@dataclass
class TwoApis:
    cluster: Cluster
    apis: tuple[Proc, Proc]

    async def clients(self, stack: AsyncExitStack) -> tuple[httpx.AsyncClient, httpx.AsyncClient]:
        """One client per API process, authenticated as the admin of a new team."""
        created = await self.cluster.run_cli("admin", "create-team", uuid.uuid4().hex[:8])
        headers = {"Authorization": f"Bearer {last_json_object(created)['token']}"}
        a, b = (
            httpx.AsyncClient(base_url=api.url, headers=headers, timeout=10) for api in self.apis
        )
        return await stack.enter_async_context(a), await stack.enter_async_context(b)


@pytest.fixture(scope="module")
def namespace() -> Iterator[str]:
    name = f"mftest-{uuid.uuid4().hex[:10]}"
    yield name
    drop_namespace(REDIS_URL, name)


@pytest.fixture(scope="module")
async def two_apis(
    tmp_path_factory: pytest.TempPathFactory, database_url: str, namespace: str
) -> AsyncIterator[TwoApis]:
    env = cluster_env(database_url, REDIS_URL, namespace, rate_limit=f"{LIMIT}/60 seconds")
    workdir: Path = tmp_path_factory.mktemp("two-apis")
    async with Cluster(workdir, env) as cluster:
        apis = await asyncio.gather(cluster.start_api("api-a"), cluster.start_api("api-b"))
        yield TwoApis(cluster, (apis[0], apis[1]))
        cluster.assert_no_job_failures("api-a")
        cluster.assert_no_job_failures("api-b")


async def test_both_api_processes_share_a_tokens_limit(two_apis: TwoApis) -> None:
    async with AsyncExitStack() as stack:
        a, b = await two_apis.clients(stack)
        burst = [client.get("/v1/users/me") for _ in range(15) for client in (a, b)]
        answers = await asyncio.gather(*burst)
    statuses = [r.status_code for r in answers]
    # 30 requests, 15 to each process: 20 in all get through, not 15 + 15.
    assert statuses.count(200) == LIMIT and statuses.count(429) == 30 - LIMIT, statuses
    refused = next(r for r in answers if r.status_code == 429)
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.headers["RateLimit-Policy"] == f"{LIMIT};w=60"
    assert refused.headers["RateLimit-Remaining"] == "0"


async def test_if_match_writers_on_two_processes_one_wins(two_apis: TwoApis) -> None:
    async with AsyncExitStack() as stack:
        a, b = await two_apis.clients(stack)
        flow = await post_created(
            a, "/v1/flows", {"name": "Patch", "flow_type": "maintenance", "steps": STEPS}
        )
        url = f"/v1/flows/{flow['id']}"
        tag = (await b.get(url)).headers["ETag"]
        assert (await a.get(url, headers={"If-None-Match": tag})).status_code == 304
        first, second = await asyncio.gather(
            a.patch(url, json={"name": "From A"}, headers={"If-Match": tag}),
            b.patch(url, json={"name": "From B"}, headers={"If-Match": tag}),
        )
        assert sorted([first.status_code, second.status_code]) == [200, 412]
        winner = first if first.status_code == 200 else second
        now = await b.get(url)
        assert now.json()["name"] == winner.json()["name"]
        assert now.headers["ETag"] == winner.headers["ETag"]


async def test_a_target_list_kept_as_csv_and_edited_on_either_process(two_apis: TwoApis) -> None:
    async with AsyncExitStack() as stack:
        a, b = await two_apis.clients(stack)
        csv = b"label,notes\r\nweb-01,rack 4\r\nweb-02,\r\n"
        r = await a.post(
            "/v1/target-lists",
            params={"name": "Web"},
            content=csv,
            headers={"Content-Type": "text/csv"},
        )
        assert r.status_code == 201, r.text
        url = f"/v1/target-lists/{r.json()['id']}"
        edit = {"add": [{"label": "web-03"}], "remove": ["web-02"]}
        assert (await b.patch(url, json=edit)).status_code == 200
        again = await b.patch(url, json={"add": [{"label": "web-03"}]})
        assert again.status_code == 409 and "'web-03'" in again.json()["detail"]
        back = await a.get(url, headers={"Accept": "text/csv"})
        assert back.text == "label,notes\r\nweb-01,rack 4\r\nweb-03,\r\n"
