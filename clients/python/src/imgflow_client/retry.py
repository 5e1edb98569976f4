"""When to try a request again, and how long to wait first.

Exponential backoff with full jitter (a random wait up to the doubled delay, so clients
refused together do not come back together), and never sooner than the server's
``Retry-After``. What is safe to retry depends on whether the server may have acted:
a refused connection or a 503/429 answer means it did nothing, while a timeout or a 502
after the request was sent may hide a request that went through, so those are retried
only for requests that are idempotent (every GET, PUT, DELETE and every upload, which
carries an Idempotency-Key).
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

# The server said it did nothing: always safe to send again.
REFUSED_STATUSES = frozenset({429, 503})
# A gateway could not get (or wait for) an answer: the request may have gone through.
GATEWAY_STATUSES = frozenset({502, 504})
# Nothing was sent: the connection was never made.
NOT_SENT_ERRORS: tuple[type[Exception], ...] = (httpx.ConnectError, httpx.ConnectTimeout)
# Sent, maybe acted on, answer lost.
LOST_ANSWER_ERRORS: tuple[type[Exception], ...] = (
    httpx.ReadTimeout,
    httpx.WriteTimeout,
    httpx.ReadError,
    httpx.WriteError,
    httpx.RemoteProtocolError,
    httpx.PoolTimeout,
)


@dataclass(frozen=True)
class RetryPolicy:
    """``attempts`` counts the first try. Waits: up to ``base_s * 2**n`` (jittered),
    capped at ``cap_s``; a ``Retry-After`` longer than that is honoured up to
    ``max_retry_after_s`` (a server asking for more is reported instead of waited for)."""

    attempts: int = 5
    base_s: float = 0.5
    cap_s: float = 30.0
    max_retry_after_s: float = 120.0

    def should_retry_status(self, status: int, idempotent: bool) -> bool:
        return status in REFUSED_STATUSES or (idempotent and status in GATEWAY_STATUSES)

    def should_retry_error(self, exc: BaseException, idempotent: bool) -> bool:
        return isinstance(exc, NOT_SENT_ERRORS) or (
            idempotent and isinstance(exc, LOST_ANSWER_ERRORS)
        )

    def delay_s(
        self,
        retry: int,
        retry_after_s: float | None = None,
        rand: Callable[[], float] = random.random,
    ) -> float | None:
        """Seconds to wait before retry number ``retry`` (1 for the first retry), or None
        when no retry is left or the server asks for a longer wait than we accept."""
        if retry >= self.attempts:
            return None
        backoff = rand() * min(self.cap_s, self.base_s * 2 ** (retry - 1))
        if retry_after_s is None:
            return backoff
        if retry_after_s > self.max_retry_after_s:
            return None
        # The server's wait, plus a little jitter so refused clients spread out.
        return retry_after_s + min(backoff, 1.0)


NO_RETRIES = RetryPolicy(attempts=1)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` in seconds: either delay-seconds or an HTTP date (RFC 9110)."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


@dataclass(frozen=True)
class RetryNotice:
    """Told to ``on_retry`` before each wait: what failed and how long until the retry."""

    method: str
    url: str
    retry: int
    delay_s: float
    status: int | None = None
    code: str | None = None
    error: str | None = None
