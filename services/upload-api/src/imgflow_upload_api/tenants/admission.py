"""Admit an upload under its tenant's limits: quotas, queued work, rate, concurrency.

Limits and usage are read from PostgreSQL at most every IMGFLOW_TENANT_LIMITS_CACHE_S per
tenant and process (one query), so a limit changed by the operator applies within that,
and a quota may be passed by the uploads that arrive within it. Rate buckets and
uploads in progress are counted per process.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from uuid import UUID

import asyncpg

from imgflow_runtime.db import tenant_limits
from imgflow_runtime.db.tenant_limits import Usage
from imgflow_upload_api.tenants.limits import (
    Defaults,
    Effective,
    Refusal,
    TokenBucket,
    check_queued,
    check_quotas,
    rate_headers,
)

# Tenants whose state is kept; past it the idle ones are dropped (rare: a full sweep).
MAX_TENANTS = 10_000


@dataclass
class TenantState:
    limits: Effective
    usage: Usage
    read_at: float
    bucket: TokenBucket | None = None
    in_progress: int = 0

    def recorded(self, size: int) -> None:
        """Count an image this process just stored, so the quotas hold between reads
        (other replicas' uploads are seen at the next read)."""
        used = self.usage
        self.usage = Usage(used.images + 1, used.bytes + size, used.queued_jobs)


class Admission:
    def __init__(self, defaults: Defaults, cache_s: float) -> None:
        self.defaults = defaults
        self.cache_s = cache_s
        self._tenants: dict[UUID, TenantState] = {}

    async def state(self, pool: asyncpg.Pool, tenant: UUID) -> TenantState:
        now = time.monotonic()
        known = self._tenants.get(tenant)
        if known is not None and now - known.read_at < self.cache_s:
            return known
        async with pool.acquire() as conn:
            limits = await tenant_limits.get_limits(conn, tenant)
            usage = await tenant_limits.get_usage(conn, tenant)
        effective = Effective.of(limits, self.defaults)
        if known is None:
            if len(self._tenants) >= MAX_TENANTS:
                self._forget_idle()
            known = self._tenants[tenant] = TenantState(effective, usage, now)
        known.limits, known.usage, known.read_at = effective, usage, now
        rate, burst = effective.upload_rate_per_s, effective.upload_burst
        if rate is None or burst is None:
            known.bucket = None
        elif known.bucket is None or (known.bucket.rate, known.bucket.burst) != (rate, burst):
            known.bucket = TokenBucket(rate, burst)
        return known

    def in_progress(self, tenant: UUID) -> int:
        known = self._tenants.get(tenant)
        return known.in_progress if known is not None else 0

    def _forget_idle(self) -> None:
        for tenant in [t for t, s in self._tenants.items() if s.in_progress == 0]:
            del self._tenants[tenant]

    async def admit(
        self,
        pool: asyncpg.Pool,
        tenant: UUID,
        queued: int,
        incoming_bytes: int | None,
        queue_retry_after_s: int,
    ) -> TenantState:
        """Take an upload slot of ``tenant`` (give it back with ``release``), or raise a
        Refusal."""
        state = await self.state(pool, tenant)
        limits = state.limits
        check_quotas(limits, state.usage, incoming_bytes)
        check_queued(limits, queued, queue_retry_after_s)
        if limits.upload_concurrency is not None and state.in_progress >= limits.upload_concurrency:
            raise Refusal(
                429,
                "too-many-uploads",
                "Too many uploads at once",
                f"the tenant has {state.in_progress} uploads in progress; its limit is "
                f"{limits.upload_concurrency}",
                retry_after_s=1,
                limit=limits.upload_concurrency,
            )
        if state.bucket is not None:
            wait_s = state.bucket.take(time.monotonic())
            if wait_s > 0:
                raise Refusal(
                    429,
                    "rate-limited",
                    "Rate limited",
                    f"the tenant may start {limits.upload_rate_per_s:g} uploads a second "
                    f"(bursts of {limits.upload_burst})",
                    retry_after_s=max(1, math.ceil(wait_s)),
                    headers=rate_headers(state.bucket, wait_s),
                )
        state.in_progress += 1
        return state

    @staticmethod
    def release(state: TenantState) -> None:
        state.in_progress -= 1
