"""Row 6 — API reads: req/s and p99 of `GET /v1/batches` (50 items with rollups) and
`GET /v1/sessions?batch_id=` (50 items), with auth, at 32 connections against one
`maintflow api` process, next to the same pages served by bench/reads_app.py (raw asyncpg; plain
ORM with lazy relations) in one uvicorn process. Load comes from wrk when it is installed,
otherwise from an asyncio httpx client."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import sys
import time
from typing import Any

import asyncpg
import httpx

from bench.common import (
    STEPS,
    Bench,
    Proc,
    PySpy,
    Result,
    at_least,
    at_most,
    fmt_rate,
    free_port,
    log,
    maintflow_command,
    median,
    percentile,
)
from maintflow_api.app import create_app

CONNECTIONS = 32
RAW_TARGET = 0.7
ORM_TARGET = 3.0
P99_LIMIT_MS = 50.0
BATCHES = 60
SESSIONS_EACH = 20
BIG_BATCH = 200


async def seed(bench: Bench) -> str:
    """60 batches of 20 sessions and one of 200, through the API; statuses spread over all five.
    Returns the big batch's id."""
    app = create_app(bench.settings)
    headers = {"Authorization": f"Bearer {bench.token}"}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            r = await client.post(
                "/v1/flows",
                json={"name": "Patch RDS", "flow_type": "maintenance", "steps": STEPS},
                headers=headers,
            )
            flow_id = r.json()["id"]

            async def launch(n: int, tag: str) -> str:
                targets = [{"label": f"{tag}-{i:04d}", "notes": f"host {i}"} for i in range(n)]
                r = await client.post(
                    "/v1/sessions/batch",
                    json={"flow_id": flow_id, "targets": targets},
                    headers=headers,
                )
                assert r.status_code == 201, r.text
                return str(r.json()["batch_id"])

            big = await launch(BIG_BATCH, "big")
            for k in range(BATCHES):
                await launch(SESSIONS_EACH, f"b{k:03d}")
    conn = await bench.connect()
    try:
        await conn.execute(
            "UPDATE sessions SET status = (ARRAY['pending', 'in_progress', 'completed', "
            "'failed', 'cancelled'])[1 + abs(hashtext(target_label)) % 5]"
        )
    finally:
        await conn.close()
    await bench.analyze("sessions", "batches", "api_tokens", "users", vacuum=True)
    return big


def parse_wrk(output: str) -> dict[str, Any]:
    def seconds(value: str, unit: str) -> float:
        return float(value) * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[unit]

    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s|m)\s*$", output, re.M)
    p50 = re.search(r"^\s+50%\s+([\d.]+)(us|ms|s|m)\s*$", output, re.M)
    total = re.search(r"(\d+) requests in", output)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(r"Socket errors: (.*)", output)
    if not (rps and p99 and p50 and total):
        raise RuntimeError(f"unexpected wrk output:\n{output}")
    return {
        "req_per_s": float(rps.group(1)),
        "p50_ms": seconds(*p50.groups()) * 1000,
        "p99_ms": seconds(*p99.groups()) * 1000,
        "requests": int(total.group(1)),
        "non_2xx": int(bad.group(1)) if bad else 0,
        "socket_errors": errors.group(1) if errors else None,
        "tool": "wrk",
    }


async def load_wrk(url: str, token: str | None, seconds: float) -> dict[str, Any]:
    argv = [
        "wrk",
        "-t1",
        f"-c{CONNECTIONS}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "30s",
        "--latency",
    ]
    if token:
        argv += ["-H", f"Authorization: Bearer {token}"]
    done = await asyncio.to_thread(
        subprocess.run, [*argv, url], capture_output=True, text=True, timeout=seconds + 60
    )
    return parse_wrk(done.stdout)


