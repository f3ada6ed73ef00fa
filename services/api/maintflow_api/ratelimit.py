"""Requests per API token, limited with the `limits` library: a moving window (at most N
requests in any window of W seconds; "100/2 seconds" is 50 a second on average with bursts of
100), kept in Redis in the distributed mode so that every API process shares it, and in memory in
`maintflow dev`. Batch launches and run-nows also count against a lower limit of their own.

A refused request is 429 with `Retry-After` and the RateLimit-Limit, RateLimit-Remaining,
RateLimit-Reset and RateLimit-Policy headers of draft-ietf-httpapi-ratelimit-headers-06. When
Redis cannot be reached the limit is not enforced (logged): the API keeps serving."""

from __future__ import annotations

import hashlib
import logging
import math
import time
from typing import Any

from fastapi import Depends, HTTPException, Request
from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from redis.exceptions import RedisError

from maintflow_core.settings import Settings

log = logging.getLogger(__name__)
_WARN_EVERY_S = 60.0


class RequestLimits:
    def __init__(self, settings: Settings) -> None:
        self.general = parse(settings.rate_limit) if settings.rate_limit else None
        self.launch = parse(settings.launch_rate_limit) if settings.launch_rate_limit else None
        storage: Storage
        if settings.redis_url:
            storage = RedisStorage(
                f"async+{settings.redis_url}",
                implementation="redispy",
                key_prefix=f"{settings.broker_namespace}:ratelimit",
                socket_timeout=1,
                socket_connect_timeout=1,
            )
        else:
            storage = MemoryStorage()
        self.limiter = MovingWindowRateLimiter(storage)
        self._warned_at = -_WARN_EVERY_S

    async def check(self, item: RateLimitItem | None, scope: str, token: str) -> None:
        """Count one request of `token` against `item`; 429 when over it."""
        if item is None:
            return
        caller = hashlib.sha256(token.encode()).hexdigest()[:32]
        try:
            if await self.limiter.hit(item, scope, caller):
                return
            reset_at, remaining = await self.limiter.get_window_stats(item, scope, caller)
        except (RedisError, OSError) as exc:
            self._unavailable(exc)
            return
        retry = max(1, math.ceil(reset_at - time.time()))
        window = item.get_expiry()
        raise HTTPException(
            429,
            f"too many requests with this token: at most {item.amount} per {window} s "
            f"({scope}); retry in {retry} s",
            headers={
                "Retry-After": str(retry),
                "RateLimit-Limit": str(item.amount),
                "RateLimit-Remaining": str(remaining),
                "RateLimit-Reset": str(retry),
                "RateLimit-Policy": f"{item.amount};w={window}",
            },
        )

    def _unavailable(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._warned_at >= _WARN_EVERY_S:
            self._warned_at = now
            log.warning("rate_limit_unavailable", extra={"error": type(exc).__name__})


def _bearer(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def _limits(request: Request) -> Any:
    return request.app.state.maintflow.limits


async def per_token(request: Request) -> None:
    """Every request that carries a token (an app-wide dependency)."""
    token = _bearer(request)
    if token is not None:
        limits = _limits(request)
        await limits.check(limits.general, "api", token)


async def per_token_launch(request: Request) -> None:
    """Batch launches and run-nows, counted apart, against their own lower limit."""
    token = _bearer(request)
    if token is not None:
        limits = _limits(request)
        await limits.check(limits.launch, "launch", token)


LAUNCH_LIMITED = [Depends(per_token_launch)]
