"""Send due webhook deliveries: signed POSTs, retried with exponential backoff and jitter.

A delivery is claimed by moving its ``next_attempt_at`` past the attempt's deadline (a
lease) in a short transaction with FOR UPDATE SKIP LOCKED: replicas never take the same
row, no lock is held while a receiver answers, and rows of a process that died mid-attempt
are retried once their lease passes. A receiver may therefore see a delivery twice; it
dedupes on the ``Imgflow-Delivery`` header.

Every attempt runs on its own and records its own outcome, so one slow receiver never
delays deliveries to others: each webhook has at most ``PER_WEBHOOK`` attempts in flight
per process (its other deliveries wait for those, and only those), each attempt ends
within IMGFLOW_WEBHOOK_TIMEOUT_S, and the process has at most ``MAX_IN_FLIGHT``.

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
MAX_IN_FLIGHT = 200
PER_WEBHOOK = 4
# Shorter than background.STOP_GRACE_S, which cancels the whole loop after it.
DRAIN_S = 3.0
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
    webhook_id: UUID
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
        self._attempts: set[asyncio.Task[None]] = set()
        # Attempts in flight per webhook: its further deliveries wait until none are.
        self._in_flight: dict[UUID, int] = {}
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
        """Deliver until ``stopping`` is set (call :meth:`wake` too, to end the wait);
        then let the attempts in flight end, for a moment."""
        try:
            while not stopping.is_set():
                self._wake.clear()
                try:
                    claimed = await self.dispatch_once()
                except Exception:
                    log.exception("webhook dispatch pass failed")
                    claimed = 0
                if claimed == BATCH:
                    continue
                # Under a stream of events, passes start at most this often.
                await asyncio.sleep(MIN_PASS_GAP_S)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._wake.wait(), self._settings.webhook_dispatch_interval_s
                    )
        finally:
            await self._drain()

    async def _drain(self) -> None:
        """Give the attempts in flight a moment, cut the rest (their lease brings them
        back to a replica later), and close the client: all within the stop's grace."""
        if self._attempts:
            _, late = await asyncio.wait(self._attempts, timeout=DRAIN_S)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        await self._client.aclose()

    async def dispatch_once(self) -> int:
        """Claim the due deliveries this process has room for and start their attempts;
        each records its own outcome when it ends."""
        room = MAX_IN_FLIGHT - len(self._attempts)
        if room <= 0:
            return 0
        claimed = await self._claim(min(BATCH, room))
        for delivery in claimed:
            self._in_flight[delivery.webhook_id] = self._in_flight.get(delivery.webhook_id, 0) + 1
            task = asyncio.create_task(self._deliver(delivery), name=f"webhook {delivery.id}")
            self._attempts.add(task)
            task.add_done_callback(self._attempts.discard)
        return len(claimed)

    async def _deliver(self, delivery: Claimed) -> None:
        try:
            attempt = await self.attempt(delivery)
            await self._record(delivery, attempt)
        except Exception:
            # The lease runs out and another pass retries it.
            log.exception("webhook delivery %s attempt failed to run", delivery.id)
        finally:
            left = self._in_flight.pop(delivery.webhook_id) - 1
            if left:
                self._in_flight[delivery.webhook_id] = left
            else:
                self.wake()  # its waiting deliveries may go now

    async def _claim(self, limit: int) -> list[Claimed]:
        lease = self._settings.webhook_timeout_s + LEASE_MARGIN_S
        async with self._pool.acquire() as conn:
            rows = await repository.claim_due(
                conn, limit, lease, per_webhook=PER_WEBHOOK, busy=list(self._in_flight)
            )
        return [Claimed(**dict(r)) for r in rows]

    async def attempt(self, delivery: Claimed) -> Attempt:
        """One POST of a claimed delivery (its outcome is not recorded here); the
        destination is checked again first, after DNS resolution."""
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

    async def _record(self, delivery: Claimed, attempt: Attempt) -> None:
        settings = self._settings
        if attempt.ok:
            outcome, status, delay = "delivered", "delivered", 0.0
        elif delivery.attempts >= settings.webhook_max_attempts:
            outcome, status, delay = "failed", "failed", 0.0
        else:
            outcome, status = "retry", "pending"
            delay = retry_delay(
                delivery.attempts, settings.webhook_retry_base_s, settings.webhook_retry_cap_s
            )
        async with self._pool.acquire() as conn:
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