async def load_httpx(url: str, token: str | None, seconds: float) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    latencies: list[float] = []
    bad = 0
    limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)
    async with httpx.AsyncClient(limits=limits, timeout=30, headers=headers) as client:
        deadline = time.perf_counter() + seconds

        async def user() -> None:
            nonlocal bad
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                response = await client.get(url)
                latencies.append(time.perf_counter() - started)
                bad += response.status_code >= 300

        started = time.perf_counter()
        await asyncio.gather(*(user() for _ in range(CONNECTIONS)))
        elapsed = time.perf_counter() - started
    return {
        "req_per_s": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "requests": len(latencies),
        "non_2xx": bad,
        "tool": "httpx",
    }


async def load(
    url: str, token: str | None, seconds: float, dsn: str | None = None
) -> dict[str, Any]:
    if shutil.which("wrk"):
        figures = await load_wrk(url, token, seconds)
    else:
        figures = await load_httpx(url, token, seconds)
    await settle(url)
    if dsn is not None:
        await database_quiet(dsn)
    return figures


async def database_quiet(dsn: str, within: float = 60.0) -> None:
    """Wait until no other backend of the bench database runs a query (three readings in a
    row, 20 ms apart). /healthz answers fast even while a server still works through abandoned
    requests that mostly wait on PostgreSQL — the ORM baseline's batch page leaves ~32 of them,
    each ~50 lazy loads — and those queries used to land in the next kind's first seconds
    (a p99 of seconds for the API page that followed it)."""
    conn = await asyncpg.connect(dsn)
    try:
        deadline = time.monotonic() + within
        quiet = 0
        while quiet < 3 and time.monotonic() < deadline:
            busy = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid() AND state NOT IN ('idle')"
            )
            quiet = quiet + 1 if busy == 0 else 0
            await asyncio.sleep(0.02)
    finally:
        await conn.close()


async def settle(url: str, within: float = 60.0) -> None:
    """Wait until the server has finished the requests the load generator abandoned when it
    stopped (uvicorn finishes them anyway), so they do not slow the next measurement: its
    /healthz must answer fast three times in a row."""
    health = httpx.URL(url).copy_with(path="/healthz", query=None)
    deadline = time.monotonic() + within
    fast = 0
    async with httpx.AsyncClient(timeout=within) as client:
        while fast < 3 and time.monotonic() < deadline:
            started = time.perf_counter()
            await client.get(health)
            fast = fast + 1 if time.perf_counter() - started < 0.01 else 0
            await asyncio.sleep(0.02)


async def start_servers(bench: Bench) -> tuple[Proc, Proc]:
    api = bench.spawn(
        "api",
        [*maintflow_command(), "api", "--host", "127.0.0.1", "--port", str(port := free_port())],
    )
    api.port = port
    base = bench.spawn(
        "reads-app",
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bench.reads_app:create",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port := free_port()),
            "--log-level",
            bench.settings.log_level.lower(),
            "--timeout-graceful-shutdown",
            "20",
        ],
    )
    base.port = port
    await api.wait_http("/healthz")
    await base.wait_http("/healthz")
    return api, base


async def run(bench: Bench) -> list[Result]:
    await bench.reset()
    big = await seed(bench)
    api = base = None
    rounds, seconds, warmup = bench.size(1, 3), bench.size(3.0, 6.0), bench.size(1.0, 3.0)
    results: list[Result] = []
    try:
        api, base = await start_servers(bench)
        team = bench.team_id
        pages = {
            "batches": (
                f"{api.url}/v1/batches",
                f"{base.url}/raw/batches?team_id={team}",
                f"{base.url}/orm/batches?team_id={team}",
            ),
            "sessions": (
                f"{api.url}/v1/sessions?batch_id={big}",
                f"{base.url}/raw/sessions?team_id={team}&batch_id={big}",
                f"{base.url}/orm/sessions?team_id={team}&batch_id={big}",
            ),
        }
        headers = {"Authorization": f"Bearer {bench.token}"}
        async with httpx.AsyncClient(headers=headers) as client:
            for urls in pages.values():
                for url in urls:
                    r = await client.get(url)
                    assert r.status_code == 200 and len(r.json()["items"]) == 50, (
                        url,
                        r.text[:300],
                    )
        for (name, urls), row in zip(pages.items(), ("6a", "6b"), strict=True):
            figures = await alternate(name, urls, bench.token, rounds, seconds, warmup, bench.dsn)
            results += page_results(row, name, figures)
            if "6" in bench.shared.get("profile", ()):
                async with PySpy(bench, api.pid, f"row6-api-{name}"):
                    profiled = await load(urls[0], bench.token, 2 * seconds)
                log(f"row 6: profiled {name}: {profiled['req_per_s']:,.0f} req/s")
    finally:
        for proc in (api, base):
            if proc is not None:
                bench.stop(proc)
    return results


