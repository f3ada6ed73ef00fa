"""A real HTTP receiver of webhooks on 127.0.0.1, in a thread of the test process: it records
every request (headers and body) and answers each with the next of its scripted answers — a
status code, or HANG (hold the request unanswered until the receiver closes or `release()`) —
then 200 once the script is used up.

    with Receiver(answers=[500, 500]) as receiver:
        ...register receiver.url, raise an event...
        await poll_until(lambda: receiver.count(200) == 1, 30, "delivered")
        assert receiver.verified(secret)  # every request, by the standardwebhooks package
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from standardwebhooks.webhooks import Webhook

HANG = -1


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes
    answered: int  # the status answered, or HANG

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # A burst of deliveries opens many connections at once; socketserver's backlog of 5 would
    # drop the rest's SYNs, whose retransmission comes after the tests' 1 s timeout.
    request_queue_size = 128

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A sender that goes away (a worker killed or stopped with its keep-alive connections
        # open) is part of what these tests do, not an error of the receiver's.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class Receiver:
    def __init__(self, answers: Sequence[int] = (), host: str = "127.0.0.1") -> None:
        self._answers = list(answers)
        self._lock = threading.Lock()
        self._release = threading.Event()
        self.requests: list[Received] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real receivers do

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                answer = receiver._next(dict(self.headers.items()), body)
                if answer == HANG:
                    receiver._release.wait()
                    self.close_connection = True
                    return
                self.send_response(answer)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = _Server((host, 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )

    def _next(self, headers: dict[str, str], body: bytes) -> int:
        with self._lock:
            answer = self._answers.pop(0) if self._answers else 200
            lowered = {k.lower(): v for k, v in headers.items()}
            self.requests.append(Received(lowered, body, answer))
            return answer

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/hooks"

    def release(self) -> None:
        """Let held (HANG) requests go: their connections close without an answer."""
        self._release.set()

    def received(self) -> list[Received]:
        with self._lock:
            return list(self.requests)

    def count(self, answered: int | None = None) -> int:
        return sum(1 for r in self.received() if answered is None or r.answered == answered)

    def verified(self, secret: str) -> list[Any]:
        """Every request verified as a Standard Webhooks receiver does (raises if one is not);
        returns their parsed bodies."""
        signer = Webhook(secret)
        return [signer.verify(r.body, r.headers) for r in self.received()]

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
