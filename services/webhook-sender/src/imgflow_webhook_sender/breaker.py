"""The circuit breaker of one endpoint, as plain functions of its state and an outcome.

- ``active``: deliveries go. After ``pause_after`` consecutive failures: ``paused``.
- ``paused``: deliveries wait; one probe (its oldest pending delivery) at a growing
  interval; its success makes it ``active`` again. Still failing ``disable_after_s`` after
  the first failure of the run: ``disabled``.
- ``disabled``: nothing goes until the tenant re-enables it (the API's POST .../enable).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

ACTIVE = "active"
PAUSED = "paused"
DISABLED = "disabled"
STATES = (ACTIVE, PAUSED, DISABLED)


@dataclass(frozen=True)
class BreakerPolicy:
    pause_after: int
    probe_base_s: float
    probe_cap_s: float
    disable_after_s: float


@dataclass(frozen=True)
class Breaker:
    state: str
    state_since: datetime
    consecutive_failures: int = 0
    failing_since: datetime | None = None
    probe_interval_s: float | None = None
    next_probe_at: datetime | None = None


def after_success(b: Breaker, now: datetime) -> Breaker:
    cleared = replace(b, consecutive_failures=0, failing_since=None)
    if b.state != PAUSED:
        # a disabled endpoint stays disabled (an attempt that was in flight may end well)
        return cleared
    return replace(
        cleared, state=ACTIVE, state_since=now, probe_interval_s=None, next_probe_at=None
    )


def after_failure(
    b: Breaker, now: datetime, policy: BreakerPolicy, *, probe: bool = True
) -> Breaker:
    """``probe``: the attempt was the paused endpoint's probe. Only a probe's failure
    lengthens the wait for the next one: attempts still in flight when it paused end
    failing too, and must not push its first probe out."""
    failing_since = b.failing_since or now
    failed = replace(
        b, consecutive_failures=b.consecutive_failures + 1, failing_since=failing_since
    )
    if b.state == ACTIVE:
        if failed.consecutive_failures < policy.pause_after:
            return failed
        return _probe_in(replace(failed, state=PAUSED, state_since=now), policy.probe_base_s, now)
    if b.state == PAUSED:
        if now - failing_since >= timedelta(seconds=policy.disable_after_s):
            return replace(
                failed, state=DISABLED, state_since=now, probe_interval_s=None, next_probe_at=None
            )
        if not probe:
            return failed
        interval = min(policy.probe_cap_s, (b.probe_interval_s or policy.probe_base_s) * 2)
        return _probe_in(failed, interval, now)
    return failed


def _probe_in(b: Breaker, interval_s: float, now: datetime) -> Breaker:
    return replace(
        b, probe_interval_s=interval_s, next_probe_at=now + timedelta(seconds=interval_s)
    )