async def alternate(
    name: str,
    urls: tuple[str, str, str],
    token: str,
    rounds: int,
    seconds: float,
    warmup: float,
    dsn: str | None = None,
) -> dict[str, dict[str, Any]]:
    """Rounds of API, raw, ORM in turn (so all three see the same background load); per kind
    the median over rounds of req/s and of p99."""
    kinds = ("api", "raw", "orm")
    for kind, url in zip(kinds, urls, strict=True):
        await load(url, token if kind == "api" else None, warmup, dsn)
    runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in kinds}
    for _ in range(rounds):
        for kind, url in zip(kinds, urls, strict=True):
            figures = await load(url, token if kind == "api" else None, seconds, dsn)
            assert figures["non_2xx"] == 0, figures
            runs[kind].append(figures)
    out: dict[str, dict[str, Any]] = {}
    for kind, figures in runs.items():
        out[kind] = {
            "req_per_s": median([f["req_per_s"] for f in figures]),
            "p50_ms": median([f["p50_ms"] for f in figures]),
            "p99_ms": median([f["p99_ms"] for f in figures]),
            "rounds": figures,
        }
        log(
            f"row 6: {name} {kind}: {out[kind]['req_per_s']:,.0f} req/s, "
            f"p99 {out[kind]['p99_ms']:.1f} ms"
        )
    return out


def page_results(row: str, name: str, f: dict[str, dict[str, Any]]) -> list[Result]:
    path = "GET /v1/batches" if name == "batches" else "GET /v1/sessions?batch_id="
    rps = f["api"]["req_per_s"]
    out = []
    for kind, target, label in (
        ("raw", RAW_TARGET, "bare endpoint, raw asyncpg"),
        ("orm", ORM_TARGET, "plain ORM, lazy relations"),
    ):
        if f[kind]["req_per_s"] > 0:
            ratio: float | None = rps / f[kind]["req_per_s"]
            met, verdict = at_least(ratio, target)
        else:  # not one baseline request finished within the slice (wrk counts none)
            ratio, met, verdict = None, rps > 0, "met (the baseline finished no request)"
        out.append(
            Result(
                row=row,
                what=f"API reads: {path} (50 items), req/s at {CONNECTIONS} connections vs {kind}",
                measured=fmt_rate(rps, " req/s"),
                baseline=f"{fmt_rate(f[kind]['req_per_s'], ' req/s')} ({label})",
                ratio=ratio,
                target=f"≥ {target:g}",
                met=met,
                verdict=verdict,
                values=f,
            )
        )
    p99 = f["api"]["p99_ms"]
    met, verdict = at_most(p99 / P99_LIMIT_MS, 1.0)
    out.append(
        Result(
            row=row,
            what=f"API reads: {path} p99 latency at {CONNECTIONS} connections",
            measured=f"p99 {p99:.1f} ms (p50 {f['api']['p50_ms']:.1f} ms)",
            baseline=f"raw p99 {p99_text(f['raw'])}, ORM p99 {p99_text(f['orm'])}",
            ratio=None,
            target=f"p99 ≤ {P99_LIMIT_MS:g} ms",
            met=met,
            verdict=verdict if met else f"missed by {(p99 / P99_LIMIT_MS - 1) * 100:.0f} %",
            values=f,
        )
    )
    return out


def p99_text(figures: dict[str, Any]) -> str:
    return f"{figures['p99_ms']:.1f} ms" if figures["req_per_s"] > 0 else "n/a"
