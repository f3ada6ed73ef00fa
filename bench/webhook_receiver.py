"""The benchmark's webhook receiver: an ASGI app that reads the body and answers 200, served by
uvicorn in a process of its own (`python -m uvicorn bench.webhook_receiver:app`), so that the
sender measured and the baseline both post to the same, fast, separate server."""

from __future__ import annotations

from typing import Any


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
    )
    await send({"type": "http.response.body", "body": b"ok"})
