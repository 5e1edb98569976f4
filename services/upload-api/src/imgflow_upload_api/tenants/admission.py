"""Admit an upload under its tenant's limits: quotas, queued work, rate, concurrency.

Limits and usage are read from PostgreSQL at most every IMGFLOW_TENANT_LIMITS_CACHE_S per
tenant and process (one query), so a limit changed by the operator applies within that,
and a quota may be passed by the uploads that arrive within it. The rate and the uploads
in progress are counted in Valkey, shared by the API replicas (shared_state.py); while
Valkey cannot be reached, in this process (a token bucket and a counter).
"""

from __future__ import annotations

import logging
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
from imgflow_upload_api.tenants.shared_state import SharedLimits, SharedStateUnavailable

log = logging.getLogger(__name__)

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


@dataclass
class Admitted:
    """An upload holding one of its tenant's slots: give it back with ``release``."""

    state: TenantState
    tenant: UUID
    lease: str | None = None  # its slot in Valkey, when counted there


class Admission:
    def __init__(
        self, defaults: Defaults, cache_s: float, shared: SharedLimits | None = None
    ) -> None:
        self.defaults = defaults
        self.cache_s = cache_s
        self.shared = shared
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
        # Another request may have read this tenant while we awaited: keep its state, whose
        # uploads in progress and token bucket are counted, rather than a fresh one.
        known = self._tenants.get(tenant)
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

    async def in_progress(self, pool: asyncpg.Pool, tenant: UUID) -> int:
        """The tenant's uploads in progress: in every replica where its concurrency is
        limited (only such uploads hold a slot in Valkey), else, or with Valkey away, here."""
        known = await self.state(pool, tenant)
        if self.shared is not None and known.limits.upload_concurrency is not None:
            try:
                return await self.shared.in_progress(tenant)
            except SharedStateUnavailable as exc:
                log.warning("uploads in progress counted in this process only: %s", exc)
        return known.in_progress

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
    ) -> Admitted:
        """Take an upload slot of ``tenant`` (give it back with ``release``), or raise a
        Refusal."""
        state = await self.state(pool, tenant)
        limits = state.limits
        check_quotas(limits, state.usage, incoming_bytes)
        check_queued(limits, queued, queue_retry_after_s)
        admitted = Admitted(state, tenant)
        if limits.upload_concurrency is not None:
            admitted.lease = await self._take_slot(state, tenant, limits.upload_concurrency)
        try:
            await self._take_rate(state, tenant)
        except Refusal:
            await self._give_slot_back(admitted)
            raise
        state.in_progress += 1
        return admitted

    async def release(self, admitted: Admitted) -> None:
        admitted.state.in_progress -= 1
        await self._give_slot_back(admitted)

    async def _take_slot(self, state: TenantState, tenant: UUID, limit: int) -> str | None:
        """A lease in Valkey (None: counted in this process, Valkey being away), or a
        Refusal."""
        if self.shared is not None:
            try:
                lease, held = await self.shared.acquire(tenant, limit)
            except SharedStateUnavailable as exc:
                log.warning("uploads in progress counted in this process only: %s", exc)
            else:
                if lease is None:
                    raise _too_many(held, limit)
                return lease
        if state.in_progress >= limit:
            raise _too_many(state.in_progress, limit)
        return None

    async def _take_rate(self, state: TenantState, tenant: UUID) -> None:
        limits = state.limits
        rate, burst = limits.upload_rate_per_s, limits.upload_burst
        if rate is None or burst is None or state.bucket is None:
            return
        wait_s: float | None = None
        remaining = 0
        if self.shared is not None:
            try:
                answer = await self.shared.take(tenant, rate, burst, time.time())
                wait_s, remaining = answer.wait_s, answer.remaining
            except SharedStateUnavailable as exc:
                log.warning("upload rate counted in this process only: %s", exc)
        if wait_s is None:  # no Valkey: this process's bucket
            wait_s = state.bucket.take(time.monotonic())
            remaining = state.bucket.remaining()
        if wait_s > 0:
            raise Refusal(
                429,
                "rate-limited",
                "Rate limited",
                f"the tenant may start {rate:g} uploads a second (bursts of {burst})",
                retry_after_s=max(1, math.ceil(wait_s)),
                headers=rate_headers(rate, burst, remaining, wait_s),
            )

    async def _give_slot_back(self, admitted: Admitted) -> None:
        if admitted.lease is not None and self.shared is not None:
            await self.shared.release(admitted.tenant, admitted.lease)
            admitted.lease = None


def _too_many(held: int, limit: int) -> Refusal:
    return Refusal(
        429,
        "too-many-uploads",
        "Too many uploads at once",
        f"the tenant has {held} uploads in progress; its limit is {limit}",
        retry_after_s=1,
        limit=limit,
    )
