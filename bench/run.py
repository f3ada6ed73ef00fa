"""`python -m bench.run [--quick] [--only 1,3] [--json PATH]`: run the benchmark rows, print the
table (measured, baseline, ratio, target, verdict) and write everything as JSON.

Each row measures its baseline in the same run on the same machine; only ratios are compared
with targets. Rows: 1 fan-out, 2 storm, 3 tick cost, 4 scheduler memory, 5 batch launch,
6 API reads, 7 stream fan-out, 8 webhook throughput, 9 maintenance windows, 10 retention,
11 the metrics' cost (rows 1 and 6 with metrics on vs off). The exit status is non-zero only if
a row failed to run: a missed target is a finding, not an error."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from bench import (
    fanout,
    launch,
    memory,
    metrics_cost,
    reads,
    retention,
    storm,
    stream,
    tick,
    webhooks,
    windows,
)
from bench.common import (
    ROOT,
    SERVER_URL,
    Bench,
    Result,
    close_bench,
    log,
    open_bench,
    plain_pg_url,
    wait_for,
)

ROWS: dict[str, tuple[str, Callable[[Bench], Awaitable[list[Result]]]]] = {
    "1": ("fan-out", fanout.run),
    "2": ("storm", storm.run),
    "3": ("tick cost", tick.run),
    "4": ("scheduler memory", memory.run),
    "5": ("batch launch", launch.run),
    "6": ("API reads", reads.run),
    "7": ("stream fan-out", stream.run),
    "8": ("webhook throughput", webhooks.run),
    "9": ("maintenance windows", windows.run),
    "10": ("retention", retention.run),
    "11": ("metrics cost", metrics_cost.run),
}
COLUMNS = ("row", "what", "measured", "baseline", "ratio", "target", "verdict")


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "loadavg_at_start": os.getloadavg(),
    }
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    with contextlib.suppress(OSError), open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                info["ram_gib"] = round(int(line.split()[1]) / 1024 / 1024, 1)
    with contextlib.suppress(Exception):
        info["commit"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        # The code measured is the working tree's: say if application code differed from HEAD.
        changed = subprocess.run(
            ["git", "status", "--porcelain", "--", "libs", "services"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.splitlines()
        info["app_tree"] = f"{len(changed)} files differ from HEAD" if changed else "clean"
    return info


async def server_versions(bench: Bench) -> dict[str, str]:
    import redis

    conn = await bench.connect()
    try:
        pg = str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()
    client = redis.Redis.from_url(bench.redis_url)
    try:
        rv = str(client.info("server")["redis_version"])
    finally:
        client.close()
    return {"postgresql": pg, "redis": rv}


def table(results: list[Result]) -> str:
    rows = [
        (
            r.row,
            r.what,
            r.measured,
            r.baseline,
            "" if r.ratio is None else f"{r.ratio:.2f}",
            r.target,
            r.verdict,
        )
        for r in results
    ]
    widths = [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(COLUMNS)]

    def line(cells: tuple[str, ...]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(COLUMNS), sep, *(line(r) for r in rows)])


TRANSIENT = (
    OSError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
)


async def run_row(
    bench: Bench, key: str, fn: Callable[[Bench], Awaitable[list[Result]]]
) -> list[Result]:
    """Run a row; if the shared PostgreSQL went away under it (other people's chaos tests restart
    it), wait for the server and run the row once more."""
    started = await postmaster_start()
    try:
        return await fn(bench)
    except Exception as exc:
        transient = isinstance(exc, TRANSIENT) or isinstance(exc.__cause__, TRANSIENT)
        if not transient and await postmaster_start() == started:
            raise
        log(f"row {key}: PostgreSQL restarted or went away ({exc!r:.120}); running the row again")
        bench.stop_all()
        await wait_for(bench_server_up, within=120, interval=1.0, what="PostgreSQL back")
        return await fn(bench)


async def postmaster_start() -> Any:
    """When the shared PostgreSQL server last started (None if unreachable right now)."""
    with contextlib.suppress(Exception):
        conn = await asyncpg.connect(plain_pg_url(SERVER_URL), timeout=5)
        try:
            return await conn.fetchval("SELECT pg_postmaster_start_time()")
        finally:
            await conn.close()
    return None


async def bench_server_up() -> bool:
    try:
        conn = await asyncpg.connect(plain_pg_url(SERVER_URL), timeout=5)
    except (TimeoutError, OSError, asyncpg.PostgresError):
        return False
    await conn.close()
    return True


def write_json(path: Path, report: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")


async def main_async(args: argparse.Namespace) -> int:
    selected = [r.strip() for r in args.only.split(",")] if args.only else list(ROWS)
    unknown = [r for r in selected if r not in ROWS]
    if unknown:
        print(f"unknown rows: {', '.join(unknown)} (choose from {', '.join(ROWS)})")
        return 2
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    workdir = ROOT / "bench" / "results" / f"run-{stamp}"
    started = time.monotonic()
    began = datetime.now(UTC)
    bench = await open_bench(args.quick, workdir)
    bench.shared["profile"] = {r.strip() for r in args.profile.split(",") if r.strip()}
    bench.shared["rows"] = set(selected)
    results: list[Result] = []
    durations: dict[str, float] = {}
    loads: dict[str, float] = {}
    failed = False
    try:
        info = machine() | await server_versions(bench)
        log(f"bench database {bench.db_name}, Redis namespace {bench.namespace}, logs in {workdir}")
        for key in sorted(selected, key=list(ROWS).index):
            name, fn = ROWS[key]
            log(f"row {key}: {name}")
            if key == "3" and "4" in selected:
                # Row 4's APScheduler baseline takes minutes to build at 1 M jobs: it builds
                # while row 3 runs, whose ticks alternate, so the extra load falls on the 1 k
                # reference and the large database alike.
                memory.start_baseline(bench)
            t0 = time.monotonic()
            before = len(results)
            pg_started = await postmaster_start()
            try:
                results += await run_row(bench, key, fn)
            except Exception as exc:
                failed = True
                traceback.print_exc()
                results.append(
                    Result(key, name, "—", "—", None, "—", False, f"error: {exc!r}"[:200])
                )
            finally:
                bench.stop_all()
                durations[key] = round(time.monotonic() - t0, 1)
                # Other people's work on the machine shows here (2 cores: above 2 is contention).
                loads[key] = round(os.getloadavg()[1], 2)
                if await postmaster_start() != pg_started:
                    for r in results[before:]:
                        r.values["postgres_restarted_during_row"] = True
                        r.verdict += " (PostgreSQL was restarted during this row)"
                log(f"row {key}: {durations[key]:.0f} s")
    finally:
        await close_bench(bench)
    elapsed = time.monotonic() - started
    print()
    if args.quick:
        print(
            "quick mode: small sizes, for keeping the harness alive; verdicts are indicative only"
        )
    print(table(results))
    print(
        f"\n{'quick' if args.quick else 'full'} run, {elapsed:.0f} s; "
        f"{info.get('nproc')} x {info.get('cpu')}, {info.get('ram_gib')} GiB, "
        f"PostgreSQL {info.get('postgresql')}, Redis {info.get('redis')}; "
        f"commit {info.get('commit')} ({info.get('app_tree')})\n"
        f"row durations (s): {durations}; 5-min load average after each row: {loads}"
    )
    report = {
        "started_at": began.isoformat(),
        "duration_s": round(elapsed, 1),
        "row_durations_s": durations,
        "row_loadavg_5min": loads,
        "mode": "quick" if args.quick else "full",
        "rows": selected,
        "machine": info,
        "results": [r.as_dict() for r in results],
    }
    path = Path(args.json)
    write_json(path, report)
    write_json(workdir / "report.json", report)
    print(f"JSON: {path}")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    p.add_argument("--quick", action="store_true", help="small sizes (CI: under 2 minutes)")
    p.add_argument("--only", default="", help="comma-separated rows, e.g. 1,3")
    p.add_argument(
        "--profile",
        default="",
        help="rows to profile after measuring (py-spy; rows 1, 3, 5 and 6), e.g. 1,6",
    )
    p.add_argument(
        "--json",
        default=str(ROOT / "bench" / "results" / "latest.json"),
        help="where to write the JSON report",
    )
    return asyncio.run(main_async(p.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
