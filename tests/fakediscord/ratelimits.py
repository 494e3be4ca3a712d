"""Per-route rate-limit buckets with honest headers, and 429s that tests can switch on."""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass, field

_PLACEHOLDER = re.compile(r"\{[^}]*\}")
MAJOR_PARAMS = ("channel_id", "guild_id", "webhook_id", "interaction_id")


def normalise_route(route: str) -> str:
    """``"POST /channels/{id}/messages"`` and ``"POST /channels/{channel_id}/messages"`` compare equal."""
    method, _, path = route.strip().partition(" ")
    path = path.removeprefix("/api/v10")
    return f"{method.upper()} {_PLACEHOLDER.sub('{}', path).rstrip('/')}"


@dataclass
class Bucket:
    limit: int
    window: float
    remaining: int
    reset_at: float
    name: str

    def refresh(self, now: float) -> None:
        if now >= self.reset_at:
            self.remaining = self.limit
            self.reset_at = now + self.window


@dataclass
class ForcedLimit:
    count: int
    route: str | None
    retry_after: float
    is_global: bool
    scope: str


@dataclass
class RateLimiter:
    default_limit: int = 50
    default_window: float = 1.0
    overrides: dict[str, tuple[int, float]] = field(default_factory=dict)
    buckets: dict[tuple[str, str], Bucket] = field(default_factory=dict)
    forced: list[ForcedLimit] = field(default_factory=list)
    served_429s: int = 0

    def configure(self, route: str, limit: int, window: float) -> None:
        self.overrides[normalise_route(route)] = (limit, window)

    def force(self, count: int, route: str | None, retry_after: float, is_global: bool, scope: str) -> None:
        self.forced.append(ForcedLimit(count, normalise_route(route) if route else None, retry_after, is_global,
                                       scope))

    def check(self, route: str, major: str) -> tuple[dict[str, str], dict[str, object] | None]:
        """Account one request: the headers to send, and a 429 body when it is refused."""
        key = normalise_route(route)
        now = time.time()
        limit, window = self.overrides.get(key, (self.default_limit, self.default_window))
        bucket = self.buckets.get((key, major))
        if bucket is None:
            name = hashlib.sha1(key.encode()).hexdigest()[:16]
            bucket = Bucket(limit, window, limit, now + window, name)
            self.buckets[(key, major)] = bucket
        bucket.refresh(now)
        for forced in self.forced:
            if forced.count > 0 and (forced.route is None or forced.route == key):
                forced.count -= 1
                if forced.count == 0:
                    self.forced.remove(forced)
                self.served_429s += 1
                headers = self._headers(bucket, now)
                headers.update({"Retry-After": f"{forced.retry_after:.3f}", "Via": "1.1 google",
                                "X-RateLimit-Scope": forced.scope})
                if forced.is_global:
                    headers["X-RateLimit-Global"] = "true"
                    for name in ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset",
                                 "X-RateLimit-Reset-After", "X-RateLimit-Bucket"):
                        headers.pop(name, None)
                body: dict[str, object] = {"message": "You are being rate limited.",
                                           "retry_after": forced.retry_after, "global": forced.is_global}
                if not forced.is_global:
                    body["code"] = 0
                return headers, body
        if bucket.remaining <= 0:
            self.served_429s += 1
            retry = max(bucket.reset_at - now, 0.001)
            headers = self._headers(bucket, now)
            headers.update({"Retry-After": f"{retry:.3f}", "Via": "1.1 google", "X-RateLimit-Scope": "user"})
            return headers, {"message": "You are being rate limited.", "retry_after": retry, "global": False,
                             "code": 0}
        bucket.remaining -= 1
        return self._headers(bucket, now), None

    @staticmethod
    def _headers(bucket: Bucket, now: float) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(bucket.limit),
            "X-RateLimit-Remaining": str(max(bucket.remaining, 0)),
            "X-RateLimit-Reset": f"{bucket.reset_at:.3f}",
            "X-RateLimit-Reset-After": f"{max(bucket.reset_at - now, 0):.3f}",
            "X-RateLimit-Bucket": bucket.name,
        }
