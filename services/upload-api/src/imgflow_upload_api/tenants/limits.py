"""Per-tenant upload limits as plain logic: the effective limits, a token bucket for the
request rate, and the checks an upload passes before its body is read.

No framework here: a refusal is a ``Refusal`` the endpoint turns into a problem document.
The token bucket is the per-process fallback for when the shared counts in Valkey
(shared_state.py) cannot be reached.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from imgflow_runtime.db.tenant_limits import Limits, Usage

# A rate set absurdly low (any positive value is valid) still answers a finite wait.
MAX_WAIT_S = 86_400.0


@dataclass(frozen=True)
class Defaults:
    """The deployment's defaults (IMGFLOW_TENANT_*); None: no limit."""

    weight: int = 1
    upload_rate_per_s: float | None = None
    upload_burst: int | None = None
    upload_concurrency: int | None = None
    max_queued_jobs: int | None = None


@dataclass(frozen=True)
class Effective:
    weight: int
    upload_rate_per_s: float | None
    upload_burst: int | None
    upload_concurrency: int | None
    max_queued_jobs: int | None
    max_images: int | None
    max_bytes: int | None

    @classmethod
    def of(cls, limits: Limits, defaults: Defaults) -> Effective:
        rate = limits.upload_rate_per_s or defaults.upload_rate_per_s
        burst = limits.upload_burst or defaults.upload_burst
        if rate is not None and burst is None:
            burst = max(1, math.ceil(rate))  # one second's worth
        return cls(
            weight=limits.weight or defaults.weight,
            upload_rate_per_s=rate,
            upload_burst=burst,
            upload_concurrency=limits.upload_concurrency or defaults.upload_concurrency,
            max_queued_jobs=limits.max_queued_jobs or defaults.max_queued_jobs,
            max_images=limits.max_images,
            max_bytes=limits.max_bytes,
        )

    def as_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Refusal(Exception):
    """An upload refused by a limit: ``status`` 429 (retry later) or 403 (a quota)."""

    def __init__(
        self,
        status: int,
        code: str,
        title: str,
        detail: str,
        retry_after_s: int | None = None,
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail)
        self.status, self.code, self.title, self.detail = status, code, title, detail
        self.headers = dict(headers or {})
        if retry_after_s is not None:
            self.headers["Retry-After"] = str(retry_after_s)
        self.extensions = extensions


@dataclass
class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved up; an upload takes one."""

    rate: float
    burst: int
    tokens: float = field(default=-1.0)
    at: float = 0.0

    def take(self, now: float) -> float:
        """0 when a token was taken; else the seconds until one will be there."""
        if self.tokens < 0:  # new: full
            self.tokens, self.at = float(self.burst), now
        self.tokens = min(float(self.burst), self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return min((1.0 - self.tokens) / self.rate, MAX_WAIT_S)

    def remaining(self) -> int:
        return max(0, math.floor(self.tokens))


def window_s(rate: float, burst: int) -> int:
    """The window of the rate's policy: ``burst`` uploads at ``rate`` a second (at most
    a day, as the Retry-After of an absurdly low rate)."""
    return max(1, math.ceil(min(burst / rate, MAX_WAIT_S)))


def rate_headers(rate: float, burst: int, remaining: int, wait_s: float) -> dict[str, str]:
    """The IETF RateLimit fields (draft-ietf-httpapi-ratelimit-headers): the policy
    (quota ``q`` per window ``w`` seconds) and what is left (``r``, reset in ``t`` s)."""
    window = window_s(rate, burst)
    return {
        "RateLimit-Policy": f'"uploads";q={burst};w={window}',
        "RateLimit": f'"uploads";r={remaining};t={max(0, math.ceil(wait_s))}',
    }


def check_quotas(limits: Effective, usage: Usage, incoming_bytes: int | None) -> None:
    """Refuse (403) an upload that a stored-images or stored-bytes quota rules out."""
    if limits.max_images is not None and usage.images >= limits.max_images:
        raise Refusal(
            403,
            "quota-exceeded",
            "Quota exceeded",
            f"the tenant stores {usage.images} images; its quota is {limits.max_images}",
            quota="images",
            used=usage.images,
            limit=limits.max_images,
        )
    if limits.max_bytes is not None and usage.bytes + (incoming_bytes or 0) > limits.max_bytes:
        raise Refusal(
            403,
            "quota-exceeded",
            "Quota exceeded",
            f"the tenant stores {usage.bytes} bytes; with this upload it would pass its "
            f"quota of {limits.max_bytes}",
            quota="bytes",
            used=usage.bytes,
            limit=limits.max_bytes,
        )


def check_queued(limits: Effective, queued: int, retry_after_s: int) -> None:
    """Refuse (429) while the tenant has its cap of jobs waiting."""
    if limits.max_queued_jobs is not None and queued >= limits.max_queued_jobs:
        raise Refusal(
            429,
            "queue-limit",
            "Too much queued work",
            f"the tenant has {queued} jobs waiting; its limit is {limits.max_queued_jobs}",
            retry_after_s=retry_after_s,
            queued=queued,
            limit=limits.max_queued_jobs,
        )
