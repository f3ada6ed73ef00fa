"""Row 11 — what the metrics cost: row 1's fan-out (sessions/s of one fire) and row 6's API read
(`GET /v1/batches`, req/s at 32 connections) with metrics on (the default) against the same with
`MAINTFLOW_METRICS_ENABLED=false`, alternated in one run. Target: on/off ≥ 0.95. Each mode's
figure is its best round, the one least disturbed by whatever else the machine runs (as row 1
does): on a shared box the spread between rounds is larger than the effect measured."""

from __future__ import annotations

from typing import Any

from bench.common import (
    Bench,
    Proc,
    Result,
    at_least,
    fmt_rate,
    free_port,
    log,
    maintflow_command,
)
from bench.fanout import drive, relay_service, start_worker
from bench.reads import load, seed
from maintflow_workers.broker import build_broker

TARGET = 0.95
SWITCH = "METRICS_ENABLED"
MODES = {"on": "true", "off": "false"}


async def fanout_rates(bench: Bench, targets: int, reps: int) -> dict[str, list[float]]:
    """Per mode, sessions/s of `reps` fires, a worker of that mode at a time, modes in turn."""
    broker = build_broker(bench.settings)
    service = relay_service(bench, broker)
    rates: dict[str, list[float]] = {mode: [] for mode in MODES}
    offset = 100
    try:
        await service.renew()
        for rep in range(reps + 1):  # the first round warms up
            for mode, value in MODES.items():
                worker = await start_worker(
                    bench, f"worker-{mode}", **{f"MAINTFLOW_{SWITCH}": value}
                )
                try:
                    offset += 1
                    fired = await drive(bench, service, targets if rep else 200, offset=offset)
                finally:
                    bench.stop(worker)
                if rep:
                    rates[mode].append(fired["sessions_per_s"])
                    log(
                        f"row 11: fan-out, metrics {mode}: "
                        f"{fired['sessions_per_s']:,.0f} sessions/s"
                    )
    finally:
        await service.stop()
        broker.close()
    return rates


async def start_api(bench: Bench, mode: str) -> Proc:
    port = free_port()
    argv = [*maintflow_command(), "api", "--host", "127.0.0.1", "--port", str(port)]
    api = bench.spawn(f"api-{mode}", argv, bench.env(**{f"MAINTFLOW_{SWITCH}": MODES[mode]}))
    api.port = port
    await api.wait_http("/healthz")
    return api


async def read_rates(bench: Bench, rounds: int, seconds: float) -> dict[str, list[float]]:
    """Per mode, req/s of GET /v1/batches; both APIs up, loaded in turn."""
    await seed(bench)
    apis = {mode: await start_api(bench, mode) for mode in MODES}
    rates: dict[str, list[float]] = {mode: [] for mode in MODES}
    try:
        for api in apis.values():  # warm-up
            await load(f"{api.url}/v1/batches", bench.token, 1.0, bench.dsn)
        for _ in range(rounds):
            for mode, api in apis.items():
                figures = await load(f"{api.url}/v1/batches", bench.token, seconds, bench.dsn)
                assert figures["non_2xx"] == 0, figures
                rates[mode].append(figures["req_per_s"])
                log(f"row 11: GET /v1/batches, metrics {mode}: {figures['req_per_s']:,.0f} req/s")
    finally:
        for api in apis.values():
            bench.stop(api)
    return rates


def result(row: str, what: str, unit: str, rates: dict[str, list[float]]) -> Result:
    on, off = max(rates["on"]), max(rates["off"])
    ratio = on / off
    met, verdict = at_least(ratio, TARGET)
    values: dict[str, Any] = {mode: [round(r) for r in rs] for mode, rs in rates.items()}
    return Result(
        row=row,
        what=what,
        measured=fmt_rate(on, unit) + " (metrics on)",
        baseline=fmt_rate(off, unit) + " (metrics off)",
        ratio=ratio,
        target=f"≥ {TARGET}",
        met=met,
        verdict=verdict,
        values=values,
    )


async def run(bench: Bench) -> list[Result]:
    await bench.reset()
    targets = bench.size(1_000, 10_000)
    fan = await fanout_rates(bench, targets, reps=bench.size(1, 3))
    await bench.reset()
    reads = await read_rates(bench, rounds=bench.size(1, 5), seconds=bench.size(3.0, 5.0))
    return [
        result("11a", f"fan-out of {targets:,} targets, metrics on vs off", " sessions/s", fan),
        result("11b", "GET /v1/batches at 32 connections, metrics on vs off", " req/s", reads),
    ]
