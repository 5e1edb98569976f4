"""Send due webhook deliveries: signed POSTs, retried with exponential backoff and jitter.

A delivery is claimed by moving its ``next_attempt_at`` past the attempt's deadline (a
lease) in a short transaction with FOR UPDATE SKIP LOCKED: replicas never take the same
row, no lock is held while a receiver answers, and rows of a process that died mid-attempt
are retried once their lease passes. A receiver may therefore see a delivery twice; it
dedupes on the ``Imgflow-Delivery`` header.

Each POST is signed Stripe-style: ``Imgflow-Signature: t=<unix time>,v1=<hex HMAC-SHA256
of "<t>.<body>" keyed with the webhook's secret>`` (see the README for verification).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg
import httpx
from prometheus_client import CollectorRegistry, Counter

from imgflow_upload_api.settings import ApiSettings
from imgflow_upload_api.webhooks import repository
from imgflow_upload_api.webhooks.service import InvalidWebhook, check_destination

log = logging.getLogger(__name__)

BATCH = 50
MIN_PASS_GAP_S = 0.05
LEASE_MARGIN_S = 30.0
MAX_ERROR_LENGTH = 500
USER_AGENT = "imgflow-webhooks/1"
SIGNATURE_HEADER = "Imgflow-Signature"
EVENT_HEADER = "Imgflow-Event"
DELIVERY_HEADER = "Imgflow-Delivery"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def retry_delay(
    failed_attempts: int, base_s: float, cap_s: float, rng: Callable[[], float] = random.random
) -> float:
    """Wait after the n-th failed attempt: base * 2**(n-1), capped; "equal jitter" (half of
    it fixed, half random) spreads out the retries of many deliveries that failed at once."""
    ceiling = min(cap_s, base_s * 2 ** min(failed_attempts - 1, 62))
    return ceiling / 2 + rng() * ceiling / 2


_GROUP = "duplicate_group."
# what `data` holds: of an image or stage event, or (True) of a duplicate group's
_DATA_KEYS = {
    False: ("image_id", "stage", "status", "error"),
    True: ("group_id", "version", "status"),
}


def delivery_body(delivery_id: UUID, event_type: str, event: dict[str, Any]) -> bytes:
    """What the receiver gets; the same bytes on every attempt of one delivery."""
    document = {
        "id": str(delivery_id),
        "type": event_type,
        "event_id": event["id"],
        "created_at": event["at"],
        "data": {k: event.get(k) for k in _DATA_KEYS[event_type.startswith(_GROUP)]},
    }
    return json.dumps(document, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Claimed:
    id: UUID
    url: str
    secret: str
    type: str
    payload: dict[str, Any]
    attempts: int


@dataclass(frozen=True)
class Attempt:
    ok: bool
    status_code: int | None
    error: str | None


class WebhookDispatcher:
    def __init__(self, pool: asyncpg.Pool, settings: ApiSettings, registry: CollectorRegistry):
        self._pool = pool
        self._settings = settings
        self._wake = asyncio.Event()
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(settings.webhook_timeout_s),
            follow_redirects=False,  # a redirect could lead anywhere, past the SSRF check
            headers={"User-Agent": USER_AGENT},
        )
        # httpx logs every request at INFO, URL included (a receiver's token may be in it).
        logging.getLogger("httpx").setLevel(logging.WARNING)
        self.attempts = Counter(
            "imgflow_webhook_attempts",
            "Webhook delivery attempts by outcome: delivered, retry, failed.",
            ["outcome"],
            registry=registry,
        )

    def wake(self) -> None:
        """Deliveries were queued: look now rather than at the next tick."""
        self._wake.set()

    async def run(self, stopping: asyncio.Event) -> None:
        """Deliver until ``stopping`` is set (call :meth:`wake` too, to end the wait)."""
        try:
            while not stopping.is_set():
                self._wake.clear()
                try:
                    sent = await self.dispatch_once()
                except Exception:
                    log.exception("webhook dispatch pass failed")
                    sent = 0
                if sent == BATCH:
                    continue
                # Under a stream of events, passes start at most this often.
                await asyncio.sleep(MIN_PASS_GAP_S)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._wake.wait(), self._settings.webhook_dispatch_interval_s
                    )
        finally:
            await self._client.aclose()

    async def dispatch_once(self) -> int:
        """Claim the due deliveries, attempt each once, record the outcomes."""
        claimed = await self._claim()
        if claimed:
            results = await asyncio.gather(*(self._attempt(c) for c in claimed))
            await self._record(list(zip(claimed, results, strict=True)))
        return len(claimed)

    async def _claim(self) -> list[Claimed]:
        lease = self._settings.webhook_timeout_s + LEASE_MARGIN_S
        async with self._pool.acquire() as conn:
            rows = await repository.claim_due(conn, BATCH, lease)
        return [Claimed(**dict(r)) for r in rows]

    async def _attempt(self, delivery: Claimed) -> Attempt:
        body = delivery_body(delivery.id, delivery.type, delivery.payload)
        headers = {
            "Content-Type": "application/json",
            EVENT_HEADER: delivery.type,
            DELIVERY_HEADER: str(delivery.id),
            SIGNATURE_HEADER: sign(delivery.secret, int(time.time()), body),
        }
        try:
            await check_destination(
                delivery.url, allow_private=self._settings.webhook_allow_private
            )
            async with asyncio.timeout(self._settings.webhook_timeout_s):
                # Streamed and never read: a receiver's answer body is of no interest.
                async with self._client.stream(
                    "POST", delivery.url, content=body, headers=headers
                ) as response:
                    code = response.status_code
        except InvalidWebhook as exc:
            return Attempt(False, None, exc.detail)
        except TimeoutError:
            return Attempt(False, None, f"no answer within {self._settings.webhook_timeout_s} s")
        except httpx.HTTPError as exc:
            return Attempt(False, None, f"{type(exc).__name__}: {exc}"[:MAX_ERROR_LENGTH])
        if 200 <= code < 300:
            return Attempt(True, code, None)
        return Attempt(False, code, f"answered HTTP {code}")

    async def _record(self, outcomes: list[tuple[Claimed, Attempt]]) -> None:
        settings = self._settings
        async with self._pool.acquire() as conn:
            for delivery, attempt in outcomes:
                if attempt.ok:
                    outcome, status, delay = "delivered", "delivered", 0.0
                elif delivery.attempts >= settings.webhook_max_attempts:
                    outcome, status, delay = "failed", "failed", 0.0
                else:
                    outcome, status = "retry", "pending"
                    delay = retry_delay(
                        delivery.attempts,
                        settings.webhook_retry_base_s,
                        settings.webhook_retry_cap_s,
                    )
                await repository.record_attempt(
                    conn,
                    delivery.id,
                    delivery.attempts,
                    status,
                    attempt.status_code,
                    attempt.error,
                    delay,
                )
                self.attempts.labels(outcome).inc()
                if outcome != "delivered":
                    log.info(
                        "webhook delivery %s attempt %d: %s (%s)",
                        delivery.id,
                        delivery.attempts,
                        attempt.error,
                        outcome,
                    )
