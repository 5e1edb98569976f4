"""A tenant's upload rate and uploads in progress, counted in Valkey so that every API
replica sees the same counts: a tenant gets its limit, not its limit times the replicas.

- **Rate**: the ``limits`` library's moving window, ``burst`` uploads in any window of
  ``ceil(burst / rate)`` seconds: the policy the RateLimit-Policy field already states
  (q=burst, w=window), the same sustained rate and burst as a token bucket.
- **In progress**: ``limits`` has no concurrency limit, so a small script does it: a
  sorted set per tenant of the uploads holding a slot, each scored with the time its
  lease ends. An API process that dies with slots held cannot give them back; its
  leases lapse after ``lease_s`` instead of holding the tenant's slots for ever.

Valkey is the broker's: an upload never waited on it before (the outbox takes its jobs),
so when it cannot be reached these answer ``SharedStateUnavailable`` quickly and the
caller counts in its own process meanwhile (admission.py): limits loosen to per
replica while the broker is away, uploads go on.
"""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass
from uuid import UUID

import redis.asyncio as aioredis
from limits import RateLimitItemPerSecond
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from redis.exceptions import RedisError

from imgflow_upload_api.tenants.limits import window_s

KEY_PREFIX = "imgflow:limits"

# KEYS[1]: the tenant's set; ARGV: limit, lease (ms), lease id. Valkey's clock, so the
# replicas' clocks need not agree. Returns the uploads now in progress with this one
# (negative: the count, full, nothing taken).
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local n = redis.call('ZCARD', KEYS[1])
if n >= tonumber(ARGV[1]) then
    return -n
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
return n + 1
"""

_COUNT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZCARD', KEYS[1])
"""


class SharedStateUnavailable(Exception):
    """Valkey did not answer: count in this process instead."""


@dataclass(frozen=True)
class RateAnswer:
    """``wait_s`` 0: an upload may start (and was counted); else the seconds until one
    may. ``remaining``: uploads left in the window."""

    wait_s: float
    remaining: int


class SharedLimits:
    def __init__(self, url: str, lease_s: float, timeout_s: float = 0.5) -> None:
        self.lease_ms = max(1, int(lease_s * 1000))
        options = {"socket_timeout": timeout_s, "socket_connect_timeout": timeout_s}
        self._storage = RedisStorage(
            f"async+{url}", implementation="redispy", key_prefix=KEY_PREFIX, **options
        )
        self._rate = MovingWindowRateLimiter(self._storage)
        self._client = aioredis.Redis.from_url(url, **options)
        self._acquire = self._client.register_script(_ACQUIRE)
        self._count = self._client.register_script(_COUNT)

    async def take(self, tenant: UUID, rate: float, burst: int, now: float) -> RateAnswer:
        """Count an upload against the tenant's rate, unless it is spent."""
        item = RateLimitItemPerSecond(burst, window_s(rate, burst))
        try:
            if await self._rate.hit(item, str(tenant)):
                return RateAnswer(0.0, 0)
            stats = await self._rate.get_window_stats(item, str(tenant))
        except (RedisError, OSError) as exc:
            raise SharedStateUnavailable(str(exc)) from exc
        return RateAnswer(max(stats.reset_time - now, 0.001), stats.remaining)

    async def acquire(self, tenant: UUID, limit: int) -> tuple[str | None, int]:
        """A slot of the tenant's ``limit``: (its lease id, uploads in progress with it),
        or (None, uploads in progress) when all are held."""
        lease = uuid.uuid4().hex
        try:
            n = int(
                await self._acquire(keys=[self._key(tenant)], args=[limit, self.lease_ms, lease])
            )
        except (RedisError, OSError) as exc:
            raise SharedStateUnavailable(str(exc)) from exc
        return (lease, n) if n > 0 else (None, -n)

    async def release(self, tenant: UUID, lease: str) -> None:
        """Give a slot back; if Valkey is away, its lease lapses on its own."""
        with contextlib.suppress(RedisError, OSError):
            await self._client.zrem(self._key(tenant), lease)

    async def in_progress(self, tenant: UUID) -> int:
        try:
            return int(await self._count(keys=[self._key(tenant)]))
        except (RedisError, OSError) as exc:
            raise SharedStateUnavailable(str(exc)) from exc

    def _key(self, tenant: UUID) -> str:
        return f"{KEY_PREFIX}:uploads:{tenant}"

    async def close(self) -> None:
        await self._client.aclose()
