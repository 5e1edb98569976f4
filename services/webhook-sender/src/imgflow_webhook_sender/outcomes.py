"""What one attempt's result means for its delivery: delivered, worth retrying (it can
change: a timeout, a refused connection, 429, 5xx), or permanent (it will not: a host
that is not allowed or has not resolved for long, 410 Gone, another 4xx, a certificate
that does not verify). Plain functions, no I/O."""

from __future__ import annotations

import email.utils
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import Enum


class Verdict(Enum):
    DELIVERED = "delivered"
    RETRY = "retry"
    PERMANENT = "permanent"


@dataclass(frozen=True)
class Attempt:
    verdict: Verdict
    status_code: int | None = None
    error: str | None = None
    # what a 429 or 503 asked for
    retry_after_s: float | None = None
    # the host did not resolve: permanent only once that has lasted a while
    unresolvable: bool = False

    @property
    def ok(self) -> bool:
        return self.verdict is Verdict.DELIVERED


def from_status(code: int, retry_after: str | None, now: datetime) -> Attempt:
    """The verdict on an HTTP answer."""
    if 200 <= code < 300:
        return Attempt(Verdict.DELIVERED, code)
    error = f"answered HTTP {code}"
    if code == 429 or code >= 500:
        return Attempt(Verdict.RETRY, code, error, parse_retry_after(retry_after, now))
    # 410 Gone, 404, 401, a redirect (never followed: it could lead past the SSRF check)...
    return Attempt(Verdict.PERMANENT, code, error)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date (RFC 9110)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - now).total_seconds())


@dataclass(frozen=True)
class Fate:
    """Where a delivery goes after an attempt: ``status`` pending, delivered or failed, and
    for pending, the wait before the next attempt."""

    status: str
    retry_in_s: float = 0.0
    # the attempt counted as the endpoint's failure (for the circuit breaker)
    endpoint_failed: bool = True


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int
    base_s: float
    cap_s: float
    unresolvable_grace_s: float


def retry_delay(
    failed_attempts: int, base_s: float, cap_s: float, rng: Callable[[], float] = random.random
) -> float:
    """Wait after the n-th failed attempt: base * 2**(n-1), capped; "equal jitter" (half of
    it fixed, half random) spreads out the retries of many deliveries that failed at once."""
    ceiling = min(cap_s, base_s * 2 ** min(failed_attempts - 1, 62))
    return ceiling / 2 + rng() * ceiling / 2


def fate(
    attempt: Attempt,
    attempts: int,
    unresolvable_for_s: float | None,
    policy: RetryPolicy,
    rng: Callable[[], float] = random.random,
) -> Fate:
    """``attempts``: made so far, this one included; ``unresolvable_for_s``: how long the
    host has not resolved, this attempt included (None if it resolved)."""
    if attempt.ok:
        return Fate("delivered", endpoint_failed=False)
    permanent = attempt.verdict is Verdict.PERMANENT or (
        unresolvable_for_s is not None and unresolvable_for_s >= policy.unresolvable_grace_s
    )
    if permanent or attempts >= policy.max_attempts:
        return Fate("failed")
    if attempt.retry_after_s is not None:
        return Fate("pending", min(attempt.retry_after_s, policy.cap_s))
    return Fate("pending", retry_delay(attempts, policy.base_s, policy.cap_s, rng))
