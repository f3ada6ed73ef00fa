"""The ops port of the scheduler and the workers: `GET /metrics` (Prometheus text format),
`/healthz` (the process answers) and `/readyz` (database and broker reachable, see
`maintflow_core.health`). The API serves the same three paths on its own port.

A standard-library threading HTTP server: it runs beside the process's event loop (the
scheduler's) or in a process of its own (the workers', forked by Dramatiq), and a slow probe
never delays a tick. `/readyz` runs the readiness coroutine on a fresh event loop per request."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
from collections.abc import Callable, Coroutine, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from maintflow_core import metrics

log = logging.getLogger("maintflow.ops")

Readiness = Callable[[], Coroutine[Any, Any, tuple[int, dict[str, Any]]]]


def registry() -> CollectorRegistry:
    """Every metric of this process: in prometheus-client's multiprocess mode (the workers, an
    API with several processes) the sum over the processes' files, else this process's own."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        collected = CollectorRegistry()
        MultiProcessCollector(collected)  # type: ignore[no-untyped-call]
        return collected
    return REGISTRY


class _RoleFamilies(Collector):
    def __init__(self, source: CollectorRegistry, prefixes: tuple[str, ...]) -> None:
        self.source, self.prefixes = source, prefixes

    def collect(self) -> Iterable[Metric]:
        return (m for m in self.source.collect() if m.name.startswith(self.prefixes))


def exposition(roles: Iterable[str]) -> bytes:
    """`/metrics` of a process running `roles` (see `metrics.ROLE_PREFIXES`)."""
    only = CollectorRegistry(auto_describe=False)
    only.register(_RoleFamilies(registry(), metrics.exported_prefixes(roles)))
    return generate_latest(only)


class OpsServer:
    def __init__(self, host: str, port: int, ready: Readiness, roles: Iterable[str]) -> None:
        handler = _handler(ready, tuple(roles))
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, name="maintflow-ops", daemon=True
        )
        self._thread.start()
        log.info("ops_port_listening", extra={"port": self.port})

    def serve_forever(self) -> None:
        log.info("ops_port_listening", extra={"port": self.port})
        self.httpd.serve_forever()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)


def _handler(ready: Readiness, roles: tuple[str, ...]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, exposition(roles), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                self._json(200, {"status": "ok"})
            elif path == "/readyz":
                self._json(*asyncio.run(ready()))
            else:
                self._json(404, {"detail": "Not Found"})

        def _json(self, status: int, body: dict[str, Any]) -> None:
            self._send(status, json.dumps(body).encode(), "application/json")

        def _send(self, status: int, payload: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # probes every few seconds: not events worth a log line

    return Handler
