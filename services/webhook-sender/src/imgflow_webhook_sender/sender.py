"""The sender's loop: claim due deliveries and probes, POST each on its own, record each
outcome with its endpoint's circuit breaker.

Every attempt runs as its own task and records its own outcome, so one slow receiver
never delays deliveries to others: attempts in flight are bounded per endpoint, per target
host and per tenant across all replicas (IMGFLOW_WEBHOOK_PER_*, counted from the leased
rows in PostgreSQL), and per process (IMGFLOW_WEBHOOK_MAX_IN_FLIGHT), and each ends within
IMGFLOW_WEBHOOK_TIMEOUT_S. A receiver may see a delivery twice (a lease that ran out); it
dedupes on the ``Imgflow-Delivery`` header.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import asyncpg
import httpx

from imgflow_runtime.webhook_destinations import NOT_ALLOWED, InvalidWebhook, check_destination
from imgflow_webhook_sender import breaker, repository
from imgflow_webhook_sender.metrics import SenderMetrics
from imgflow_webhook_sender.outcomes import Attempt, RetryPolicy, Verdict, fate, from_status
from imgflow_webhook_sender.repository import Limits
from imgflow_webhook_sender.settings import SenderSettings
from imgflow_webhook_sender.signing import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    delivery_body,
    sign,
)

log = logging.getLogger(__name__)

BATCH = 50
DRAIN_S = 3.0
MIN_PASS_GAP_S = 0.05
MAX_ERROR_LENGTH = 500
USER_AGENT = "imgflow-webhooks/1"


@dataclass(frozen=True)
class Claimed:
    id: UUID
    webhook_id: UUID
    url: str
    secret: str
    tenant_id: UUID
    host: str
    type: str
    payload: dict[str, Any]
    attempts: int
    created_at: datetime
    # a paused endpoint's probe
    probe: bool = False


def _certificate_failed(exc: BaseException) -> bool:
    while exc is not None:
        if isinstance(exc, ssl.SSLCertVerificationError):
            return True
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return False


class Sender:
    def __init__(
        self,
        pool: asyncpg.Pool,
        settings: SenderSettings,
        metrics: SenderMetrics,
        *,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self._pool = pool
        self._settings = settings
        self.metrics = metrics
        self._wake = asyncio.Event()
        self._attempts: dict[asyncio.Task[None], Claimed] = {}
        self._limits = Limits(
            settings.webhook_per_endpoint, settings.webhook_per_tenant, settings.webhook_per_host
        )
        self._retry = RetryPolicy(
            settings.webhook_max_attempts,
            settings.webhook_retry_base_s,
            settings.webhook_retry_cap_s,
            settings.webhook_unresolvable_grace_s,
        )
        self._breaker = breaker.BreakerPolicy(
            settings.webhook_pause_after_failures,
            settings.webhook_probe_base_s,
            settings.webhook_probe_cap_s,
            settings.webhook_disable_after_s,
        )
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(settings.webhook_timeout_s),
            follow_redirects=False,  # a redirect could lead anywhere, past the SSRF check
            headers={"User-Agent": USER_AGENT},
            verify=verify,
        )
        # httpx logs every request at INFO, URL included (a receiver's token may be in it).
        logging.getLogger("httpx").setLevel(logging.WARNING)
        self.last_pass_at = time.monotonic()
        self._gauges_at = 0.0

    def wake(self) -> None:
        """Deliveries were queued: look now rather than at the next tick."""
        self._wake.set()

    async def run(self, stopping: asyncio.Event) -> None:
        """Deliver until ``stopping`` is set (call :meth:`wake` too, to end the wait);
        then let the attempts in flight end, for a moment."""
        try:
            while not stopping.is_set():
                self._wake.clear()
                try:
                    claimed = await self.dispatch_once()
                    await self._housekeeping()
                except Exception:
                    log.exception("webhook dispatch pass failed")
                    claimed = 0
                else:
                    self.last_pass_at = time.monotonic()
                    self.metrics.passes.inc()
                if claimed >= BATCH:
                    continue
                await asyncio.sleep(MIN_PASS_GAP_S)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._wake.wait(), self._settings.webhook_dispatch_interval_s
                    )
        finally:
            await self.close()

    async def close(self) -> None:
        """Give the attempts in flight a moment, cut the rest (their lease brings them
        back to a replica later), and close the client."""
        if self._attempts:
            _, late = await asyncio.wait(self._attempts, timeout=DRAIN_S)
            cut = [(self._attempts[t].id, self._attempts[t].attempts) for t in late]
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
            if cut:
                with contextlib.suppress(Exception):  # else their leases run out
                    async with self._pool.acquire() as conn:
                        await repository.release(conn, cut)
        await self._client.aclose()

    async def _housekeeping(self) -> None:
        """Every IMGFLOW_WEBHOOK_GAUGE_REFRESH_S: cap the disabled endpoints' backlogs,
        then read the gauges."""
        if time.monotonic() - self._gauges_at < self._settings.webhook_gauge_refresh_s:
            return
        async with self._pool.acquire() as conn:
            dropped = await repository.cap_disabled_backlogs(
                conn, self._settings.webhook_disabled_backlog_max
            )
            counts = await repository.gauges(conn)
        self.metrics.dropped.inc(sum(dropped.values()))
        self.metrics.set_gauges(counts["pending"], counts["endpoints"])
        self._gauges_at = time.monotonic()

    async def dispatch_once(self) -> int:
        """Claim the probes and due deliveries this process has room for and start their
        attempts; each records its own outcome when it ends."""
        room = self._settings.webhook_max_in_flight - len(self._attempts)
        if room <= 0:
            return 0
        lease = self._settings.webhook_timeout_s + self._settings.webhook_lease_margin_s
        async with self._pool.acquire() as conn:
            rows = await repository.claim(conn, min(BATCH, room), lease, self._limits)
        for row in rows:
            self._start(Claimed(**dict(row)))
        return len(rows)

    def _start(self, delivery: Claimed) -> None:
        task = asyncio.create_task(self._deliver(delivery), name=f"webhook {delivery.id}")
        self._attempts[task] = delivery
        self.metrics.in_flight.set(len(self._attempts))
        task.add_done_callback(self._attempts.pop)

    async def _deliver(self, delivery: Claimed) -> None:
        try:
            attempt = await self.attempt(delivery)
            await self.record(delivery, attempt)
        except Exception:
            # The lease runs out and another pass retries it.
            log.exception("webhook delivery %s attempt failed to run", delivery.id)
        finally:
            self.metrics.in_flight.set(len(self._attempts) - 1)
            self.wake()  # what waited for this slot may go now

    async def attempt(self, delivery: Claimed) -> Attempt:
        """One POST of a claimed delivery (its outcome is not recorded here); the
        destination is resolved and checked again first."""
        body = delivery_body(delivery.id, delivery.type, delivery.payload)
        headers = {
            "Content-Type": "application/json",
            EVENT_HEADER: delivery.type,
            DELIVERY_HEADER: str(delivery.id),
            SIGNATURE_HEADER: sign(delivery.secret, int(time.time()), body),
        }
        timeout_s = self._settings.webhook_timeout_s
        try:
            await check_destination(
                delivery.url, allow_private=self._settings.webhook_allow_private, resolve=True
            )
            async with asyncio.timeout(timeout_s):
                # Streamed and never read: a receiver's answer body is of no interest.
                async with self._client.stream(
                    "POST", delivery.url, content=body, headers=headers
                ) as response:
                    code = response.status_code
                    retry_after = response.headers.get("Retry-After")
        except InvalidWebhook as exc:
            if exc.code == NOT_ALLOWED:
                return Attempt(Verdict.PERMANENT, error=exc.detail)
            return Attempt(Verdict.RETRY, error=exc.detail, unresolvable=True)
        except TimeoutError:
            return Attempt(Verdict.RETRY, error=f"no answer within {timeout_s} s")
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:MAX_ERROR_LENGTH]
            if _certificate_failed(exc):
                return Attempt(Verdict.PERMANENT, error=f"certificate did not verify: {error}")
            return Attempt(Verdict.RETRY, error=error)
        return from_status(code, retry_after, datetime.now(UTC))

    async def record(self, delivery: Claimed, attempt: Attempt) -> tuple[str, str] | None:
        """Record the outcome on the delivery and on its endpoint's breaker, in one
        transaction; the endpoint's (old, new) state, or None if the row moved on."""
        async with self._pool.acquire() as conn, conn.transaction():
            endpoint = await repository.lock_endpoint(conn, delivery.webhook_id)
            if endpoint is None:
                return None  # deleted meanwhile (with its deliveries)
            now = endpoint.now
            unresolvable_since = (
                (endpoint.unresolvable_since or now) if attempt.unresolvable else None
            )
            unresolvable_for = (
                (now - unresolvable_since).total_seconds() if unresolvable_since else None
            )
            outcome = fate(attempt, delivery.attempts, unresolvable_for, self._retry)
            error = attempt.error
            if attempt.unresolvable and outcome.status == "failed":
                error = f"{error} (for {unresolvable_for:.0f} s)"
            written = await repository.finish_attempt(
                conn,
                delivery.id,
                delivery.attempts,
                outcome.status,
                attempt.status_code,
                error,
                outcome.retry_in_s,
            )
            if not written:
                return None
            old = endpoint.breaker
            if attempt.ok:
                new = breaker.after_success(old, now)
            else:
                new = breaker.after_failure(old, now, self._breaker, probe=delivery.probe)
            await repository.save_endpoint(
                conn, delivery.webhook_id, new, error, unresolvable_since
            )
            if new.state != old.state:
                if new.state == breaker.DISABLED:
                    await repository.announce_disabled(
                        conn, endpoint.tenant_id, delivery.webhook_id, error
                    )
                elif new.state == breaker.ACTIVE:
                    await repository.release_backlog(conn, delivery.webhook_id)
        self._count(delivery, outcome.status, attempt)
        if new.state != old.state:
            self._log_change(delivery, old, new, error)
        return old.state, new.state

    def _count(self, delivery: Claimed, status: str, attempt: Attempt) -> None:
        self.metrics.attempts.labels("retry" if status == "pending" else status).inc()
        if attempt.ok:
            waited = (datetime.now(UTC) - delivery.created_at).total_seconds()
            self.metrics.latency.observe(max(0.0, waited))

    def _log_change(
        self, delivery: Claimed, old: breaker.Breaker, new: breaker.Breaker, error: str | None
    ) -> None:
        self.metrics.state_changes.labels(new.state).inc()
        if new.state == breaker.ACTIVE:
            log.info(
                "webhook %s (tenant %s): %s -> active, a probe was delivered",
                delivery.webhook_id,
                delivery.tenant_id,
                old.state,
            )
            return
        log.warning(
            "webhook %s (tenant %s): %s -> %s after %d consecutive failures since %s; "
            "last error: %s",
            delivery.webhook_id,
            delivery.tenant_id,
            old.state,
            new.state,
            new.consecutive_failures,
            new.failing_since.isoformat() if new.failing_since else "?",
            error,
        )
